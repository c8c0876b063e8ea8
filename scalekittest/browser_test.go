// SPDX-License-Identifier: Apache-2.0

package scalekittest_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/endsession/logout/scalekittest"
)

// newApp is a minimal OpenID Connect app for clientID on fake: /login, which
// passes its query on to the authorization request (login_hint, prompt,
// organization_id…), and /callback that answers with the ID token's sid.
func newApp(t *testing.T, fake *scalekittest.Server, clientID string) *httptest.Server {
	t.Helper()
	var conf oauth2.Config
	mux := http.NewServeMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		var opts []oauth2.AuthCodeOption
		for k := range r.URL.Query() {
			opts = append(opts, oauth2.SetAuthURLParam(k, r.URL.Query().Get(k)))
		}
		http.Redirect(w, r, conf.AuthCodeURL("state", opts...), http.StatusFound)
	})
	mux.HandleFunc("/callback", func(w http.ResponseWriter, r *http.Request) {
		tok, err := conf.Exchange(r.Context(), r.URL.Query().Get("code"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		io.WriteString(w, claimsOf(t, tok.Extra("id_token").(string))["sid"].(string))
	})
	app := httptest.NewServer(mux)
	t.Cleanup(app.Close)
	if err := fake.AddClient(scalekittest.Client{ID: clientID, Secret: "secret", RedirectURIs: []string{app.URL + "/callback"}}); err != nil {
		t.Fatal(err)
	}
	conf = oauth2.Config{ClientID: clientID, ClientSecret: "secret", RedirectURL: app.URL + "/callback", Scopes: []string{"openid"},
		Endpoint: oauth2.Endpoint{AuthURL: fake.URL + "/oauth/authorize", TokenURL: fake.URL + "/oauth/token"}}
	return app
}

func signInBody(t *testing.T, fake *scalekittest.Server, browser *http.Client, loginURL, email string) string {
	t.Helper()
	resp, err := fake.SignIn(context.Background(), browser, loginURL, email)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestSignIn(t *testing.T) {
	fake := newServer(t, scalekittest.Config{})
	app1, app2 := newApp(t, fake, "skc_app1"), newApp(t, fake, "skc_app2")
	browser := scalekittest.NewBrowser()

	sid := signInBody(t, fake, browser, app1.URL+"/login", "ada@example.com")
	ada := fake.User("ada@example.com")
	if got := fake.ActiveSessions(ada.ID); len(got) != 1 || got[0] != sid {
		t.Fatalf("sessions %v, want the one the app signed in with, %s", got, sid)
	}
	// The same browser signing in to a second app passes through on the
	// fake's session: no form, so the email given is not used.
	if again := signInBody(t, fake, browser, app2.URL+"/login", "grace@example.com"); again != sid {
		t.Errorf("second app signed in with %s, want the shared session %s", again, sid)
	}
	if got := fake.Sessions(fake.User("grace@example.com").ID); len(got) != 0 {
		t.Errorf("grace has sessions %v; the form should not have shown", got)
	}
	if ses, _ := fake.Session(sid); strings.Join(ses.Clients, ",") != "skc_app1,skc_app2" {
		t.Errorf("session clients %v, want both apps", ses.Clients)
	}
	// A fresh browser gets the form and a session of its own.
	if other := signInBody(t, fake, scalekittest.NewBrowser(), app1.URL+"/login", "ada@example.com"); other == sid || len(fake.ActiveSessions(ada.ID)) != 2 {
		t.Errorf("a second browser shared the session %s", other)
	}
}

func TestSignInReportsWhereItStopped(t *testing.T) {
	fake := newServer(t, scalekittest.Config{})
	app := newApp(t, fake, "skc_app")
	// The fake no longer knows the app's redirect URI: its error page.
	fake.AddClient(scalekittest.Client{ID: "skc_app", Secret: "secret", RedirectURIs: []string{"https://elsewhere.example/cb"}})
	_, err := fake.SignIn(context.Background(), scalekittest.NewBrowser(), app.URL+"/login", "ada@example.com")
	if err == nil || !strings.Contains(err.Error(), "status 400") || !strings.Contains(err.Error(), "redirect_uri is not registered") {
		t.Errorf("got %v, want the fake's 400 page reported", err)
	}
}

// The browser marks its requests as navigations, so /oidc/logout records
// them as a browser would send them.
func TestBrowserNavigates(t *testing.T) {
	fake := newServer(t, scalekittest.Config{})
	app := newApp(t, fake, "skc_app")
	browser := scalekittest.NewBrowser()
	signInBody(t, fake, browser, app.URL+"/login", "ada@example.com")
	resp, err := browser.Get(fake.URL + "/oidc/logout")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	lr := fake.LogoutRequests()
	if len(lr) != 1 || lr[0].SecFetchMode != "navigate" || lr[0].SecFetchDest != "document" || !lr[0].HadCookie || lr[0].EndedSession == "" {
		t.Errorf("the fake saw %+v, want a document navigation with its cookie that ended the session", lr)
	}
}
