// SPDX-License-Identifier: Apache-2.0

package scalekittest_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/endsession/logout/scalekittest"
)

// newFederation starts an environment whose upstream provider serves
// sso.example (and whatever else up says), and an app on it.
func newFederation(t *testing.T, up scalekittest.UpstreamConfig) (*scalekittest.Server, *httptest.Server) {
	t.Helper()
	if len(up.Domains) == 0 {
		up.Domains = []string{"sso.example"}
	}
	fake := newServer(t, scalekittest.Config{Upstreams: []scalekittest.UpstreamConfig{up}})
	return fake, newApp(t, fake, "skc_app")
}

// signInSeeing signs email in through the app's /login with query, and
// returns the session the app signed in with and the forms shown.
func signInSeeing(t *testing.T, fake *scalekittest.Server, browser *http.Client, app *httptest.Server, query url.Values, email string) (string, []scalekittest.Form) {
	t.Helper()
	resp, forms, err := fake.SignInForms(context.Background(), browser, app.URL+"/login?"+query.Encode(), email)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), forms
}

// lastAuthorization is the newest sign-in the fake recorded.
func lastAuthorization(t *testing.T, fake *scalekittest.Server) scalekittest.Authorization {
	t.Helper()
	all := fake.Authorizations()
	if len(all) == 0 {
		t.Fatal("no authorization recorded")
	}
	return all[len(all)-1]
}

func hint(email string) url.Values { return url.Values{"login_hint": {email}} }

var (
	noForm       []scalekittest.Form
	scalekitForm = []scalekittest.Form{scalekittest.ScalekitForm}
	upstreamForm = []scalekittest.Form{scalekittest.UpstreamForm}
)

// The first sign-in of a user of the upstream's domain, or of anyone the
// app sends to its organization, asks for the upstream's password.
func TestUpstreamFirstSignInShowsItsForm(t *testing.T) {
	fake, app := newFederation(t, scalekittest.UpstreamConfig{})
	up := fake.Upstreams()[0]
	tests := []struct {
		name, email string
		query       url.Values
		routedBy    string
	}{
		{"domain of the login_hint", "grace@sso.example", hint("grace@sso.example"), "login_hint"},
		{"organization_id", "contractor@partner.example", url.Values{"organization_id": {up.OrganizationID}}, "organization_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			browser := scalekittest.NewBrowser()
			sid, forms := signInSeeing(t, fake, browser, app, tt.query, tt.email)
			if !slices.Equal(forms, upstreamForm) {
				t.Errorf("forms %v, want %v", forms, upstreamForm)
			}
			ups, ok := up.SessionOf(browser)
			if !ok || ups.Email != tt.email {
				t.Fatalf("upstream session of the browser %+v (%v), want an active one for %s", ups, ok, tt.email)
			}
			ses, err := fake.Session(sid)
			if err != nil {
				t.Fatal(err)
			}
			if ses.UpstreamSessionID != ups.ID || ses.OrganizationID != up.OrganizationID {
				t.Errorf("session behind %s, in %s; want behind %s, in the upstream's %s", ses.UpstreamSessionID, ses.OrganizationID, ups.ID, up.OrganizationID)
			}
			a := lastAuthorization(t, fake)
			if !a.Upstream || a.RoutedBy != tt.routedBy || a.SessionID != sid || a.UpstreamSessionID != ups.ID || a.PassedThrough() {
				t.Errorf("authorization %+v, want one routed upstream by %s that signed in %s with a form", a, tt.routedBy, sid)
			}
		})
	}
}

// The shared-computer problem: logging out of the environment leaves the
// upstream session alive, so the next sign-in in that browser passes
// straight through both, without any form, and signs in the previous user
// whoever the app asked for.
func TestUpstreamSignsBackInAfterLogout(t *testing.T) {
	fake, app := newFederation(t, scalekittest.UpstreamConfig{})
	up := fake.Upstreams()[0]
	browser := scalekittest.NewBrowser()
	first, _ := signInSeeing(t, fake, browser, app, hint("grace@sso.example"), "grace@sso.example")
	before, _ := up.SessionOf(browser)

	resp, err := browser.Get(fake.URL + "/oidc/logout")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ses, _ := fake.Session(first); ses.Status != scalekittest.StatusLogout {
		t.Fatalf("the environment's session is %s after /oidc/logout, want %s", ses.Status, scalekittest.StatusLogout)
	}
	if after, ok := up.SessionOf(browser); !ok || after.ID != before.ID {
		t.Fatalf("upstream session %+v (%v) after the logout, want %s still active", after, ok, before.ID)
	}

	// The next person at this computer: the app passes their address.
	second, forms := signInSeeing(t, fake, browser, app, hint("alan@sso.example"), "alan@sso.example")
	if !slices.Equal(forms, noForm) {
		t.Errorf("forms %v, want none", forms)
	}
	ses, _ := fake.Session(second)
	if second == first || ses.Status != scalekittest.StatusActive || ses.UserID != fake.User("grace@sso.example").ID {
		t.Errorf("signed in %+v, want a new session of the previous user, grace", ses)
	}
	if a := lastAuthorization(t, fake); !a.Upstream || !a.PassedThrough() || a.UpstreamSessionID != before.ID {
		t.Errorf("authorization %+v, want it passed through the upstream session %s", a, before.ID)
	}
}

// prompt=login after a logout, with and without the environment passing it
// on to the upstream.
func TestPromptLoginAfterLogout(t *testing.T) {
	tests := []struct {
		name    string
		forward bool
		forms   []scalekittest.Form
		sameUps bool // the upstream session from before signed the user in
	}{
		{"forwarded", true, upstreamForm, false},
		// Not forwarded, prompt=login gets the environment's form, and the
		// upstream, asked without it, passes through on its session: a user
		// who types an address is signed in without a password. This is
		// the case an app must know about: prompt=login alone does not
		// protect a shared computer from an upstream session.
		{"not forwarded", false, scalekitForm, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, app := newFederation(t, scalekittest.UpstreamConfig{ForwardPrompt: tt.forward})
			browser := scalekittest.NewBrowser()
			signInSeeing(t, fake, browser, app, hint("grace@sso.example"), "grace@sso.example")
			before, _ := fake.Upstreams()[0].SessionOf(browser)
			resp, err := browser.Get(fake.URL + "/oidc/logout")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()

			q := hint("grace@sso.example")
			q.Set("prompt", "login")
			sid, forms := signInSeeing(t, fake, browser, app, q, "grace@sso.example")
			if !slices.Equal(forms, tt.forms) {
				t.Errorf("forms %v, want %v", forms, tt.forms)
			}
			ses, _ := fake.Session(sid)
			if got := ses.UpstreamSessionID == before.ID; got != tt.sameUps {
				t.Errorf("signed in through the earlier upstream session: got %v, want %v", got, tt.sameUps)
			}
			if a := lastAuthorization(t, fake); a.PromptForwarded != tt.forward || !a.Upstream {
				t.Errorf("authorization %+v, want PromptForwarded %v", a, tt.forward)
			}
		})
	}
}

// Every way a session here ends leaves the upstream session alone, except
// a logout in the browser through a connection with IdP logout on: that one
// takes the browser through the upstream's own logout.
func TestEndingASessionAndTheUpstream(t *testing.T) {
	tests := []struct {
		how       string
		idpLogout bool
		next      []scalekittest.Form // what the next sign-in shows
	}{
		{"logout", false, noForm},
		{"revoke", false, noForm},
		{"expire", false, noForm},
		{"logout", true, upstreamForm},
		// No browser, no round trip: the upstream session lives on.
		{"revoke", true, noForm},
		{"expire", true, noForm},
	}
	for _, tt := range tests {
		fake, app := newFederation(t, scalekittest.UpstreamConfig{IDPLogoutRequired: tt.idpLogout})
		browser := scalekittest.NewBrowser()
		sid, _ := signInSeeing(t, fake, browser, app, hint("grace@sso.example"), "grace@sso.example")
		var err error
		switch tt.how {
		case "logout":
			var resp *http.Response
			if resp, err = browser.Get(fake.URL + "/oidc/logout"); err == nil {
				resp.Body.Close()
			}
		case "revoke":
			_, err = fake.RevokeSession(sid)
		case "expire":
			_, err = fake.ExpireSession(sid)
		}
		if err != nil {
			t.Fatal(err)
		}
		ended := !slices.Equal(tt.next, noForm)
		if _, alive := fake.Upstreams()[0].SessionOf(browser); alive == ended {
			t.Errorf("%s, IdP logout %v: upstream session alive %v, want %v", tt.how, tt.idpLogout, alive, !ended)
		}
		if _, forms := signInSeeing(t, fake, browser, app, hint("grace@sso.example"), "grace@sso.example"); !slices.Equal(forms, tt.next) {
			t.Errorf("%s, IdP logout %v: next sign-in showed %v, want %v", tt.how, tt.idpLogout, forms, tt.next)
		}
	}
}

// With IdP logout on, /oidc/logout ends the environment's session, then
// sends the browser to the upstream's end-session endpoint with the
// connection's logout callback; the upstream ends its session and sends it
// back; the callback sends it on to the app's post-logout redirect URI with
// the app's state. Each hop is checked, and the callback is single use.
func TestIDPLogoutRoundTrip(t *testing.T) {
	fake, app := newFederation(t, scalekittest.UpstreamConfig{IDPLogoutRequired: true})
	up := fake.Upstreams()[0]
	if err := fake.AddClient(scalekittest.Client{ID: "skc_app", Secret: "secret", RedirectURIs: []string{app.URL + "/callback"},
		PostLogoutRedirectURIs: []string{app.URL + "/bye"}}); err != nil {
		t.Fatal(err)
	}
	browser := scalekittest.NewBrowser()
	sid, _ := signInSeeing(t, fake, browser, app, hint("grace@sso.example"), "grace@sso.example")
	ups, _ := up.SessionOf(browser)
	hint, err := fake.Sign(map[string]any{"iss": fake.URL, "sub": fake.User("grace@sso.example").ID, "aud": []string{"skc_app"}, "sid": sid}, "JWT")
	if err != nil {
		t.Fatal(err)
	}
	// The same cookies, one hop at a time.
	c := &http.Client{Jar: browser.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	step := func(target string) *http.Response {
		t.Helper()
		resp, err := c.Get(target)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	q := url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {app.URL + "/bye"}, "state": {"app-state"}}
	resp := step(fake.URL + "/oidc/logout?" + q.Encode())
	toUp, _ := resp.Location()
	callback := fake.URL + "/sso/v1/oidc/" + up.ConnectionID + "/logout/callback"
	if resp.StatusCode != http.StatusFound || toUp == nil || !strings.HasPrefix(toUp.String(), up.URL+"/logout?") ||
		toUp.Query().Get("post_logout_redirect_uri") != callback || toUp.Query().Get("state") == "" || toUp.Query().Get("state") == "app-state" {
		t.Fatalf("/oidc/logout: %d to %v; want 302 to the upstream's logout with the connection's callback and a state of its own", resp.StatusCode, toUp)
	}
	if ses, _ := fake.Session(sid); ses.Status != scalekittest.StatusLogout {
		t.Errorf("the environment's session is %s before the round trip, want logout already", ses.Status)
	}
	resp = step(toUp.String())
	back, _ := resp.Location()
	if resp.StatusCode != http.StatusFound || back == nil || !strings.HasPrefix(back.String(), callback+"?") {
		t.Fatalf("upstream logout: %d to %v, want 302 back to %s", resp.StatusCode, back, callback)
	}
	if _, alive := up.SessionOf(browser); alive {
		t.Error("the upstream session survived its own logout")
	}
	if got := up.Sessions(); len(got) != 1 || got[0].ID != ups.ID || got[0].Active {
		t.Errorf("upstream sessions %+v, want %s ended", got, ups.ID)
	}
	resp = step(back.String())
	done, _ := resp.Location()
	if resp.StatusCode != http.StatusFound || done == nil || done.String() != app.URL+"/bye?state=app-state" {
		t.Fatalf("logout callback: %d to %v, want the app's post-logout URI with its state", resp.StatusCode, done)
	}
	if lr := fake.LogoutRequests(); len(lr) != 1 || lr[0].IDPLogout != up.ConnectionID || lr[0].IDPLogoutURL != toUp.String() ||
		!lr[0].IDPLogoutReturned || lr[0].RedirectedTo != done.String() || lr[0].EndedSession != sid {
		t.Errorf("the record of the logout: %+v", lr)
	}
	if resp := step(back.String()); resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
		t.Errorf("the logout callback again: %d to %q, want 400 and no redirect", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The upstream sends nobody to a URI not registered for the
	// environment.
	evil := url.Values{"client_id": {toUp.Query().Get("client_id")}, "post_logout_redirect_uri": {"https://evil.example/"}, "state": {"x"}}
	if resp := step(up.URL + "/logout?" + evil.Encode()); resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
		t.Errorf("upstream logout to a foreign URI: %d to %q, want 400", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// Two connections side by side, one with IdP logout on and one off: after
// the same logout, the upstream session of the first has ended and the
// next sign-in asks for its password; the second's lives on and signs the
// user straight back in. Each upstream keeps its own cookie, though both
// are served from localhost.
func TestTwoConnections(t *testing.T) {
	fake := newServer(t, scalekittest.Config{Upstreams: []scalekittest.UpstreamConfig{
		{Domains: []string{"slo.example"}, IDPLogoutRequired: true},
		{Domains: []string{"sso.example"}},
	}})
	app := newApp(t, fake, "skc_app")
	on, off := fake.Upstreams()[0], fake.Upstreams()[1]
	if on.SessionCookie == off.SessionCookie {
		t.Fatalf("both upstreams use the cookie %s", on.SessionCookie)
	}
	for _, tt := range []struct {
		email string
		up    *scalekittest.Upstream
		next  []scalekittest.Form
	}{
		{"grace@slo.example", on, upstreamForm},
		{"alan@sso.example", off, noForm},
	} {
		browser := scalekittest.NewBrowser()
		sid, _ := signInSeeing(t, fake, browser, app, hint(tt.email), tt.email)
		ses, _ := fake.Session(sid)
		if ses.ConnectionID != tt.up.ConnectionID {
			t.Errorf("%s signed in through %s, want %s", tt.email, ses.ConnectionID, tt.up.ConnectionID)
		}
		resp, err := browser.Get(fake.URL + "/oidc/logout")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), `id="signed-out"`) || !strings.HasPrefix(resp.Request.URL.String(), fake.URL) {
			t.Errorf("%s: the logout ended at %s, want the environment's signed-out page", tt.email, resp.Request.URL)
		}
		_, alive := tt.up.SessionOf(browser)
		if alive == tt.up.IDPLogoutRequired {
			t.Errorf("%s: upstream session alive %v, want %v", tt.email, alive, !tt.up.IDPLogoutRequired)
		}
		if _, forms := signInSeeing(t, fake, browser, app, hint(tt.email), tt.email); !slices.Equal(forms, tt.next) {
			t.Errorf("%s: the next sign-in showed %v, want %v", tt.email, forms, tt.next)
		}
	}
}

// A user outside the upstream's domains signs in exactly as without an
// upstream: the form once, then single sign-on, and the login_hint
// shortcut.
func TestUpstreamLeavesOtherUsersAlone(t *testing.T) {
	for _, ups := range [][]scalekittest.UpstreamConfig{nil, {{Domains: []string{"sso.example"}}}} {
		fake := newServer(t, scalekittest.Config{Upstreams: ups})
		app := newApp(t, fake, "skc_app")
		browser := scalekittest.NewBrowser()
		_, first := signInSeeing(t, fake, browser, app, nil, "ada@example.com")
		_, second := signInSeeing(t, fake, browser, app, nil, "ada@example.com")
		_, hinted := signInSeeing(t, fake, scalekittest.NewBrowser(), app, hint("ada@example.com"), "ada@example.com")
		got := [][]scalekittest.Form{first, second, hinted}
		if want := [][]scalekittest.Form{scalekitForm, noForm, noForm}; !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("upstreams %v: forms %v, want %v", ups, got, want)
		}
		for _, a := range fake.Authorizations() {
			if a.Upstream || a.UpstreamSessionID != "" {
				t.Errorf("upstreams %v: authorization %+v went upstream", ups, a)
			}
		}
		if got := len(fake.Upstreams()); got != len(ups) {
			t.Fatalf("%d upstreams run, want %d", got, len(ups))
		}
		for _, u := range fake.Upstreams() {
			if len(u.Sessions()) != 0 {
				t.Errorf("upstream sessions %v, want none", u.Sessions())
			}
			if fake.User("ada@example.com").OrganizationID == u.OrganizationID {
				t.Errorf("ada is in the upstream's organization %s", u.OrganizationID)
			}
		}
	}
}

// Which requests go upstream: the first of connection_id, organization_id,
// domain_hint, domain and login_hint (or the typed address) decides.
func TestUpstreamRouting(t *testing.T) {
	fake := newServer(t, scalekittest.Config{Upstreams: []scalekittest.UpstreamConfig{{
		Domains: []string{"sso.example", "Corp.Example"}, OrganizationID: "org_7001", ConnectionID: "conn_7002"}},
		Organizations: []scalekittest.Organization{{ID: "org_1", DisplayName: "Another organization"}}})
	up := fake.Upstreams()[0]
	// The connection of the environment's own form, as a sign-in there
	// names it.
	_, tok := signIn(t, fake, "ada@example.com")
	ownConn := claimsOf(t, tok.IDToken)["amr"].([]any)[0].(string)
	tests := []struct {
		name     string
		params   url.Values
		typed    string // the address typed into the environment's form, if it shows
		upstream bool
		by       string
	}{
		{"connection_id", url.Values{"connection_id": {"conn_7002"}}, "", true, "connection_id"},
		{"organization_id", url.Values{"organization_id": {"org_7001"}}, "", true, "organization_id"},
		{"domain_hint", url.Values{"domain_hint": {"sso.example"}}, "", true, "domain_hint"},
		{"the Node SDK's domainHint", url.Values{"domain_hint": {"corp.example"}, "domain": {"corp.example"}}, "", true, "domain_hint"},
		{"domain, any case", url.Values{"domain": {"SSO.example"}}, "", true, "domain"},
		{"login_hint", url.Values{"login_hint": {"grace@sso.example"}}, "", true, "login_hint"},
		{"typed address", url.Values{}, "grace@corp.example", true, "email"},
		{"typed address over another hint", url.Values{"login_hint": {"ada@example.com"}, "prompt": {"login"}}, "grace@sso.example", true, "email"},
		{"login_hint elsewhere", url.Values{"login_hint": {"ada@example.com"}}, "", false, ""},
		{"typed address elsewhere", url.Values{}, "ada@example.com", false, ""},
		{"subdomain", url.Values{"login_hint": {"grace@eu.sso.example"}}, "", false, ""},
		{"another organization wins over the hint", url.Values{"organization_id": {"org_1"}, "login_hint": {"grace@sso.example"}}, "", false, ""},
		{"another connection wins over the domain", url.Values{"connection_id": {ownConn}, "domain_hint": {"sso.example"}, "login_hint": {"grace@sso.example"}}, "", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := userAgent()
			q := url.Values{"client_id": {"skc_1"}, "redirect_uri": {callback}, "response_type": {"code"}, "scope": {"openid"}, "state": {"st"}}
			for k, v := range tt.params {
				q[k] = v
			}
			resp, err := c.Get(fake.URL + "/oauth/authorize?" + q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if tt.typed != "" {
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d, want the form", resp.StatusCode)
				}
				resp, err = c.PostForm(fake.URL+"/oauth/authorize", url.Values{"request": {q.Encode()}, "email": {tt.typed}})
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
			}
			loc, _ := resp.Location()
			if got := loc != nil && strings.HasPrefix(loc.String(), up.URL+"/authorize?"); got != tt.upstream {
				t.Fatalf("went upstream: got %v (Location %v), want %v", got, loc, tt.upstream)
			}
			if !tt.upstream {
				if loc == nil || !strings.HasPrefix(loc.String(), callback+"?code=") {
					t.Errorf("Location %v, want the app's callback with a code", loc)
				}
				return
			}
			if a := lastAuthorization(t, fake); a.RoutedBy != tt.by || !a.Upstream {
				t.Errorf("routed by %q, want %q", a.RoutedBy, tt.by)
			}
			wantHint := tt.typed
			if wantHint == "" {
				wantHint = tt.params.Get("login_hint")
			}
			if got := loc.Query().Get("login_hint"); got != wantHint {
				t.Errorf("login_hint sent upstream %q, want %q", got, wantHint)
			}
			if loc.Query().Has("prompt") {
				t.Errorf("prompt sent upstream without ForwardPrompt: %v", loc)
			}
		})
	}
}

// The upstream is a site of its own: another host, not just another port,
// since browsers share cookies across ports; its HttpOnly cookie stays
// there, and the environment's stays at the environment. Each hop is a
// real browser round trip.
func TestUpstreamHasItsOwnOriginAndCookie(t *testing.T) {
	fake := newServer(t, scalekittest.Config{Upstreams: []scalekittest.UpstreamConfig{{Domains: []string{"sso.example"}}}})
	up := fake.Upstreams()[0]
	fakeURL, _ := url.Parse(fake.URL)
	upURL, _ := url.Parse(up.URL)
	if fakeURL.Hostname() == upURL.Hostname() {
		t.Fatalf("the upstream %s is on the environment's host %s", up.URL, fake.URL)
	}
	c := userAgent()
	step := func(resp *http.Response, err error) *http.Response {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	q := url.Values{"client_id": {"skc_1"}, "redirect_uri": {callback}, "response_type": {"code"}, "scope": {"openid"}, "state": {"app-state"}, "login_hint": {"grace@sso.example"}}
	resp := step(c.Get(fake.URL + "/oauth/authorize?" + q.Encode()))
	toUpstream, _ := resp.Location()
	if resp.StatusCode != http.StatusFound || toUpstream == nil || !strings.HasPrefix(toUpstream.String(), up.URL+"/authorize?") {
		t.Fatalf("status %d to %v, want a redirect to the upstream", resp.StatusCode, toUpstream)
	}
	if st := toUpstream.Query().Get("state"); st == "" || st == "app-state" {
		t.Errorf("state sent upstream %q, want the environment's own", st)
	}
	if resp := step(c.Get(toUpstream.String())); resp.StatusCode != http.StatusOK {
		t.Fatalf("upstream answered %d, want its form", resp.StatusCode)
	}
	resp = step(c.PostForm(up.URL+"/authorize", url.Values{"request": {toUpstream.RawQuery}, "email": {"grace@sso.example"}, "password": {"x"}}))
	back, _ := resp.Location()
	var upCookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == up.SessionCookie {
			upCookie = ck
		}
	}
	if resp.StatusCode != http.StatusSeeOther || back == nil || !strings.HasPrefix(back.String(), fake.URL+"/") || upCookie == nil || !upCookie.HttpOnly {
		t.Fatalf("after the form: %d to %v, cookie %v; want 303 back to the environment with an HttpOnly %s", resp.StatusCode, back, upCookie, up.SessionCookie)
	}
	resp = step(c.Get(back.String()))
	done, _ := resp.Location()
	if resp.StatusCode != http.StatusFound || done == nil || !strings.HasPrefix(done.String(), callback+"?") || done.Query().Get("state") != "app-state" {
		t.Fatalf("the environment answered %d to %v, want the app's callback with its state", resp.StatusCode, done)
	}
	names := func(u *url.URL) (out []string) {
		for _, ck := range c.Jar.Cookies(u) {
			out = append(out, ck.Name)
		}
		return out
	}
	if got := names(fakeURL); !slices.Equal(got, []string{scalekittest.SessionCookie}) {
		t.Errorf("cookies sent to the environment %v, want only %s", got, scalekittest.SessionCookie)
	}
	if got := names(upURL); !slices.Equal(got, []string{up.SessionCookie}) {
		t.Errorf("cookies sent to the upstream %v, want only %s", got, up.SessionCookie)
	}
	// The round trip is single use: the same return is refused.
	if resp := step(c.Get(back.String())); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("replayed return from the upstream: %d, want 400", resp.StatusCode)
	}
}

// A test, or the user at the provider's own "Sign out", can end the
// upstream session; the environment's session is another layer and lives
// on.
func TestEndingTheUpstreamSession(t *testing.T) {
	tests := []string{"EndSession", "the provider's sign-out"}
	for _, how := range tests {
		fake, app := newFederation(t, scalekittest.UpstreamConfig{})
		up := fake.Upstreams()[0]
		browser := scalekittest.NewBrowser()
		sid, _ := signInSeeing(t, fake, browser, app, hint("grace@sso.example"), "grace@sso.example")
		ups, _ := up.SessionOf(browser)
		if how == "EndSession" {
			if err := up.EndSession(ups.ID); err != nil {
				t.Fatal(err)
			}
		} else {
			resp, err := browser.Get(up.URL + "/logout")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		if _, alive := up.SessionOf(browser); alive {
			t.Errorf("%s: the upstream session is still alive", how)
		}
		if _, ok := up.ActiveSession("grace@sso.example"); ok {
			t.Errorf("%s: ActiveSession still finds one", how)
		}
		if got := up.Sessions(); len(got) != 1 || got[0].Active || got[0].EndedAt.IsZero() {
			t.Errorf("%s: upstream sessions %+v, want the one, ended", how, got)
		}
		// The environment's session still signs the user in to the app.
		if again, forms := signInSeeing(t, fake, browser, app, nil, "grace@sso.example"); again != sid || len(forms) != 0 {
			t.Errorf("%s: next sign-in %s with %v, want the environment's session %s and no form", how, again, forms, sid)
		}
	}
	fake, _ := newFederation(t, scalekittest.UpstreamConfig{})
	if err := fake.Upstreams()[0].EndSession("ups_1"); !errors.Is(err, scalekittest.ErrNotFound) {
		t.Errorf("ending an unknown upstream session: got %v, want ErrNotFound", err)
	}
}

func TestUpstreamRefusesBadRequests(t *testing.T) {
	fake := newServer(t, scalekittest.Config{Upstreams: []scalekittest.UpstreamConfig{{Domains: []string{"sso.example"}}}})
	up := fake.Upstreams()[0]
	plain := newServer(t, scalekittest.Config{})
	tests := []struct {
		name, url string
		status    int
	}{
		{"return with an unknown state", fake.URL + "/sso/v1/oidc/" + up.ConnectionID + "/callback?state=sks_x&code=upc_x", http.StatusBadRequest},
		{"return to another connection", fake.URL + "/sso/v1/oidc/conn_1/callback?state=sks_x&code=upc_x", http.StatusNotFound},
		{"return without an upstream", plain.URL + "/sso/v1/oidc/" + up.ConnectionID + "/callback?state=sks_x&code=upc_x", http.StatusNotFound},
		{"logout callback with an unknown state", fake.URL + "/sso/v1/oidc/" + up.ConnectionID + "/logout/callback?state=skl_x", http.StatusBadRequest},
		{"upstream, unknown client", up.URL + "/authorize?client_id=x&response_type=code&state=s&redirect_uri=" + url.QueryEscape(fake.URL+"/sso/v1/oidc/"+up.ConnectionID+"/callback"), http.StatusBadRequest},
		{"upstream, foreign redirect", up.URL + "/authorize?response_type=code&state=s&redirect_uri=https://evil.example/", http.StatusBadRequest},
	}
	for _, tt := range tests {
		resp, err := userAgent().Get(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.status || resp.Header.Get("Location") != "" {
			t.Errorf("%s: got %d to %q, want %d and no redirect", tt.name, resp.StatusCode, resp.Header.Get("Location"), tt.status)
		}
	}
}

func TestCloseStopsTheUpstream(t *testing.T) {
	fake, err := scalekittest.New(scalekittest.Config{Upstreams: []scalekittest.UpstreamConfig{{Domains: []string{"sso.example"}}}})
	if err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(fake.Upstreams()[0].URL, "http://")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := fake.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", host, time.Second); err == nil {
		c.Close()
		t.Error("the upstream still accepts connections after Shutdown")
	}
}
