// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/endsession/logout/scalekittest"
)

// The Quick start runs as written against the fake Scalekit: sign in, sign
// out through Scalekit and back, and the next sign-in asks again.
func TestQuickstart(t *testing.T) {
	var app http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { app.ServeHTTP(w, r) }))
	defer srv.Close()
	fake, err := scalekittest.New(scalekittest.Config{Clients: []scalekittest.Client{{
		ID: "skc_quickstart", Secret: "quickstart-secret",
		RedirectURIs: []string{srv.URL + "/callback"}, PostLogoutRedirectURIs: []string{srv.URL + "/logged-out"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	if app, err = newApp(context.Background(), fake.Issuer(), "skc_quickstart", "quickstart-secret", srv.URL, rdb); err != nil {
		t.Fatal(err)
	}

	browser := scalekittest.NewBrowser()
	resp, err := fake.SignIn(context.Background(), browser, srv.URL+"/login", "ada@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if page := read(t, resp); !strings.Contains(page, "Signed in as ada@example.com") {
		t.Fatalf("after sign-in: %s", page)
	}
	resp, err = browser.Post(srv.URL+"/logout", "application/x-www-form-urlencoded", nil)
	if err != nil {
		t.Fatal(err)
	}
	if page := read(t, resp); !strings.Contains(page, "Signed out") || resp.Request.URL.Path != "/logged-out" {
		t.Fatalf("after sign-out, at %s: %s", resp.Request.URL, page)
	}
	if n := len(fake.ActiveSessions(fake.User("ada@example.com").ID)); n != 0 {
		t.Errorf("%d Scalekit sessions after sign-out, want 0", n)
	}
	if _, forms, err := fake.SignInForms(context.Background(), browser, srv.URL+"/login", "ada@example.com"); err != nil || len(forms) == 0 {
		t.Errorf("the next sign-in showed forms %v (%v); want Scalekit's form", forms, err)
	}
}

func read(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
