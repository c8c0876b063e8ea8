// SPDX-License-Identifier: Apache-2.0

package scalekittest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"

	"github.com/endsession/logout/scalekittest"
)

// Example signs a test browser in to an app through the fake's real
// authorization-code flow, then revokes the user's sessions as an admin
// would, and waits until the app has heard of it by back channel.
func Example() {
	fake := scalekittest.NewServer()
	defer fake.Close()

	// The app under test: /login sends the browser to the fake, /callback
	// exchanges the code, /backchannel-logout hears of ended sessions.
	var conf oauth2.Config
	mux := http.NewServeMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, conf.AuthCodeURL("state"), http.StatusFound)
	})
	mux.HandleFunc("/callback", func(w http.ResponseWriter, r *http.Request) {
		if _, err := conf.Exchange(r.Context(), r.URL.Query().Get("code")); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		fmt.Fprint(w, "signed in")
	})
	mux.HandleFunc("/backchannel-logout", func(w http.ResponseWriter, r *http.Request) {})
	app := httptest.NewServer(mux)
	defer app.Close()
	fake.AddClient(scalekittest.Client{
		ID: "skc_app", Secret: "app-secret",
		RedirectURIs:          []string{app.URL + "/callback"},
		BackChannelLogoutURIs: []string{app.URL + "/backchannel-logout"},
	})
	conf = oauth2.Config{
		ClientID: "skc_app", ClientSecret: "app-secret", RedirectURL: app.URL + "/callback",
		Endpoint: oauth2.Endpoint{AuthURL: fake.URL + "/oauth/authorize", TokenURL: fake.URL + "/oauth/token"},
		Scopes:   []string{"openid", "email"},
	}

	ctx := context.Background()
	browser := scalekittest.NewBrowser()
	resp, err := fake.SignIn(ctx, browser, app.URL+"/login", "ada@example.com")
	if err != nil {
		panic(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(page))

	user := fake.User("ada@example.com")
	ses := fake.Sessions(user.ID)[0]
	fmt.Println(ses.Status, ses.Clients)

	revoked, _ := fake.RevokeUserSessions(user.ID)
	fmt.Println(len(revoked), revoked[0].Status)
	fake.WaitDeliveries(ctx)
	d := fake.Deliveries()[0]
	fmt.Println(d.Kind, d.ClientID, d.Delivered)
	// Output:
	// signed in
	// active [skc_app]
	// 1 revoked
	// back-channel skc_app true
}

// ExampleConfig_idleTimeout moves the fake's clock past the idle timeout:
// the session expires by itself and its refresh token stops working.
func ExampleConfig_idleTimeout() {
	var now atomic.Int64 // the clock is read from the fake's goroutines too
	now.Store(time.Date(2030, 1, 1, 9, 0, 0, 0, time.UTC).UnixNano())
	fake, err := scalekittest.New(scalekittest.Config{
		IdleTimeout: 30 * time.Minute,
		Now:         func() time.Time { return time.Unix(0, now.Load()).UTC() },
		Clients:     []scalekittest.Client{{ID: "skc_app", Secret: "s", RedirectURIs: []string{"http://app.localhost/callback"}}},
	})
	if err != nil {
		panic(err)
	}
	defer fake.Close()
	// A login_hint signs the user in without the form: a shortcut of the
	// fake for tests that do not care about the form.
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(fake.URL + "/oauth/authorize?client_id=skc_app&response_type=code&scope=openid&redirect_uri=http://app.localhost/callback&login_hint=ada@example.com")
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	user := fake.User("ada@example.com")

	now.Add(int64(29 * time.Minute))
	fmt.Println(fake.Sessions(user.ID)[0].Status)
	now.Add(int64(time.Minute))
	ses := fake.Sessions(user.ID)[0]
	fmt.Println(ses.Status, ses.EndedAt.Format(time.Kitchen))
	// Output:
	// active
	// expired 9:30AM
}

// ExampleUpstreamConfig shows the third layer of logout: a user of an
// organization's SSO domain signs in through its upstream provider, logs out
// of Scalekit, and the next sign-in in that browser passes straight through
// the upstream without a password. prompt=login brings the upstream's form
// back here because the environment is told to forward it, which Scalekit
// does not document.
func ExampleUpstreamConfig() {
	fake, err := scalekittest.New(scalekittest.Config{
		Upstreams: []scalekittest.UpstreamConfig{{Domains: []string{"sso.example"}, ForwardPrompt: true}},
	})
	if err != nil {
		panic(err)
	}
	defer fake.Close()

	// The app under test: /login passes login_hint and prompt on.
	var conf oauth2.Config
	mux := http.NewServeMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		opts := []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("login_hint", r.URL.Query().Get("login_hint"))}
		if p := r.URL.Query().Get("prompt"); p != "" {
			opts = append(opts, oauth2.SetAuthURLParam("prompt", p))
		}
		http.Redirect(w, r, conf.AuthCodeURL("state", opts...), http.StatusFound)
	})
	mux.HandleFunc("/callback", func(w http.ResponseWriter, r *http.Request) {
		if _, err := conf.Exchange(r.Context(), r.URL.Query().Get("code")); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
		}
	})
	app := httptest.NewServer(mux)
	defer app.Close()
	fake.AddClient(scalekittest.Client{ID: "skc_app", Secret: "app-secret", RedirectURIs: []string{app.URL + "/callback"}})
	conf = oauth2.Config{
		ClientID: "skc_app", ClientSecret: "app-secret", RedirectURL: app.URL + "/callback", Scopes: []string{"openid"},
		Endpoint: oauth2.Endpoint{AuthURL: fake.URL + "/oauth/authorize", TokenURL: fake.URL + "/oauth/token"},
	}

	ctx := context.Background()
	browser := scalekittest.NewBrowser()
	signIn := func(step, query string) {
		resp, forms, err := fake.SignInForms(ctx, browser, app.URL+"/login?"+query, "grace@sso.example")
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		fmt.Println(step, forms)
	}
	signIn("first sign-in:", "login_hint=grace@sso.example")
	resp, err := browser.Get(fake.URL + "/oidc/logout")
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	_, alive := fake.Upstreams()[0].SessionOf(browser)
	fmt.Println("upstream session alive after logout:", alive)
	signIn("next sign-in:", "login_hint=grace@sso.example")
	signIn("with prompt=login:", "login_hint=grace@sso.example&prompt=login")
	// Output:
	// first sign-in: [upstream]
	// upstream session alive after logout: true
	// next sign-in: []
	// with prompt=login: [upstream]
}

// ExampleUpstreamConfig_idpLogout shows a connection with Scalekit's "Enable
// IDP logout" on: the logout at /oidc/logout takes the browser through the
// upstream's own logout and back, which ends the upstream session too, so
// the next sign-in asks for its password again.
func ExampleUpstreamConfig_idpLogout() {
	fake, err := scalekittest.New(scalekittest.Config{
		Upstreams: []scalekittest.UpstreamConfig{{Domains: []string{"sso.example"}, IDPLogoutRequired: true}},
	})
	if err != nil {
		panic(err)
	}
	defer fake.Close()
	var conf oauth2.Config
	mux := http.NewServeMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, conf.AuthCodeURL("state", oauth2.SetAuthURLParam("login_hint", "grace@sso.example")), http.StatusFound)
	})
	mux.HandleFunc("/callback", func(w http.ResponseWriter, r *http.Request) {
		if _, err := conf.Exchange(r.Context(), r.URL.Query().Get("code")); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
		}
	})
	app := httptest.NewServer(mux)
	defer app.Close()
	fake.AddClient(scalekittest.Client{ID: "skc_app", Secret: "app-secret", RedirectURIs: []string{app.URL + "/callback"}})
	conf = oauth2.Config{
		ClientID: "skc_app", ClientSecret: "app-secret", RedirectURL: app.URL + "/callback", Scopes: []string{"openid"},
		Endpoint: oauth2.Endpoint{AuthURL: fake.URL + "/oauth/authorize", TokenURL: fake.URL + "/oauth/token"},
	}

	ctx := context.Background()
	browser := scalekittest.NewBrowser()
	for _, step := range []string{"first sign-in:", "next sign-in:"} {
		resp, forms, err := fake.SignInForms(ctx, browser, app.URL+"/login", "grace@sso.example")
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		fmt.Println(step, forms)
		if resp, err = browser.Get(fake.URL + "/oidc/logout"); err != nil {
			panic(err)
		}
		resp.Body.Close()
		_, alive := fake.Upstreams()[0].SessionOf(browser)
		last := fake.LogoutRequests()[len(fake.LogoutRequests())-1]
		fmt.Println("through the upstream's logout:", last.IDPLogoutReturned, "upstream session alive:", alive)
	}
	// Output:
	// first sign-in: [upstream]
	// through the upstream's logout: true upstream session alive: false
	// next sign-in: [upstream]
	// through the upstream's logout: true upstream session alive: false
}
