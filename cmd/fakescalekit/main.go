// SPDX-License-Identifier: Apache-2.0

// Command fakescalekit serves a fake Scalekit environment (package
// scalekittest) for apps written in any language: sign-in with the
// authorization-code flow, refresh tokens, /oidc/logout, the session API over
// REST and gRPC, back-channel logout and webhooks, all on one port.
//
//	go run ./cmd/fakescalekit -client-id skc_1 -client-secret dev-secret \
//	    -redirect-uri http://localhost:3000/auth/callback -post-logout-uri http://localhost:3000/login
//
// Point the app's Scalekit SDK at the issuer it prints. Any email signs in.
// -public registers the client without a secret, as a single-page or
// native app is: it signs in with PKCE and redeems its code with its
// client_id and code_verifier alone. A redirect URI that breaks one of
// Scalekit's rules (a query, a fragment, over 256 characters, a wildcard
// outside the outermost label of the host name) stops it at start-up with
// the rule named; a custom scheme such as myapp://callback is fine, and so
// is a wildcard where Scalekit allows one in development, as in
// http://*.app.localhost:3000/callback. More clients, users, organizations and upstream providers come from
// a JSON file given with -config:
//
//	{"clients": [{"id": "skc_1", "secret": "…", "redirect_uris": ["…"],
//	  "post_logout_redirect_uris": ["…"], "backchannel_logout_uris": ["…"]},
//	  {"id": "skc_spa", "public": true, "redirect_uris": ["…"]}],
//	 "organizations": [{"id": "org_1", "display_name": "Acme", "external_id": "acme"}],
//	 "users": [{"email": "ada@example.com", "id": "usr_1", "given_name": "Ada",
//	  "family_name": "Lovelace", "organization_id": "org_1", "external_id": "…",
//	  "metadata": {"plan": "pro"}, "roles": ["admin"], "permissions": ["…"]}],
//	 "upstreams": [{"domains": ["sso.example"], "organization_id": "org_2",
//	  "connection_id": "conn_2", "addr": "127.0.0.1:8089",
//	  "idp_logout_required": true, "forward_prompt": false}]}
//
// An upstream identity provider, an organization's own single sign-on
// behind an enterprise connection, runs beside it for the email domains
// given with -upstream-domain (and for the organization and connection it
// prints): sign-ins for them go there and back through the browser. Its
// session outlives a logout of the fake unless the connection has IdP
// logout on (-upstream-idp-logout, Scalekit's idp_logout_required), which
// sends the browser through the upstream's own logout and back.
// -upstream-forward-prompt passes prompt=login on to it.
//
//	go run ./cmd/fakescalekit -client-id skc_1 -redirect-uri http://localhost:3000/auth/callback \
//	    -upstream-domain sso.example
//
// Tests see what happened through the fake's own inspection API, read-only
// JSON under /_fake/v1 (not Scalekit's), with a client's ID and secret in
// Basic auth: sessions, users, organizations, connections, logout requests,
// authorizations and deliveries.
//
// It stops cleanly on SIGINT or SIGTERM. Bad flags print a message and exit
// with status 2.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/endsession/logout/scalekittest"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1 // the server could not start or stop
	exitUsage = 2 // bad flags or configuration
)

// run is the whole command: it parses args, serves until ctx ends or a
// SIGINT or SIGTERM arrives, and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "fakescalekit: %v\nRun fakescalekit -h for the flags.\n", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := scalekittest.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "fakescalekit: %v\n", strings.TrimPrefix(err.Error(), "scalekittest: "))
		if opErr := (*net.OpError)(nil); errors.As(err, &opErr) {
			return exitError // the address is taken, say
		}
		return exitUsage // a client or webhook URL is not acceptable
	}
	fmt.Fprintf(stdout, "fakescalekit: issuer %s\n", srv.Issuer())
	for _, c := range cfg.Clients {
		if c.Secret == "" {
			fmt.Fprintf(stdout, "fakescalekit: client %s, public (PKCE, no secret)\n", c.ID)
			continue
		}
		fmt.Fprintf(stdout, "fakescalekit: client %s, secret %s\n", c.ID, c.Secret)
	}
	for _, up := range srv.Upstreams() {
		fmt.Fprintf(stdout, "fakescalekit: upstream provider %s for %s (organization %s, connection %s); prompt=login forwarded: %s; IdP logout: %s\n",
			up.URL, orNone(strings.Join(up.Domains, ", ")), up.OrganizationID, up.ConnectionID,
			yesNo(up.ForwardPrompt), yesNo(up.IDPLogoutRequired))
	}
	if len(cfg.WebhookURLs) > 0 {
		fmt.Fprintf(stdout, "fakescalekit: webhooks to %s, signed with %s\n", strings.Join(cfg.WebhookURLs, ", "), srv.WebhookSecret())
	}
	fmt.Fprintf(stdout, "fakescalekit: inspection API (the fake's own, not Scalekit's) at %s%s, with a client's ID and secret\n", srv.Issuer(), scalekittest.InspectionPath)
	fmt.Fprintln(stdout, "fakescalekit: ready; any email signs in; stop with Ctrl-C")
	<-ctx.Done()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		fmt.Fprintf(stderr, "fakescalekit: shutdown: %v\n", err)
		return exitError
	}
	fmt.Fprintln(stdout, "fakescalekit: stopped")
	return exitOK
}

// listFlag is a flag that may be given several times.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func parseFlags(args []string, stderr io.Writer) (scalekittest.Config, error) {
	var (
		cfg                               scalekittest.Config
		client                            scalekittest.Client
		up                                scalekittest.UpstreamConfig
		redirects, postLogouts, backChans listFlag
		webhooks, upstreamDomains         listFlag
		configFile, hintless, retryDelays string
		public                            bool
	)
	fs := flag.NewFlagSet("fakescalekit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:8088", "address to listen on; the issuer is http://ADDR")
	fs.StringVar(&client.ID, "client-id", "", "register a client with this ID")
	fs.StringVar(&client.Secret, "client-secret", "", "the client's secret (default: a random one, printed)")
	fs.BoolVar(&public, "public", false, "register the client as a public one (single-page or native app): no secret, PKCE required")
	fs.Var(&redirects, "redirect-uri", "the client's redirect URI (repeatable)")
	fs.Var(&postLogouts, "post-logout-uri", "the client's post-logout redirect URI (repeatable)")
	fs.Var(&backChans, "backchannel-uri", "the client's back-channel logout URI (repeatable)")
	fs.StringVar(&configFile, "config", "", "JSON file with clients, organizations, users and upstreams (see the command's documentation)")
	fs.StringVar(&configFile, "clients", "", "the old name of -config")
	fs.Var(&webhooks, "webhook-url", "URL that receives user.logout webhooks (repeatable)")
	fs.StringVar(&cfg.WebhookSecret, "webhook-secret", "", "webhook signing secret, whsec_<base64> (default: a random one, printed)")
	fs.BoolVar(&cfg.WebhookLowerCaseStatus, "webhook-lowercase-status", false, "user.logout webhooks spell the session status in lower case, as the session API does (default: upper case, as the API reference's webhook example does)")
	fs.BoolVar(&cfg.WebhookAny2xx, "webhook-any-2xx", false, "count any 2xx answer to a webhook as delivered, as Scalekit's webhook log guide says (default: only 200, 201 and 202, as its webhook guide lists)")
	fs.StringVar(&retryDelays, "delivery-retry-delays", "", "waits before each retry of a webhook or back-channel delivery, such as 1s,1s; none for no retry (default: 5s,30s,2m,5m,15m, Scalekit's webhook guide)")
	fs.DurationVar(&cfg.DeliveryTimeout, "delivery-timeout", 0, "how long each delivery attempt waits for an answer (0: 10s, Scalekit's window)")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", 0, "end sessions idle this long (0: 168h, the idle timeout of the API reference's user.logout example)")
	fs.BoolVar(&cfg.NoIdleTimeout, "no-idle-timeout", false, "turn the idle timeout off: sessions end at their absolute timeout, which idle_expires_at then reports")
	fs.DurationVar(&cfg.AbsoluteTimeout, "absolute-timeout", 0, "end sessions this long after sign-in (0: 720h, the absolute timeout of the API reference's user.logout example)")
	fs.DurationVar(&cfg.AccessTokenLifetime, "access-token-lifetime", 0, "lifetime of a sign-in's access tokens (0: 5m)")
	fs.DurationVar(&cfg.ClientCredentialsLifetime, "client-credentials-lifetime", 0, "lifetime of client_credentials tokens (0: 86399s)")
	fs.StringVar(&hintless, "hintless-logout", "refuse", "/oidc/logout with client_id or post_logout_redirect_uri but no id_token_hint: refuse, end or redirect")
	fs.BoolVar(&cfg.AcceptEndedSessionHint, "accept-ended-hint", false, "/oidc/logout accepts an id_token_hint whose session has ended")
	fs.BoolVar(&cfg.RevokeEndedSessionSucceeds, "revoke-ended-ok", false, "revoking an ended session answers with it instead of an error")
	fs.BoolVar(&cfg.RefreshReuseRevokesSession, "refresh-reuse-revokes", false, "a reused refresh token revokes its session")
	fs.Var(&upstreamDomains, "upstream-domain", "email domain whose users sign in through the upstream provider (repeatable; turns it on)")
	fs.StringVar(&up.OrganizationID, "upstream-org", "", "the upstream's organization ID, org_<digits> (default: a new one, printed; turns it on)")
	fs.StringVar(&up.ConnectionID, "upstream-connection", "", "the upstream's connection ID, conn_<digits> (default: a new one, printed; turns it on)")
	fs.StringVar(&up.Addr, "upstream-addr", "", "address the upstream listens on (default: a free port on 127.0.0.1, served as localhost)")
	fs.BoolVar(&up.ForwardPrompt, "upstream-forward-prompt", false, "pass prompt=login on to the upstream, which then asks for its password again")
	fs.BoolVar(&up.IDPLogoutRequired, "upstream-idp-logout", false, "the connection's \"Enable IDP logout\" (idp_logout_required): a logout at /oidc/logout also goes through the upstream's own logout")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return cfg, fmt.Errorf("-addr %q: %v", cfg.Addr, err)
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch hintless {
	case "refuse":
		cfg.HintlessLogout = scalekittest.RefuseHintlessLogout
	case "end":
		cfg.HintlessLogout = scalekittest.EndHintlessLogout
	case "redirect":
		cfg.HintlessLogout = scalekittest.RedirectHintlessLogout
	default:
		return cfg, fmt.Errorf("-hintless-logout %q: want refuse, end or redirect", hintless)
	}
	if retryDelays != "" {
		delays, err := parseDelays(retryDelays)
		if err != nil {
			return cfg, err
		}
		cfg.DeliveryRetryDelays = delays
	}
	cfg.WebhookURLs = webhooks
	up.Domains = upstreamDomains
	if len(up.Domains) > 0 || up.OrganizationID != "" || up.ConnectionID != "" {
		cfg.Upstreams = append(cfg.Upstreams, up)
	} else if up.Addr != "" || up.ForwardPrompt || up.IDPLogoutRequired {
		return cfg, errors.New("the -upstream- options need a domain, an organization or a connection (-upstream-domain, -upstream-org, -upstream-connection)")
	}
	client.RedirectURIs, client.PostLogoutRedirectURIs, client.BackChannelLogoutURIs = redirects, postLogouts, backChans
	if client.ID == "" && (client.Secret != "" || public || len(redirects)+len(postLogouts)+len(backChans) > 0) {
		return cfg, errors.New("-client-secret, -public and the URI flags describe a client: give -client-id too")
	}
	if public && client.Secret != "" {
		return cfg, errors.New("-public and -client-secret: a public client has no secret")
	}
	if client.ID != "" {
		if !public && client.Secret == "" {
			client.Secret = rand.Text()
		}
		cfg.Clients = append(cfg.Clients, client)
	}
	if configFile != "" {
		if err := readConfig(configFile, &cfg); err != nil {
			return cfg, err
		}
	}
	if len(cfg.Clients) == 0 {
		return cfg, errors.New("no client: give -client-id (with -redirect-uri) or -config FILE")
	}
	return cfg, nil
}

// parseDelays reads -delivery-retry-delays: durations separated by commas,
// or none.
func parseDelays(s string) ([]time.Duration, error) {
	if s == "none" {
		return []time.Duration{}, nil
	}
	var out []time.Duration
	for _, part := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(part))
		if err != nil || d < 0 {
			return nil, fmt.Errorf("-delivery-retry-delays %q: want durations such as 1s,30s, or none", s)
		}
		out = append(out, d)
	}
	return out, nil
}

// configFile is the JSON file of -config.
type configFile struct {
	Clients []struct {
		ID                     string   `json:"id"`
		Secret                 string   `json:"secret"`
		Public                 bool     `json:"public"`
		RedirectURIs           []string `json:"redirect_uris"`
		PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris"`
		BackChannelLogoutURIs  []string `json:"backchannel_logout_uris"`
	} `json:"clients"`
	Organizations []struct {
		ID          string `json:"id"`
		DisplayName string `json:"display_name"`
		ExternalID  string `json:"external_id"`
	} `json:"organizations"`
	Users []struct {
		ID             string            `json:"id"`
		Email          string            `json:"email"`
		GivenName      string            `json:"given_name"`
		FamilyName     string            `json:"family_name"`
		OrganizationID string            `json:"organization_id"`
		ExternalID     string            `json:"external_id"`
		Metadata       map[string]string `json:"metadata"`
		Roles          []string          `json:"roles"`
		Permissions    []string          `json:"permissions"`
	} `json:"users"`
	Upstreams []struct {
		Domains           []string `json:"domains"`
		OrganizationID    string   `json:"organization_id"`
		ConnectionID      string   `json:"connection_id"`
		Addr              string   `json:"addr"`
		ForwardPrompt     bool     `json:"forward_prompt"`
		IDPLogoutRequired bool     `json:"idp_logout_required"`
	} `json:"upstreams"`
}

// readConfig adds what a -config file holds to cfg.
func readConfig(path string, cfg *scalekittest.Config) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("-config: %w", err)
	}
	var file configFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&file); err != nil {
		return fmt.Errorf("-config %s: %w", path, err)
	}
	for i, c := range file.Clients {
		switch {
		case c.ID == "":
			return fmt.Errorf("-config %s: client %d has no id", path, i+1)
		case c.Public && c.Secret != "":
			return fmt.Errorf("-config %s: client %s is public and has a secret", path, c.ID)
		case !c.Public && c.Secret == "":
			c.Secret = rand.Text()
		}
		cfg.Clients = append(cfg.Clients, scalekittest.Client{ID: c.ID, Secret: c.Secret, RedirectURIs: c.RedirectURIs,
			PostLogoutRedirectURIs: c.PostLogoutRedirectURIs, BackChannelLogoutURIs: c.BackChannelLogoutURIs})
	}
	for _, o := range file.Organizations {
		cfg.Organizations = append(cfg.Organizations, scalekittest.Organization{ID: o.ID, DisplayName: o.DisplayName, ExternalID: o.ExternalID})
	}
	for _, u := range file.Users {
		cfg.Users = append(cfg.Users, scalekittest.User{ID: u.ID, Email: u.Email, GivenName: u.GivenName, FamilyName: u.FamilyName,
			OrganizationID: u.OrganizationID, ExternalID: u.ExternalID, Metadata: u.Metadata, Roles: u.Roles, Permissions: u.Permissions})
	}
	for _, u := range file.Upstreams {
		cfg.Upstreams = append(cfg.Upstreams, scalekittest.UpstreamConfig{Domains: u.Domains, OrganizationID: u.OrganizationID,
			ConnectionID: u.ConnectionID, Addr: u.Addr, ForwardPrompt: u.ForwardPrompt, IDPLogoutRequired: u.IDPLogoutRequired})
	}
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orNone(s string) string {
	if s == "" {
		return "no domain"
	}
	return s
}
