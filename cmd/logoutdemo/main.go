// Command logoutdemo runs a small web app that signs users in with OpenID
// Connect and signs them out of all three session layers with package logout.
//
// With no flags it also starts an embedded Scalekit environment
// (scalekittest) and an in-process Redis, so it needs no account and no
// server:
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
	"syscall"
	"time"
)

func main() {
	var o options
	flag.StringVar(&o.Addr, "addr", "127.0.0.1:8080", "address the app listens on")
	flag.StringVar(&o.IDPAddr, "idp-addr", "127.0.0.1:8081", "address of the embedded Scalekit environment")
	flag.StringVar(&o.Issuer, "issuer", os.Getenv("SCALEKIT_ENVIRONMENT_URL"), "Scalekit environment URL (OpenID issuer); empty starts the embedded one [SCALEKIT_ENVIRONMENT_URL]")
	flag.StringVar(&o.ClientID, "client-id", os.Getenv("SCALEKIT_CLIENT_ID"), "OAuth client ID [SCALEKIT_CLIENT_ID]")
	flag.StringVar(&o.ClientSecret, "client-secret", os.Getenv("SCALEKIT_CLIENT_SECRET"), "OAuth client secret [SCALEKIT_CLIENT_SECRET]")
	flag.StringVar(&o.Store, "store", "redis", "session store: redis or cookie")
	flag.StringVar(&o.RedisURL, "redis-url", os.Getenv("REDIS_URL"), "Redis URL; empty runs an in-process Redis [REDIS_URL]")
	flag.StringVar(&o.WebhookSecret, "webhook-secret", os.Getenv("SCALEKIT_WEBHOOK_SECRET"), "secret of Scalekit's webhooks to /webhooks/scalekit (whsec_…); the embedded environment's own when it runs [SCALEKIT_WEBHOOK_SECRET]")
	flag.DurationVar(&o.IdleTimeout, "idle-timeout", 0, "end app sessions unused for this long, such as 15m (0: off)")
	flag.DurationVar(&o.AbsoluteTimeout, "absolute-timeout", 0, "end app sessions this long after sign-in, however busy (0: 12h)")
	flag.DurationVar(&o.IDPIdleTimeout, "idp-idle-timeout", 0, "the embedded Scalekit's idle timeout (0: off)")
	flag.DurationVar(&o.IDPAbsoluteTimeout, "idp-absolute-timeout", 0, "the embedded Scalekit's absolute timeout (0: off)")
	flag.DurationVar(&o.BackstopDelay, "backstop-delay", 3*time.Second, "after a logout, how long to wait before ending the Scalekit session from the server if the browser never got there")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	d, err := start(ctx, o, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "logoutdemo:", err)
		os.Exit(1)
	}
	defer d.Close()
	fmt.Printf("logoutdemo: open %s   (store: %s, identity provider: %s)\n", d.AppURL, o.Store, d.Issuer)
	<-ctx.Done()
}
