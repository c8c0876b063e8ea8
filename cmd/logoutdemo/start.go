// SPDX-License-Identifier: Apache-2.0

// What the demo starts: the embedded Scalekit and Redis when none is given,
// the session store, the logout handler and its receivers, and the server.

package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/endsession/logout"
	"github.com/endsession/logout/scalekittest"
	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"
)

type options struct {
	// Addr is the app's address; IDPAddr is the embedded Scalekit's, and
	// UpstreamAddr and SLOUpstreamAddr are its two upstream identity
	// providers': for ssoDomain, with IdP logout off, and for sloDomain,
	// with it on.
	Addr, IDPAddr                  string
	UpstreamAddr, SLOUpstreamAddr  string
	Issuer, ClientID, ClientSecret string
	Store, RedisURL                string
	// CookieKey seals cookie sessions; instances that share sessions share
	// it. Nil means a random key.
	CookieKey []byte
	// Fake configures the embedded Scalekit environment; its Addr and the
	// demo's own client are filled in, and unless it names upstream
	// identity providers, the demo's two connections: one for ssoDomain
	// with IdP logout off, one for sloDomain with it on.
	Fake scalekittest.Config
	// ForwardPrompt makes the embedded Scalekit pass prompt=login on to
	// the demo's upstream providers.
	ForwardPrompt bool
	// Reauthenticate is the handler's ReauthenticateAfterLogout.
	Reauthenticate bool
	// PostLogoutWithClientID is the logout handler's option of that name.
	PostLogoutWithClientID bool
	// IdleTimeout and AbsoluteTimeout end the app's sessions (zero: off,
	// and the handler's default absolute lifetime); IDPIdleTimeout and
	// IDPAbsoluteTimeout are the embedded Scalekit's session policy.
	IdleTimeout, AbsoluteTimeout       time.Duration
	IDPIdleTimeout, IDPAbsoluteTimeout time.Duration
	// BackstopDelay is how long after a logout the app checks, through
	// Scalekit's session API, that the provider session ended. Zero means
	// 3 seconds.
	BackstopDelay time.Duration
	// WebhookSecret verifies Scalekit's webhooks (whsec_…). The embedded
	// Scalekit's own is used when it runs.
	WebhookSecret string
	// Unnotified registers the app with the embedded Scalekit without a
	// back-channel logout URI or a webhook, so that a provider session can
	// end without the app hearing of it.
	Unnotified bool
}

// demo is a running app, with the embedded identity provider and Redis it
// started, if any.
type demo struct {
	AppURL       string
	Issuer       string
	ClientID     string
	ClientSecret string
	Fake         *scalekittest.Server // nil against a real provider
	Logout       *logout.Handler
	Redis        redis.UniversalClient
	// RedisName says which Redis the demo uses: "an in-process Redis", or
	// the address and database of the one -redis-url named.
	RedisName string

	// ends is the last few session endings the app's OnSessionEnd hook
	// heard of.
	ends    *endingLog
	srv     *http.Server
	closers []func()
}

func (d *demo) Close() {
	d.srv.Close()
	// Let the backstop finish what the last logouts scheduled.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	d.Logout.Close(ctx)
	cancel()
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
}

// start listens, starts what the options ask for, and serves the app.
func start(ctx context.Context, o options, log *slog.Logger) (_ *demo, err error) {
	d := &demo{}
	defer func() {
		if err != nil {
			for _, c := range d.closers {
				c()
			}
		}
	}()
	l, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, err
	}
	d.closers = append(d.closers, func() { l.Close() })
	d.AppURL = "http://" + l.Addr().String()

	if o.Issuer == "" {
		// The embedded Scalekit registers the app with the credentials
		// given, so that a person can call its session API with them.
		o.ClientID = cmp.Or(o.ClientID, "skc_demo_app")
		o.ClientSecret = cmp.Or(o.ClientSecret, rand.Text())
		fake := o.Fake
		fake.Addr = o.IDPAddr
		if fake.Addr == "" {
			// A free port on the app's own host, so that -addr alone is
			// enough to move the demo.
			host, _, _ := net.SplitHostPort(l.Addr().String())
			fake.Addr = net.JoinHostPort(host, "0")
		}
		if len(fake.Upstreams) == 0 {
			// Two enterprise connections that differ only in Scalekit's
			// "Enable IDP logout" switch, so that the panel can show what
			// it changes after "Sign out".
			fake.Upstreams = []scalekittest.UpstreamConfig{
				{Domains: []string{ssoDomain}, Addr: o.UpstreamAddr, ForwardPrompt: o.ForwardPrompt},
				{Domains: []string{sloDomain}, Addr: o.SLOUpstreamAddr, ForwardPrompt: o.ForwardPrompt, IDPLogoutRequired: true},
			}
		}
		fake.IdleTimeout, fake.AbsoluteTimeout = o.IDPIdleTimeout, o.IDPAbsoluteTimeout
		client := scalekittest.Client{
			ID:                     o.ClientID,
			Secret:                 o.ClientSecret,
			RedirectURIs:           []string{d.AppURL + "/callback"},
			PostLogoutRedirectURIs: []string{d.AppURL + "/logged-out"},
		}
		if !o.Unnotified {
			client.BackChannelLogoutURIs = []string{d.AppURL + "/backchannel-logout"}
			fake.WebhookURLs = append(fake.WebhookURLs, d.AppURL+"/webhooks/scalekit")
		}
		fake.Clients = append(fake.Clients, client)
		if d.Fake, err = scalekittest.New(fake); err != nil {
			return nil, err
		}
		d.closers = append(d.closers, d.Fake.Close)
		o.Issuer = d.Fake.Issuer()
		o.WebhookSecret = d.Fake.WebhookSecret()
	}
	if o.ClientID == "" {
		return nil, errors.New("-client-id is required with -issuer")
	}
	d.Issuer, d.ClientID, d.ClientSecret = o.Issuer, o.ClientID, o.ClientSecret

	if o.CookieKey == nil {
		o.CookieKey = make([]byte, 32)
		rand.Read(o.CookieKey)
	}
	store, err := d.openStore(o)
	if err != nil {
		return nil, err
	}
	meters, metrics, stopMetrics, err := newMetrics()
	if err != nil {
		return nil, err
	}
	d.closers = append(d.closers, stopMetrics)
	provider, err := oidc.NewProvider(ctx, o.Issuer)
	if err != nil {
		return nil, err
	}
	// With the app's client secret, the handler can end provider sessions
	// from the server (the backstop) and refresh tokens.
	var api *logout.Provider
	if o.ClientSecret != "" {
		if api, err = logout.NewProvider(logout.ProviderConfig{Issuer: o.Issuer, ClientID: o.ClientID, ClientSecret: o.ClientSecret, MeterProvider: meters}); err != nil {
			return nil, err
		}
	}
	delay := cmp.Or(o.BackstopDelay, 3*time.Second)
	d.ends = &endingLog{log: log}
	a := &app{
		log:        log,
		store:      store,
		sessionAPI: api != nil,
		ends:       d.ends,
		idle:       o.IdleTimeout,
		issuer:     o.Issuer,
		verifier:   provider.Verifier(&oidc.Config{ClientID: o.ClientID}),
		fake:       d.Fake,
		instance:   strings.TrimPrefix(d.AppURL, "http://"),
		metrics:    metrics,
		storeKind:  o.Store,
		backstops:  newBackstopLog(delay),
		oauth: oauth2.Config{
			ClientID:     o.ClientID,
			ClientSecret: o.ClientSecret,
			Endpoint:     provider.Endpoint(),
			RedirectURL:  d.AppURL + "/callback",
			Scopes:       []string{oidc.ScopeOpenID, "email", "profile", oidc.ScopeOfflineAccess},
		},
	}
	cfg := logout.Config{
		Store:                     store,
		Issuer:                    o.Issuer,
		ClientID:                  o.ClientID,
		PostLogoutRedirectURI:     d.AppURL + "/logged-out",
		PostLogoutWithClientID:    o.PostLogoutWithClientID,
		ReauthenticateAfterLogout: o.Reauthenticate,
		Cookie:                    logout.CookieConfig{InsecureHTTP: strings.HasPrefix(d.AppURL, "http:")},
		IdleTimeout:               o.IdleTimeout,
		SessionLifetime:           o.AbsoluteTimeout,
		Provider:                  api,
		BackstopDelay:             delay,
		Logger:                    log,
		// One function hears of every ending: this handler's, the
		// back-channel receiver's and the webhook receiver's.
		OnSessionEnd:  d.ends.sessionEnded,
		SessionsPage:  sessionsPage,
		MeterProvider: meters,
	}
	if api != nil {
		// The panel says when the backstop will look at a session.
		cfg.OnLogout = func(_ *http.Request, ended logout.Session) { a.backstops.scheduled(ended.SessionID) }
	}
	if d.Logout, err = logout.New(ctx, cfg); err != nil {
		return nil, err
	}
	a.logout = d.Logout
	a.webhooks = http.NotFoundHandler()
	if o.WebhookSecret != "" {
		if a.webhooks, err = logout.NewWebhookHandler(logout.WebhookConfig{
			Secrets: []string{o.WebhookSecret}, Issuer: o.Issuer, Store: store, Logger: log,
			OnSessionEnd: d.ends.sessionEnded, MeterProvider: meters,
		}); err != nil {
			return nil, err
		}
	}
	if a.backChannel, err = logout.NewBackChannelHandler(ctx, logout.BackChannelConfig{
		Issuer:        o.Issuer,
		ClientID:      o.ClientID,
		Store:         store,
		Logger:        log,
		OnSessionEnd:  d.ends.sessionEnded,
		MeterProvider: meters,
	}); err != nil {
		return nil, err
	}

	d.srv = &http.Server{Handler: a.routes(), ReadHeaderTimeout: 10 * time.Second}
	go d.srv.Serve(l)
	return d, nil
}

// openStore opens Redis (an in-process one when no URL is given) and the
// store on it: sessions themselves with -store redis, the revocation list of
// sealed-cookie sessions with -store cookie.
func (d *demo) openStore(o options) (logout.SessionStore, error) {
	if o.Store != "redis" && o.Store != "cookie" {
		return nil, fmt.Errorf("-store %q: want redis or cookie", o.Store)
	}
	if o.RedisURL == "" {
		mr, err := miniredis.Run()
		if err != nil {
			return nil, err
		}
		// Keys expire by the wall clock, as in a real Redis: an in-process
		// Redis keeps no clock of its own unless told to, and idle sessions
		// and revocation records would never lapse.
		mr.ClockTTL(true)
		d.closers = append(d.closers, mr.Close)
		o.RedisURL = "redis://" + mr.Addr()
		d.RedisName = "an in-process Redis"
	}
	opts, err := redis.ParseURL(o.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("-redis-url: %w", err)
	}
	if d.RedisName == "" {
		// The address and database, never the password the URL may hold.
		d.RedisName = fmt.Sprintf("the Redis at %s, database %d", opts.Addr, opts.DB)
	}
	opts.ContextTimeoutEnabled = true
	rdb := redis.NewClient(opts)
	d.closers = append(d.closers, func() { rdb.Close() })
	d.Redis = rdb
	if o.Store == "redis" {
		return logout.NewRedisStore(rdb), nil
	}
	return logout.NewRevocableCookieStore(logout.NewRevocationList(rdb), o.CookieKey)
}
