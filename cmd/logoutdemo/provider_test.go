// SPDX-License-Identifier: Apache-2.0

package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/endsession/logout/scalekittest"
)

// TestLogoutUnderEachReading runs the app's logout against each reading the
// fake offers of what Scalekit leaves undocumented, in the three states a
// user can log out from: both sessions alive; the provider's session already
// revoked while the app's lives on (its back-channel notice never came); no
// app session left at all. The browser must end where that reading sends
// the request the handler built, and the provider's session must end
// exactly when the provider accepted the request.
func TestLogoutUnderEachReading(t *testing.T) {
	strict := scalekittest.Config{}
	end := scalekittest.Config{HintlessLogout: scalekittest.EndHintlessLogout}
	redirect := scalekittest.Config{HintlessLogout: scalekittest.RedirectHintlessLogout}
	tests := []struct {
		name  string
		fake  scalekittest.Config
		state string // "live", "ended" or "no app session"
		// withClientID sets the handler's PostLogoutWithClientID: without
		// an ID token it sends client_id and post_logout_redirect_uri
		// instead of the bare end-session URL.
		withClientID bool
		// where the browser lands: "logged-out" (the app's page), "error"
		// (the provider's 400 page) or "signed-out" (the provider's page)
		want string
	}{
		{"live, strict", strict, "live", false, "logged-out"},
		{"ended, strict", strict, "ended", false, "error"},
		{"ended, AcceptEndedSessionHint", scalekittest.Config{AcceptEndedSessionHint: true}, "ended", false, "logged-out"},
		{"no app session, strict", strict, "no app session", false, "signed-out"},
		{"no app session, EndHintlessLogout", end, "no app session", false, "signed-out"},
		{"no app session, RedirectHintlessLogout", redirect, "no app session", false, "signed-out"},
		{"no app session, strict, PostLogoutWithClientID", strict, "no app session", true, "error"},
		{"no app session, EndHintlessLogout, PostLogoutWithClientID", end, "no app session", true, "signed-out"},
		{"no app session, RedirectHintlessLogout, PostLogoutWithClientID", redirect, "no app session", true, "logged-out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := startDemo(t, options{Store: "redis", Fake: tt.fake, PostLogoutWithClientID: tt.withClientID, Unnotified: true})
			c := browserlessClient(t)
			const email = "ada@example.com"
			follow(t, c, d.AppURL+"/login?login_hint="+email)
			user := d.Fake.User(email)
			sid := d.Fake.ActiveSessions(user.ID)[0]
			switch tt.state {
			case "ended":
				// The provider session ends without the app hearing of it.
				if _, err := d.Fake.RevokeSession(sid); err != nil {
					t.Fatal(err)
				}
			case "no app session":
				fakeURL, _ := url.Parse(d.Fake.URL)
				fresh := browserlessClient(t)
				for _, ck := range c.Jar.Cookies(fakeURL) { // cookies ignore ports: take the provider's alone
					if ck.Name == scalekittest.SessionCookie {
						fresh.Jar.SetCookies(fakeURL, []*http.Cookie{ck})
					}
				}
				c = fresh
			}
			resp := post(t, c, d.AppURL+"/logout", "Sec-Fetch-Site", "same-origin", "Sec-Fetch-Mode", "navigate")
			loc, err := resp.Location()
			if resp.StatusCode != http.StatusSeeOther || err != nil || !strings.HasPrefix(loc.String(), d.Fake.URL+"/oidc/logout") {
				t.Fatalf("logout: %d to %v; want 303 to the provider", resp.StatusCode, loc)
			}
			want := tt.want
			resp, err = c.Get(loc.String())
			if err != nil {
				t.Fatal(err)
			}
			page := body(t, resp)
			got := map[int]string{http.StatusFound: "logged-out", http.StatusBadRequest: "error", http.StatusOK: "signed-out"}[resp.StatusCode]
			if got == "logged-out" && !strings.HasPrefix(resp.Header.Get("Location"), d.AppURL+"/logged-out") {
				got = "redirected to " + resp.Header.Get("Location")
			}
			if got != want {
				t.Fatalf("the provider answered %d (%s): %s; want %s", resp.StatusCode, got, page, want)
			}
			ses, _ := d.Fake.Session(sid)
			switch {
			case tt.state == "ended" && ses.Status != scalekittest.StatusRevoked:
				t.Errorf("provider session %s, want it still revoked", ses.Status)
			case tt.state != "ended" && want == "error" && ses.Status != scalekittest.StatusActive:
				t.Errorf("provider session %s after a refused logout, want active", ses.Status)
			case tt.state != "ended" && want != "error" && ses.Status != scalekittest.StatusLogout:
				t.Errorf("provider session %s after an accepted logout, want logout", ses.Status)
			}
			if page := body(t, follow(t, c, d.AppURL+"/")); signedInPage(page, email) {
				t.Error("the app still signs the user in after logout")
			}
		})
	}
}
