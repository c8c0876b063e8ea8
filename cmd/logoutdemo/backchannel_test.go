// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/endsession/logout/internal/testenv"
	"github.com/endsession/logout/scalekittest"
)

// startPair runs two instances of the demo that share one Redis, one cookie
// key and one provider, as two instances behind a load balancer would.
func startPair(t *testing.T, store string) (a, b *demo) {
	t.Helper()
	srv := testenv.StartRedisServer(t)
	key := []byte("0123456789abcdef0123456789abcdef")
	a = startDemo(t, options{Store: store, RedisURL: "redis://" + srv.Addr, CookieKey: key})
	b = startDemo(t, options{Store: store, RedisURL: "redis://" + srv.Addr, CookieKey: key,
		Issuer: a.Issuer, ClientID: a.ClientID, ClientSecret: a.ClientSecret, WebhookSecret: a.Fake.WebhookSecret()})
	err := a.Fake.AddClient(scalekittest.Client{
		ID: a.ClientID, Secret: a.ClientSecret,
		RedirectURIs:           []string{a.AppURL + "/callback", b.AppURL + "/callback"},
		PostLogoutRedirectURIs: []string{a.AppURL + "/logged-out", b.AppURL + "/logged-out"},
		BackChannelLogoutURIs:  []string{a.AppURL + "/backchannel-logout"}, // one URL, behind the balancer
	})
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

// signedInAs reports whether the instance's home page is signed in as email
// with the cookies.
func signedInAs(t *testing.T, d *demo, cookies []*http.Cookie, email string) bool {
	t.Helper()
	c := browserlessClient(t)
	u, _ := url.Parse(d.AppURL)
	c.Jar.SetCookies(u, cookies)
	return signedInPage(body(t, follow(t, c, d.AppURL+"/")), email)
}

// TestBackChannelAcrossInstances signs one user in from two browsers, one on
// each instance, then revokes the user at the provider's API. Once the
// provider's back-channel deliveries have settled, both browsers are signed
// out on both instances.
func TestBackChannelAcrossInstances(t *testing.T) {
	for _, store := range []string{"redis", "cookie"} {
		t.Run(store, func(t *testing.T) {
			a, b := startPair(t, store)
			const email = "ada@example.com"
			laptop, phone := browserlessClient(t), browserlessClient(t)
			follow(t, laptop, a.AppURL+"/login?login_hint="+email)
			follow(t, phone, b.AppURL+"/login?login_hint="+email)
			ua, _ := url.Parse(a.AppURL)
			ub, _ := url.Parse(b.AppURL)
			jars := map[string][]*http.Cookie{"laptop": laptop.Jar.Cookies(ua), "phone": phone.Jar.Cookies(ub)}
			for name, c := range jars {
				for _, d := range []*demo{a, b} {
					if !signedInAs(t, d, c, email) {
						t.Fatalf("%s is not signed in on %s before the revocation", name, d.AppURL)
					}
				}
			}
			user := a.Fake.User(email)
			if n := len(a.Fake.ActiveSessions(user.ID)); n != 2 {
				t.Fatalf("%d provider sessions, want 2", n)
			}

			api := (&clientcredentials.Config{ClientID: a.ClientID, ClientSecret: a.ClientSecret, TokenURL: a.Issuer + "/oauth/token"}).Client(context.Background())
			start := time.Now()
			resp, err := api.Post(a.Issuer+"/api/v1/users/"+user.ID+"/sessions/revoke", "application/json", nil)
			if err != nil {
				t.Fatalf("revoke API: %v", err)
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("revoke API: status %d (%s)", resp.StatusCode, body(t, resp))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := a.Fake.WaitDeliveries(ctx); err != nil {
				t.Fatal(err)
			}
			for _, dl := range a.Fake.Deliveries() {
				if !dl.Delivered {
					t.Errorf("back-channel delivery to %s for %s: %d attempts, last status %d %s", dl.URL, dl.SessionID, dl.Attempts, dl.LastStatus, dl.LastError)
				}
			}
			for name, c := range jars {
				for _, d := range []*demo{a, b} {
					if signedInAs(t, d, c, email) {
						t.Errorf("%s still signed in on %s after the back-channel logout", name, d.AppURL)
					}
				}
			}
			t.Logf("revoke API call to both browsers signed out on both instances: %v", time.Since(start))
		})
	}
}

// With the cookie store and its revocation list, a cookie copied before a
// normal logout no longer signs anyone in, on either instance.
func TestCookieCopyDeadAfterLogout(t *testing.T) {
	a, b := startPair(t, "cookie")
	c := browserlessClient(t)
	follow(t, c, a.AppURL+"/login?login_hint=ada@example.com")
	ua, _ := url.Parse(a.AppURL)
	copied := c.Jar.Cookies(ua)
	if !signedInAs(t, b, copied, "ada@example.com") {
		t.Fatal("the copied cookie should work on B before logout")
	}
	if resp := post(t, c, a.AppURL+"/logout", "Sec-Fetch-Site", "same-origin"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	for _, d := range []*demo{a, b} {
		if signedInAs(t, d, copied, "ada@example.com") {
			t.Errorf("the cookie copied before logout still signs in on %s", d.AppURL)
		}
	}
}

// TestWebhookAcrossInstances: the provider notifies the app of ended sessions
// by its user.logout webhook alone (no back-channel URI registered), to one
// instance; both instances see both browsers signed out.
func TestWebhookAcrossInstances(t *testing.T) {
	for _, store := range []string{"redis", "cookie"} {
		t.Run(store, func(t *testing.T) {
			a, b := startPair(t, store)
			err := a.Fake.AddClient(scalekittest.Client{
				ID: a.ClientID, Secret: a.ClientSecret,
				RedirectURIs:           []string{a.AppURL + "/callback", b.AppURL + "/callback"},
				PostLogoutRedirectURIs: []string{a.AppURL + "/logged-out", b.AppURL + "/logged-out"},
			})
			if err != nil {
				t.Fatal(err)
			}
			const email = "ada@example.com"
			laptop, phone := browserlessClient(t), browserlessClient(t)
			follow(t, laptop, a.AppURL+"/login?login_hint="+email)
			follow(t, phone, b.AppURL+"/login?login_hint="+email)
			ua, _ := url.Parse(a.AppURL)
			ub, _ := url.Parse(b.AppURL)
			jars := map[string][]*http.Cookie{"laptop": laptop.Jar.Cookies(ua), "phone": phone.Jar.Cookies(ub)}
			user := a.Fake.User(email)
			start := time.Now()
			if _, err := a.Fake.RevokeUserSessions(user.ID); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := a.Fake.WaitDeliveries(ctx); err != nil {
				t.Fatal(err)
			}
			webhooks := 0
			for _, dl := range a.Fake.Deliveries() {
				if dl.Kind != scalekittest.WebhookDelivery || !dl.Delivered {
					t.Errorf("delivery %+v: want only delivered webhooks", dl)
				}
				webhooks++
			}
			if webhooks != 2 {
				t.Errorf("%d webhooks delivered, want one per session", webhooks)
			}
			for name, c := range jars {
				for _, d := range []*demo{a, b} {
					if signedInAs(t, d, c, email) {
						t.Errorf("%s still signed in on %s after the webhook", name, d.AppURL)
					}
				}
			}
			t.Logf("revocation to both browsers signed out on both instances, by webhook: %v", time.Since(start))
		})
	}
}
