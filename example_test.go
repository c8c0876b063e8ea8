// SPDX-License-Identifier: Apache-2.0

package logout_test

import (
	"context"
	"log"
	"net/http"
	"os"

	"github.com/redis/go-redis/v9"

	"github.com/endsession/logout"
)

// The usual wiring: sessions in Redis shared by every instance, logout
// mounted at /logout. A "Sign out" button is a form that POSTs there.
func ExampleNew() {
	// ContextTimeoutEnabled lets the store's calls go to go-redis directly:
	// go-redis then holds them to StoreTimeout itself.
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", ContextTimeoutEnabled: true})
	h, err := logout.New(context.Background(), logout.Config{
		Store:                 logout.NewRedisStore(rdb),
		Issuer:                os.Getenv("SCALEKIT_ENVIRONMENT_URL"), // https://acme.scalekit.dev
		ClientID:              os.Getenv("SCALEKIT_CLIENT_ID"),
		PostLogoutRedirectURI: "https://app.example.com/logged-out",
	})
	if err != nil {
		log.Fatal(err)
	}
	http.Handle("/logout", h)
}

// Sessions sealed in cookies need no server. Keys come from a secret store;
// list the new key first when rotating.
func ExampleNewCookieStore() {
	key := make([]byte, 32) // in production: 32 random bytes, the same on every instance
	store, err := logout.NewCookieStore(key)
	if err != nil {
		log.Fatal(err)
	}
	h, err := logout.New(context.Background(), logout.Config{
		Store:                 store,
		EndSessionEndpoint:    "https://acme.scalekit.dev/oidc/logout",
		PostLogoutRedirectURI: "https://app.example.com/logged-out",
		// The app also set the tokens in cookies of its own: clear them too.
		ClearCookies: []http.Cookie{
			{Name: "accessToken", Path: "/", Secure: true, HttpOnly: true},
			{Name: "refreshToken", Path: "/", Secure: true, HttpOnly: true},
			{Name: "idToken", Path: "/", Secure: true, HttpOnly: true},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	http.Handle("/logout", h)
}

// The sign-in callback saves what the code exchange produced; the Handler
// writes the cookie with the attributes its logout will delete.
func ExampleHandler_StartSession() {
	var h *logout.Handler // from logout.New
	http.HandleFunc("/callback", func(w http.ResponseWriter, r *http.Request) {
		// Exchange the code and verify the ID token (golang.org/x/oauth2 and
		// github.com/coreos/go-oidc/v3; see cmd/logoutdemo), then:
		s := logout.Session{
			Issuer:       "https://acme.scalekit.dev",
			Subject:      "usr_123", // the ID token's sub
			SessionID:    "ses_456", // its sid
			Email:        "ada@example.com",
			IDToken:      "eyJhbGciOi…", // the raw ID token, for id_token_hint
			AccessToken:  "…",
			RefreshToken: "…",
		}
		if err := h.StartSession(w, r, s); err != nil {
			http.Error(w, "could not start the session", http.StatusInternalServerError)
			return
		}
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
}

// Pages read the current session through the same Handler.
func ExampleHandler_Session() {
	var h *logout.Handler // from logout.New
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s, err := h.Session(r)
		if err != nil { // logout.ErrNoSession, or the store is down
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		w.Write([]byte("Hello, " + s.Email))
	})
}
