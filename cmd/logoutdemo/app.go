// SPDX-License-Identifier: Apache-2.0

// The demo app's routes and its signed-in and signed-out pages.

package main

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/endsession/logout"
	"github.com/endsession/logout/scalekittest"
)

// app is the demo's own pages and its OpenID Connect sign-in.
type app struct {
	backChannel *logout.BackChannelHandler
	webhooks    http.Handler
	log         *slog.Logger
	logout      *logout.Handler
	idle        time.Duration
	issuer      string
	oauth       oauth2.Config
	verifier    *oidc.IDTokenVerifier

	// What the "Active sessions" card needs: the store (can it list?),
	// whether the app can call the provider's session API (it has a client
	// secret), and the endings the OnSessionEnd hook heard.
	store      logout.SessionStore
	sessionAPI bool
	ends       *endingLog

	// What the layer panel shows besides the app's own session: the
	// embedded Scalekit (nil against a real provider), this instance's
	// address, the store, and when the backstop looks at each session.
	fake      *scalekittest.Server
	instance  string
	storeKind string
	backstops *backstopLog

	// metrics serves the package's OpenTelemetry metrics to Prometheus.
	metrics http.Handler
}

func (a *app) routes() http.Handler {
	// Pages see the session the middleware loaded (and renewed, for the
	// idle timeout) once per request.
	pages := http.NewServeMux()
	pages.HandleFunc("GET /{$}", a.home)
	pages.HandleFunc("GET /login", a.login)
	pages.HandleFunc("GET /callback", a.callback)
	pages.HandleFunc("GET /logged-out", a.loggedOut)
	pages.HandleFunc("GET /demo/layers", a.layersFragment)
	if a.fake != nil {
		pages.Handle("POST /demo/revoke", http.NewCrossOriginProtection().Handler(http.HandlerFunc(a.revoke)))
	}
	if a.sessionAPI {
		pages.Handle("POST /sessions/provider/end", http.NewCrossOriginProtection().Handler(http.HandlerFunc(a.endProviderSession)))
	}

	// The logout endpoints need no loaded session: a logout is one store
	// call that reads and ends it, and a load before it would be a second.
	// The active-sessions endpoints load the session themselves, once.
	mux := http.NewServeMux()
	mux.Handle("/", a.logout.Middleware(pages))
	mux.Handle("/logout", a.logout)
	mux.Handle("/logout/everywhere", a.logout.Everywhere())
	mux.Handle("GET /logout/broadcast.js", a.logout.BroadcastScript())
	if _, ok := a.store.(logout.Lister); ok {
		mux.Handle("/sessions/end", a.logout.SignOutSession())
	}
	mux.Handle("/sessions/others", a.logout.SignOutOtherDevices())
	mux.Handle("/backchannel-logout", a.backChannel)
	mux.Handle("/webhooks/scalekit", a.webhooks)
	mux.Handle("GET /metrics", a.metrics)
	return mux
}

// refreshBefore is how long before its access token expires the demo
// refreshes a session's tokens.
const refreshBefore = time.Minute

func (a *app) home(w http.ResponseWriter, r *http.Request) {
	s, err := a.logout.Session(r)
	if err == nil && !s.AccessTokenExpiry.IsZero() && time.Until(s.AccessTokenExpiry) < refreshBefore {
		// A refused refresh means Scalekit's session is gone: the app's
		// ends with it, and the page shows the user signed out.
		if s, err = a.logout.Refresh(w, r); err != nil && !errors.Is(err, logout.ErrNoSession) {
			a.log.Error("refreshing the session", "error", err)
		}
	}
	if err != nil && !errors.Is(err, logout.ErrNoSession) {
		a.log.Error("loading the session", "error", err)
	}
	data := a.pageData(r, s)
	if !s.Expiry.IsZero() {
		data.Ends = s.Expiry.Local().Format(time.TimeOnly)
	}
	if a.idle > 0 && !s.LastSeen.IsZero() {
		data.IdleEnds = s.LastSeen.Add(a.idle).Local().Format(time.TimeOnly)
	}
	if s.Subject != "" {
		data.Sessions = a.sessionsCard(r, s)
	}
	page(w, "home", data)
}

// pageData is what every page shows: the session, the sign-in buttons and
// the layer panel. The panel is built after the refresh, which may have
// ended the session.
type pageData struct {
	logout.Session
	Ends, IdleEnds string // when the session ends: at the latest, and if left idle
	// SSO are the "Sign in with SSO" buttons, one per connection of the
	// embedded Scalekit.
	SSO      []ssoButton
	Embedded bool // the embedded Scalekit runs: its own actions show
	Layers   panel
	// Sessions is the "Active sessions" card of a signed-in page.
	Sessions *sessionsCard
}

func (a *app) pageData(r *http.Request, s logout.Session) pageData {
	data := pageData{Session: s, Embedded: a.fake != nil, Layers: a.panel(r, s)}
	if a.fake != nil {
		for _, up := range a.fake.Upstreams() {
			data.SSO = append(data.SSO, ssoButton{Organization: up.OrganizationID, Domain: strings.Join(up.Domains, ", "), IDPLogout: up.IDPLogoutRequired})
		}
	}
	return data
}

// ssoButton is a "Sign in with SSO" button: it names the organization of
// one of the embedded Scalekit's connections, as Scalekit's SDKs let an app
// do.
type ssoButton struct {
	Organization, Domain string
	IDPLogout            bool // the connection's "Enable IDP logout"
}

func (a *app) loggedOut(w http.ResponseWriter, r *http.Request) {
	s, _ := a.logout.Session(r)
	page(w, "logged-out", a.pageData(r, s))
}
