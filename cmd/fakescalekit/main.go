// Command fakescalekit serves a fake Scalekit environment (package
// scalekittest) for apps written in any language: sign-in with the
// authorization-code flow, refresh tokens, /oidc/logout, the session API over
// REST and gRPC, back-channel logout and webhooks, all on one port.
//
//	go run ./cmd/fakescalekit -client-id skc_1 -client-secret dev-secret \
//	    -redirect-uri http://localhost:3000/auth/callback -post-logout-uri http://localhost:3000/login
//
// Point the app's Scalekit SDK at the issuer it prints. Any email address
// signs in. Several clients come from a JSON file given with -clients:
//
//	{"clients": [{"id": "skc_1", "secret": "…", "redirect_uris": ["…"],
//	  "post_logout_redirect_uris": ["…"], "backchannel_logout_uris": ["…"]}]}
//
// An upstream identity provider, an organization's own single sign-on
// behind an enterprise connection, runs beside it for the email domains
// given with -upstream-domain (and for the organization and connection it
// prints): sign-ins for them go there and back through the browser, and its
// session outlives a logout of the fake unless -upstream-propagate-logout
// says otherwise. -upstream-forward-prompt passes prompt=login on to it.
//
//	go run ./cmd/fakescalekit -client-id skc_1 -redirect-uri http://localhost:3000/auth/callback \
//	    -upstream-domain sso.example
//
// It stops cleanly on SIGINT or SIGTERM. Bad flags print a message and exit
// with status 2.
package main

import (
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
		fmt.Fprintf(stdout, "fakescalekit: client %s, secret %s\n", c.ID, c.Secret)
	}
	if up := srv.Upstream(); up != nil {
		fmt.Fprintf(stdout, "fakescalekit: upstream provider %s for %s (organization %s, connection %s); prompt=login forwarded: %s; logout propagated: %s\n",
			up.URL, orNone(strings.Join(up.Domains, ", ")), up.OrganizationID, up.ConnectionID,
			yesNo(cfg.Upstream.ForwardPrompt), yesNo(cfg.Upstream.PropagateLogout))
	}
	if len(cfg.WebhookURLs) > 0 {
		fmt.Fprintf(stdout, "fakescalekit: webhooks to %s, signed with %s\n", strings.Join(cfg.WebhookURLs, ", "), srv.WebhookSecret())
	}
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
		redirects, postLogouts, backChans listFlag
		webhooks, upstreamDomains         listFlag
		clientsFile, hintless             string
	)
	fs := flag.NewFlagSet("fakescalekit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:8088", "address to listen on; the issuer is http://ADDR")
	fs.StringVar(&client.ID, "client-id", "", "register a client with this ID")
	fs.StringVar(&client.Secret, "client-secret", "", "the client's secret (default: a random one, printed)")
	fs.Var(&redirects, "redirect-uri", "the client's redirect URI (repeatable)")
	fs.Var(&postLogouts, "post-logout-uri", "the client's post-logout redirect URI (repeatable)")
	fs.Var(&backChans, "backchannel-uri", "the client's back-channel logout URI (repeatable)")
	fs.StringVar(&clientsFile, "clients", "", "JSON file with more clients: {\"clients\": [{\"id\", \"secret\", \"redirect_uris\", \"post_logout_redirect_uris\", \"backchannel_logout_uris\"}]}")
	fs.Var(&webhooks, "webhook-url", "URL that receives user.logout webhooks (repeatable)")
	fs.StringVar(&cfg.WebhookSecret, "webhook-secret", "", "webhook signing secret, whsec_<base64> (default: a random one, printed)")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", 0, "end sessions idle this long (0: never)")
	fs.DurationVar(&cfg.AbsoluteTimeout, "absolute-timeout", 0, "end sessions this long after sign-in (0: never)")
	fs.StringVar(&hintless, "hintless-logout", "refuse", "/oidc/logout with client_id or post_logout_redirect_uri but no id_token_hint: refuse, end or redirect")
	fs.BoolVar(&cfg.AcceptEndedSessionHint, "accept-ended-hint", false, "/oidc/logout accepts an id_token_hint whose session has ended")
	fs.BoolVar(&cfg.RevokeEndedSessionSucceeds, "revoke-ended-ok", false, "revoking an ended session answers with it instead of an error")
	fs.BoolVar(&cfg.RefreshReuseRevokesSession, "refresh-reuse-revokes", false, "a reused refresh token revokes its session")
	fs.Var(&upstreamDomains, "upstream-domain", "email domain whose users sign in through the upstream provider (repeatable; turns it on)")
	fs.StringVar(&cfg.Upstream.OrganizationID, "upstream-org", "", "the upstream's organization ID, org_<digits> (default: a new one, printed; turns it on)")
	fs.StringVar(&cfg.Upstream.ConnectionID, "upstream-connection", "", "the upstream's connection ID, conn_<digits> (default: a new one, printed; turns it on)")
	fs.StringVar(&cfg.Upstream.Addr, "upstream-addr", "", "address the upstream listens on (default: a free port on 127.0.0.1, served as localhost)")
	fs.BoolVar(&cfg.Upstream.ForwardPrompt, "upstream-forward-prompt", false, "pass prompt=login on to the upstream, which then asks for its password again")
	fs.BoolVar(&cfg.Upstream.PropagateLogout, "upstream-propagate-logout", false, "ending a session here also ends the upstream session behind it")
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
	cfg.WebhookURLs = webhooks
	cfg.Upstream.Domains = upstreamDomains
	client.RedirectURIs, client.PostLogoutRedirectURIs, client.BackChannelLogoutURIs = redirects, postLogouts, backChans
	if client.ID == "" && (client.Secret != "" || len(redirects)+len(postLogouts)+len(backChans) > 0) {
		return cfg, errors.New("-client-secret and the URI flags describe a client: give -client-id too")
	}
	if client.ID != "" {
		cfg.Clients = append(cfg.Clients, client)
	}
	if clientsFile != "" {
		more, err := readClients(clientsFile)
		if err != nil {
			return cfg, err
		}
		cfg.Clients = append(cfg.Clients, more...)
	}
	if len(cfg.Clients) == 0 {
		return cfg, errors.New("no client: give -client-id (with -redirect-uri) or -clients FILE")
	}
	for i := range cfg.Clients {
		if cfg.Clients[i].Secret == "" {
			cfg.Clients[i].Secret = rand.Text()
		}
	}
	return cfg, nil
}

// readClients reads a -clients file.
func readClients(path string) ([]scalekittest.Client, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("-clients: %w", err)
	}
	var file struct {
		Clients []struct {
			ID                     string   `json:"id"`
			Secret                 string   `json:"secret"`
			RedirectURIs           []string `json:"redirect_uris"`
			PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris"`
			BackChannelLogoutURIs  []string `json:"backchannel_logout_uris"`
		} `json:"clients"`
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&file); err != nil {
		return nil, fmt.Errorf("-clients %s: %w", path, err)
	}
	var out []scalekittest.Client
	for i, c := range file.Clients {
		if c.ID == "" {
			return nil, fmt.Errorf("-clients %s: client %d has no id", path, i+1)
		}
		out = append(out, scalekittest.Client{ID: c.ID, Secret: c.Secret, RedirectURIs: c.RedirectURIs,
			PostLogoutRedirectURIs: c.PostLogoutRedirectURIs, BackChannelLogoutURIs: c.BackChannelLogoutURIs})
	}
	return out, nil
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
