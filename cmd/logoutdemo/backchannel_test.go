package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

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
		Issuer: a.Issuer, ClientID: a.ClientID, ClientSecret: a.ClientSecret})
	a.Fake.AddClient(scalekittest.Client{
		ID: a.ClientID, Secret: a.ClientSecret,
		RedirectURIs:           []string{a.AppURL + "/callback", b.AppURL + "/callback"},
		PostLogoutRedirectURIs: []string{a.AppURL + "/logged-out", b.AppURL + "/logged-out"},
		BackChannelLogoutURI:   a.AppURL + "/backchannel-logout", // one URL, behind the balancer
	})
	return a, b
}

// signedInAs reports whose email the instance's home page shows for the
// cookies, or "" when nobody is signed in.
func signedInAs(t *testing.T, d *demo, cookies []*http.Cookie, email string) bool {
	t.Helper()
	c := browserlessClient(t)
	u, _ := url.Parse(d.AppURL)
	c.Jar.SetCookies(u, cookies)
	return strings.Contains(body(t, follow(t, c, d.AppURL+"/")), email)
}

// TestBackChannelAcrossInstances signs one user in from two browsers, one on
// each instance, then revokes the user at the provider's API. Both browsers
// are signed out on both instances before the API call returns.
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

			start := time.Now()
			req, _ := http.NewRequest(http.MethodPost, a.Issuer+"/api/v1/users/"+user.ID+"/sessions/revoke", nil)
			req.SetBasicAuth(a.ClientID, a.ClientSecret)
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("revoke API: %v %v (%s)", resp, err, body(t, resp))
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
