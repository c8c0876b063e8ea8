// SPDX-License-Identifier: Apache-2.0

// Command quickstart is a whole app on package logout: OpenID Connect
// sign-in with Scalekit (or any other provider) and PKCE, sessions in Redis,
// and the logout that ends them. The README shows this file as it is, and
// main_test.go runs it against the fake Scalekit.
//
//	SCALEKIT_ENVIRONMENT_URL=https://acme.scalekit.dev SCALEKIT_CLIENT_ID=skc_… \
//	SCALEKIT_CLIENT_SECRET=… go run .
package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"log"
	"net/http"
	"os"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"

	"github.com/endsession/logout"
)

func main() {
	ctx := context.Background()
	env := map[string]string{}
	for _, name := range []string{"SCALEKIT_ENVIRONMENT_URL", "SCALEKIT_CLIENT_ID", "SCALEKIT_CLIENT_SECRET"} {
		if env[name] = os.Getenv(name); env[name] == "" {
			log.Fatalf("%s is not set: copy it from Scalekit's dashboard, API credentials", name)
		}
	}
	opts, err := redis.ParseURL(cmp.Or(os.Getenv("REDIS_URL"), "redis://127.0.0.1:6379/0"))
	if err != nil {
		log.Fatal(err)
	}
	opts.ContextTimeoutEnabled = true
	app, err := newApp(ctx, env["SCALEKIT_ENVIRONMENT_URL"], env["SCALEKIT_CLIENT_ID"],
		env["SCALEKIT_CLIENT_SECRET"], "http://localhost:8080", redis.NewClient(opts))
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(http.ListenAndServe("localhost:8080", app))
}

func newApp(ctx context.Context, issuer, clientID, clientSecret, appURL string, rdb redis.UniversalClient) (http.Handler, error) {
	provider, err := oidc.NewProvider(ctx, issuer) // discovery, once
	if err != nil {
		return nil, err
	}
	api, err := logout.NewProvider(logout.ProviderConfig{Issuer: issuer, ClientID: clientID, ClientSecret: clientSecret})
	if err != nil {
		return nil, err
	}
	h, err := logout.New(ctx, logout.Config{
		Store:                 logout.NewRedisStore(rdb),
		Issuer:                issuer,
		ClientID:              clientID,
		PostLogoutRedirectURI: appURL + "/logged-out",                  // registered in Scalekit's dashboard
		Cookie:                logout.CookieConfig{InsecureHTTP: true}, // plain http, in development only
		Provider:              api,                                     // ends Scalekit's session from the server too
	})
	if err != nil {
		return nil, err
	}
	verifier := provider.Verifier(&oidc.Config{ClientID: clientID})
	oauth := oauth2.Config{
		ClientID: clientID, ClientSecret: clientSecret, Endpoint: provider.Endpoint(),
		RedirectURL: appURL + "/callback", Scopes: []string{oidc.ScopeOpenID, "email", oidc.ScopeOfflineAccess},
	}

	pages := http.NewServeMux()
	pages.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		s, err := h.Session(r) // loaded once by the middleware
		if errors.Is(err, logout.ErrNoSession) {
			w.Write([]byte(`<a href="/login">Sign in</a>`))
			return
		}
		w.Write([]byte(`Signed in as ` + s.Email + `<form method="post" action="/logout"><button>Sign out</button></form>`))
	})
	pages.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		state, verifier := rand.Text(), oauth2.GenerateVerifier()
		http.SetCookie(w, &http.Cookie{Name: "login", Value: state + "." + verifier, Path: "/callback", MaxAge: 600, HttpOnly: true})
		opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}
		if h.PromptLogin(r) { // the first sign-in after "sign out everywhere" asks for credentials
			opts = append(opts, oauth2.SetAuthURLParam("prompt", "login"))
		}
		http.Redirect(w, r, oauth.AuthCodeURL(state, opts...), http.StatusFound)
	})
	pages.HandleFunc("GET /callback", func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie("login")
		state, codeVerifier, ok := cut(c, err)
		if !ok || r.URL.Query().Get("state") != state {
			http.Error(w, "sign-in failed; start again", http.StatusBadRequest)
			return
		}
		tok, err := oauth.Exchange(r.Context(), r.URL.Query().Get("code"), oauth2.VerifierOption(codeVerifier))
		if err != nil {
			http.Error(w, "sign-in failed", http.StatusBadGateway)
			return
		}
		rawIDToken, _ := tok.Extra("id_token").(string)
		idt, err := verifier.Verify(r.Context(), rawIDToken)
		var claims struct {
			SID   string `json:"sid"`
			Email string `json:"email"`
		}
		if err != nil || idt.Claims(&claims) != nil {
			http.Error(w, "sign-in failed", http.StatusBadRequest)
			return
		}
		err = h.StartSession(w, r, logout.Session{
			Issuer: idt.Issuer, Subject: idt.Subject, SessionID: claims.SID, Email: claims.Email,
			IDToken: rawIDToken, AccessToken: tok.AccessToken, AccessTokenExpiry: tok.Expiry, RefreshToken: tok.RefreshToken,
		})
		if err != nil {
			http.Error(w, "sign-in failed", http.StatusServiceUnavailable)
			return
		}
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	pages.HandleFunc("GET /logged-out", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`Signed out. <a href="/login">Sign in</a>`))
	})

	mux := http.NewServeMux()
	mux.Handle("/", h.Middleware(pages))
	mux.Handle("POST /logout", h)
	mux.Handle("POST /logout/everywhere", h.Everywhere())
	return mux, nil
}

// cut splits the login cookie into its state and PKCE verifier.
func cut(c *http.Cookie, err error) (state, verifier string, ok bool) {
	if err != nil {
		return "", "", false
	}
	state, verifier, ok = strings.Cut(c.Value, ".")
	return state, verifier, ok
}
