// SPDX-License-Identifier: Apache-2.0

package logout_test

import (
	"context"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"

	"github.com/endsession/logout"
)

// The Go of the README and of the pages under docs/, each region between
// "// docs:NAME" and "// docs:end" exactly as the documents show it, so that
// it compiles. TestDocsGoIsCompiled holds every Go block of the documents to
// a region here, in example_production_test.go, or to a whole file.

// The README's first lines.
func Example_docsIntro() {
	ctx := context.Background()
	// docs:intro
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", ContextTimeoutEnabled: true})
	h, err := logout.New(ctx, logout.Config{
		Store:                 logout.NewRedisStore(rdb),
		Issuer:                "https://acme.scalekit.dev",
		ClientID:              "skc_…",
		PostLogoutRedirectURI: "https://app.example.com/logged-out",
	})
	if err != nil {
		log.Fatal(err)
	}
	http.Handle("POST /logout", h)
	// docs:end
}

// docs/how-logout-works.md: a fresh authentication after logout.
func docsReauthenticate(ctx context.Context, r *http.Request, opts []oauth2.AuthCodeOption) error {
	// docs:reauthenticate
	h, err := logout.New(ctx, logout.Config{ /* … */ ReauthenticateAfterLogout: true})
	if err != nil {
		return err
	}

	// In the sign-in route: the first sign-in after a logout on this browser asks again.
	if h.PromptLogin(r) {
		opts = append(opts, oauth2.SetAuthURLParam("prompt", "login"))
	}
	// docs:end
	_ = opts
	return nil
}

// docs/how-logout-works.md: mounting the handler.
func docsMounting(h *logout.Handler, mux *http.ServeMux, router chi.Router, bc *logout.BackChannelHandler) {
	// docs:mounting
	http.Handle("/logout", h)                                    // net/http
	mux.Handle("POST /logout", h)                                // Go 1.22 patterns
	router.Post("/logout", h.ServeHTTP)                          // chi
	http.Handle("POST /logout/everywhere", h.Everywhere())       // end all of the user's sessions
	http.Handle("POST /backchannel-logout", bc)                  // docs/notifications.md
	http.Handle("GET /logout/broadcast.js", h.BroadcastScript()) // docs/active-sessions.md
	// docs:end
}

// docs/stores.md: the three stores.
func docsStores(rdb redis.UniversalClient, key []byte) error {
	// docs:stores
	redisStore := logout.NewRedisStore(rdb) // sessions in Redis

	cookieStore, err := logout.NewCookieStore(key) // sealed cookies, no server state
	if err != nil {
		return err
	}

	revocable, err := logout.NewRevocableCookieStore(logout.NewRevocationList(rdb), key) // sealed cookies, revocable
	if err != nil {
		return err
	}
	// docs:end
	_, _, _ = redisStore, cookieStore, revocable
	return nil
}

// docs/stores.md: idle and absolute timeouts.
func docsTimeouts(ctx context.Context, app http.Handler) error {
	// docs:timeouts
	h, err := logout.New(ctx, logout.Config{ /* … */ IdleTimeout: 15 * time.Minute, SessionLifetime: 8 * time.Hour})
	if err != nil {
		return err
	}
	http.Handle("/", h.Middleware(app)) // loads the session once per request and renews it
	// docs:end
	return nil
}

// docs/upgrading.md: logging out an app that keeps Scalekit's tokens in
// plain cookies.
func docsPlainCookies() logout.Config {
	// docs:plain-cookies
	cfg := logout.Config{ /* … */
		ClearCookies: []http.Cookie{
			{Name: "accessToken", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode},
			{Name: "refreshToken", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode},
			{Name: "idToken", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode},
		},
		IDTokenCookie: "idToken",
	}
	// docs:end
	return cfg
}

// docs/notifications.md: the back-channel logout receiver.
func docsBackChannel(ctx context.Context, store *logout.RedisStore) error {
	// docs:back-channel
	bc, err := logout.NewBackChannelHandler(ctx, logout.BackChannelConfig{
		Issuer: "https://acme.scalekit.dev", ClientID: "skc_…", Store: store,
	})
	if err != nil {
		return err
	}
	http.Handle("POST /backchannel-logout", bc)
	// docs:end
	return nil
}

// docs/notifications.md: the webhook receiver.
func docsWebhook(store *logout.RedisStore) error {
	// docs:webhook
	wh, err := logout.NewWebhookHandler(logout.WebhookConfig{
		Secrets: []string{os.Getenv("SCALEKIT_WEBHOOK_SECRET")}, // whsec_…
		Issuer:  "https://acme.scalekit.dev",
		Store:   store,
	})
	if err != nil {
		return err
	}
	http.Handle("POST /webhooks/scalekit", wh)
	// docs:end
	return nil
}

// docs/server-side.md: the app's credentials, for the backstop.
func docsProvider(ctx context.Context) error {
	// docs:provider
	api, err := logout.NewProvider(logout.ProviderConfig{
		Issuer: "https://acme.scalekit.dev", ClientID: "skc_…", ClientSecret: os.Getenv("SCALEKIT_CLIENT_SECRET"),
	})
	if err != nil {
		return err
	}
	h, err := logout.New(ctx, logout.Config{ /* … */ Provider: api, BackstopDelay: 10 * time.Second})
	if err != nil {
		return err
	}
	defer h.Close(ctx) // on shutdown, after the server stopped: let scheduled jobs finish
	// docs:end
	return nil
}

// docs/active-sessions.md: the endpoints of the active sessions card.
func docsActiveSessions(h *logout.Handler) {
	// docs:active-sessions
	http.Handle("POST /sessions/end", h.SignOutSession())         // form field "handle"
	http.Handle("POST /sessions/others", h.SignOutOtherDevices()) // all but this one
	// docs:end
}

// docs/active-sessions.md: telling the other tabs.
func docsBroadcast(h *logout.Handler) {
	// docs:broadcast
	http.Handle("GET /logout/broadcast.js", h.BroadcastScript())
	// docs:end
}
