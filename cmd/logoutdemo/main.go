// SPDX-License-Identifier: Apache-2.0

// Command logoutdemo runs a small web app that signs users in with OpenID
// Connect and signs them out of every session layer with package logout,
// and shows, after each action, which layers still sign the browser in.
// Its signed-in page lists where the user is signed in, in the app and at
// the provider, with a button to sign out of each device or of every other
// one, and its other open tabs show a logout without a reload.
//
// With no flags it also starts an embedded Scalekit environment
// (scalekittest), with two enterprise SSO connections, each to an upstream
// identity provider of its own (as an organization's Okta would sit behind
// one): for the email domain sso.example with IdP logout off, and for
// slo.example with it on; and an in-process Redis, so it needs no account
// and no server:
//
//	go run ./cmd/logoutdemo
//
// Point it at a real Scalekit environment (or any OpenID provider with an
// end-session endpoint) and a real Redis with flags or their environment
// variables:
//
//	go run ./cmd/logoutdemo -issuer https://acme.scalekit.dev \
//	    -client-id skc_… -client-secret … -redis-url redis://127.0.0.1:6379/0
//
// Register http://127.0.0.1:8080/callback as a redirect URI,
// http://127.0.0.1:8080/logged-out as a post-logout redirect URI and
// http://127.0.0.1:8080/backchannel-logout as the back-channel logout URL.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	o := newFlags(flag.CommandLine, os.Getenv)
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	d, err := start(ctx, *o, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "logoutdemo:", err)
		os.Exit(1)
	}
	defer d.Close()
	fmt.Printf("logoutdemo: open %s   (store: %s in %s; identity provider: %s)\n", d.AppURL, o.Store, d.RedisName, d.Issuer)
	if d.Fake != nil {
		for _, up := range d.Fake.Upstreams() {
			fmt.Printf("logoutdemo: @%s goes through the upstream identity provider at %s (any password); IdP logout %s\n",
				strings.Join(up.Domains, ", @"), up.URL, map[bool]string{true: "on", false: "off"}[up.IDPLogoutRequired])
		}
		fmt.Println("logoutdemo: any other address signs in at Scalekit")
	}
	<-ctx.Done()
}

// newFlags registers the demo's flags on fs and returns the options they
// fill in when fs is parsed. Their defaults are the demo's, and for some the
// environment variables getenv reads.
func newFlags(fs *flag.FlagSet, getenv func(string) string) *options {
	o := &options{}
	fs.StringVar(&o.Addr, "addr", "127.0.0.1:8080", "address the app listens on")
	fs.StringVar(&o.IDPAddr, "idp-addr", "", "address of the embedded Scalekit environment; empty: a free port on the app's host")
	fs.StringVar(&o.UpstreamAddr, "upstream-addr", "", "address of the embedded Scalekit's upstream identity provider for @"+ssoDomain+", a connection with IdP logout off, served as localhost (a site of its own); empty: a free port")
	fs.StringVar(&o.SLOUpstreamAddr, "slo-upstream-addr", "", "address of the embedded Scalekit's upstream identity provider for @"+sloDomain+", a connection with IdP logout on, served as localhost; empty: a free port")
	fs.StringVar(&o.Issuer, "issuer", getenv("SCALEKIT_ENVIRONMENT_URL"), "Scalekit environment URL (OpenID issuer); empty starts the embedded one [SCALEKIT_ENVIRONMENT_URL]")
	fs.StringVar(&o.ClientID, "client-id", getenv("SCALEKIT_CLIENT_ID"), "OAuth client ID [SCALEKIT_CLIENT_ID]")
	fs.StringVar(&o.ClientSecret, "client-secret", getenv("SCALEKIT_CLIENT_SECRET"), "OAuth client secret [SCALEKIT_CLIENT_SECRET]")
	fs.StringVar(&o.Store, "store", "redis", "session store: redis or cookie")
	fs.StringVar(&o.RedisURL, "redis-url", getenv("REDIS_URL"), "Redis URL; empty runs an in-process Redis [REDIS_URL]")
	fs.StringVar(&o.WebhookSecret, "webhook-secret", getenv("SCALEKIT_WEBHOOK_SECRET"), "secret of Scalekit's webhooks to /webhooks/scalekit (whsec_…); the embedded environment's own when it runs [SCALEKIT_WEBHOOK_SECRET]")
	fs.DurationVar(&o.IdleTimeout, "idle-timeout", 0, "end app sessions unused for this long, such as 15m (0: off)")
	fs.DurationVar(&o.AbsoluteTimeout, "absolute-timeout", 0, "end app sessions this long after sign-in, however busy (0: 12h)")
	fs.DurationVar(&o.IDPIdleTimeout, "idp-idle-timeout", 0, "the embedded Scalekit's idle timeout (0: its default, 7 days)")
	fs.DurationVar(&o.IDPAbsoluteTimeout, "idp-absolute-timeout", 0, "the embedded Scalekit's absolute timeout (0: its default, 30 days)")
	fs.DurationVar(&o.BackstopDelay, "backstop-delay", 3*time.Second, "after a logout, how long to wait before ending the Scalekit session from the server if the browser never got there")
	fs.BoolVar(&o.Reauthenticate, "reauth", true, "after a logout, the next sign-in on that browser sends prompt=login and asks for credentials again (ReauthenticateAfterLogout; \"sign out everywhere\" always does); false shows an SSO user signed straight back in by their identity provider")
	fs.BoolVar(&o.ForwardPrompt, "upstream-forward-prompt", true, "the embedded Scalekit passes prompt=login on to the upstream providers, so that the demo can show their password form after a logout; whether Scalekit does is undocumented, and false shows the other reading: Scalekit asks for the email, the upstream signs the user in without a password")
	return o
}
