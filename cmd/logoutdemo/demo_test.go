// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/endsession/logout/internal/testenv"
	"github.com/endsession/logout/scalekittest"
)

// startDemo runs the demo on free ports with the embedded provider.
func startDemo(t *testing.T, o options) *demo {
	t.Helper()
	o.Addr, o.IDPAddr, o.UpstreamAddr, o.SLOUpstreamAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	if o.BackstopDelay == 0 {
		o.BackstopDelay = 300 * time.Millisecond // a browser on loopback is faster still
	}
	d, err := start(context.Background(), o, slog.New(slog.NewTextHandler(&demoLogs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// demoLogs holds every line every demo in the test run logs; demoSecrets
// every cookie value and ID token the tests saw. TestMain fails the run if a
// secret appears in a line.
var (
	demoLogs    syncBuffer
	demoSecrets sync.Map
)

type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// logoutLogged is set by the tests whose logouts must show in the log, so
// that the log check proves something when they ran, and running any other
// test alone still works.
var logoutLogged atomic.Bool

// noteResponse records the secrets a response carries.
func noteResponse(resp *http.Response) {
	for _, c := range resp.Cookies() {
		// The provider's own cookie holds its session ID (ses_…), which the
		// app logs by design, as the sid of a back-channel logout.
		if len(c.Value) >= 16 && c.Name != scalekittest.SessionCookie {
			demoSecrets.Store(c.Value, true)
		}
	}
	if loc, err := resp.Location(); err == nil {
		if hint := loc.Query().Get("id_token_hint"); hint != "" {
			demoSecrets.Store(hint, true)
		}
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	chromium.close()
	if line := testenv.SkipSummary(); line != "" {
		fmt.Fprintln(os.Stderr, line)
	}
	logs := demoLogs.String()
	if logoutLogged.Load() && !strings.Contains(logs, "msg=logout") {
		fmt.Fprintln(os.Stderr, "FAIL: the demos logged no logout at all; the log check would prove nothing")
		code = 1
	}
	demoSecrets.Range(func(k, _ any) bool {
		if strings.Contains(logs, k.(string)) {
			fmt.Fprintf(os.Stderr, "FAIL: a token or cookie value reached the demo's log: %.40q…\n", k)
			code = 1
		}
		return true
	})
	os.Exit(code)
}

// browserlessClient keeps cookies like a browser but does not follow
// redirects, so each hop can be checked.
func browserlessClient(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// follow GETs url and follows redirects, returning the last response.
func follow(t *testing.T, c *http.Client, u string) *http.Response {
	t.Helper()
	for range 10 {
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		noteResponse(resp)
		if resp.StatusCode/100 != 3 {
			return resp
		}
		resp.Body.Close()
		next, _ := resp.Location()
		u = next.String()
	}
	t.Fatal("too many redirects")
	return nil
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// signedInPage reports whether page is the home page signed in as email.
// The page names the last user elsewhere too (the layer panel does, after
// the session ended), so only the signed-in greeting counts.
func signedInPage(page, email string) bool {
	return strings.Contains(page, `<strong id="email">`+email+`</strong>`)
}

func post(t *testing.T, c *http.Client, u string, header ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	noteResponse(resp)
	return resp
}

// TestDemoFromOutside drives the demo as a browser would, over HTTP, for both
// stores.
func TestDemoFromOutside(t *testing.T) {
	for _, store := range []string{"redis", "cookie"} {
		t.Run(store, func(t *testing.T) {
			d := startDemo(t, options{Store: store})
			logoutLogged.Store(true)
			c := browserlessClient(t)
			const email = "ada@example.com"
			if page := body(t, follow(t, c, d.AppURL+"/login?login_hint="+email)); !signedInPage(page, email) {
				t.Fatalf("after sign-in the home page does not show %s:\n%s", email, page)
			}
			user := d.Fake.User(email)
			if n := len(d.Fake.ActiveSessions(user.ID)); n != 1 {
				t.Fatalf("%d provider sessions after sign-in, want 1", n)
			}
			appURL, _ := url.Parse(d.AppURL)
			copied := c.Jar.Cookies(appURL)

			// A cross-site POST is refused and changes nothing.
			resp := post(t, c, d.AppURL+"/logout", "Sec-Fetch-Site", "cross-site")
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("cross-site logout: status %d, want 403", resp.StatusCode)
			}
			if page := body(t, follow(t, c, d.AppURL+"/")); !signedInPage(page, email) {
				t.Error("a cross-site POST signed the user out")
			}

			// The real logout: 303 to the provider with everything it needs.
			resp = post(t, c, d.AppURL+"/logout", "Sec-Fetch-Site", "same-origin", "Sec-Fetch-Mode", "navigate")
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("logout: status %d, want 303", resp.StatusCode)
			}
			if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
				t.Errorf("Cache-Control %q, want no-store", cc)
			}
			expired := 0
			for _, sc := range resp.Cookies() {
				if sc.Name == "session" && sc.MaxAge < 0 && sc.Path == "/" {
					expired++
				}
			}
			if expired != 1 {
				t.Errorf("logout expired %d session cookies, want 1: %v", expired, resp.Header.Values("Set-Cookie"))
			}
			loc, _ := resp.Location()
			q := loc.Query()
			if loc.String()[:len(d.Issuer)] != d.Issuer || loc.Path != "/oidc/logout" {
				t.Errorf("redirect to %s, want %s/oidc/logout", loc, d.Issuer)
			}
			if parts := strings.Split(q.Get("id_token_hint"), "."); len(parts) != 3 {
				t.Errorf("id_token_hint %q is not a JWT", q.Get("id_token_hint"))
			}
			if got := q.Get("post_logout_redirect_uri"); got != d.AppURL+"/logged-out" {
				t.Errorf("post_logout_redirect_uri %q, want %s/logged-out", got, d.AppURL)
			}
			// The provider ends its session and sends the browser back.
			resp, err := c.Get(loc.String())
			if err != nil {
				t.Fatal(err)
			}
			back, _ := resp.Location()
			if resp.StatusCode != http.StatusFound || back.Path != "/logged-out" || back.Query().Get("state") != q.Get("state") {
				t.Errorf("provider answered %d to %v, want 302 to /logged-out with the state", resp.StatusCode, back)
			}
			if s := d.Fake.ActiveSessions(user.ID); len(s) != 0 {
				t.Errorf("provider sessions after logout: %v, want none", s)
			}
			// Signing in again asks for credentials instead of passing through.
			if page := body(t, follow(t, c, d.AppURL+"/login")); !strings.Contains(page, `id="signin-title"`) {
				t.Errorf("sign-in after logout did not show the sign-in form:\n%s", page)
			}
			// A copy of the cookie taken before logout signs nobody in (the
			// cookie store cannot promise this without a revocation list).
			if store == "redis" {
				fresh := browserlessClient(t)
				fresh.Jar.SetCookies(appURL, copied)
				if page := body(t, follow(t, fresh, d.AppURL+"/")); signedInPage(page, email) {
					t.Error("the cookie copied before logout still signs the user in")
				}
			}
		})
	}
}

func TestDemoFetchCallerGetsJSON(t *testing.T) {
	d := startDemo(t, options{Store: "redis"})
	c := browserlessClient(t)
	follow(t, c, d.AppURL+"/login?login_hint=grace@example.com")
	resp := post(t, c, d.AppURL+"/logout", "Sec-Fetch-Site", "same-origin", "Sec-Fetch-Mode", "cors")
	var out struct{ Location string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("fetch logout: %d, %v", resp.StatusCode, err)
	}
	if !strings.HasPrefix(out.Location, d.Issuer+"/oidc/logout?id_token_hint=") {
		t.Errorf("JSON location %q, want the end-session URL", out.Location)
	}
}

// TestDemoLogoutCostsOneRedisCommand runs the demo on a real redis-server and
// counts what a logout request sends it.
func TestDemoLogoutCostsOneRedisCommand(t *testing.T) {
	srv := testenv.StartRedisServer(t)
	counter := testenv.NewCommandCounter(t, srv.Addr)
	// The backstop's job queue is counted by the package's own tests: its
	// records and its poller's claims are left out here.
	counter.Ignore("{backstop:")
	d := startDemo(t, options{Store: "redis", RedisURL: "redis://" + srv.Addr})
	c := browserlessClient(t)
	follow(t, c, d.AppURL+"/login?login_hint=ada@example.com")
	appURL, _ := url.Parse(d.AppURL)
	copied := c.Jar.Cookies(appURL)
	// Warm the script cache, as a running app has.
	follow(t, browserlessClient(t), d.AppURL+"/login?login_hint=warm@example.com")
	warm := browserlessClient(t)
	follow(t, warm, d.AppURL+"/login?login_hint=warm@example.com")
	post(t, warm, d.AppURL+"/logout", "Sec-Fetch-Site", "same-origin")

	counter.Reset(t)
	resp := post(t, c, d.AppURL+"/logout", "Sec-Fetch-Site", "same-origin")
	got := counter.Count(t)
	if resp.StatusCode != http.StatusSeeOther || testenv.Total(got) != 1 {
		t.Errorf("logout: status %d, Redis commands %v; want 303 and exactly 1", resp.StatusCode, got)
	}
	t.Logf("one logout request sent Redis: %v", got)
	fresh := browserlessClient(t)
	fresh.Jar.SetCookies(appURL, copied)
	if page := body(t, follow(t, fresh, d.AppURL+"/")); signedInPage(page, "ada@example.com") {
		t.Error("the cookie copied before logout still signs the user in")
	}
	if n, _ := redis.NewClient(&redis.Options{Addr: srv.Addr}).Keys(context.Background(), "logout:*:s:*").Result(); len(n) != 1 {
		t.Errorf("sessions left in Redis: %v, want only the warm-up user's second one", n)
	}
}

// layerStates lists the layer panel's rows in a page, as layer=state.
func layerStates(page string) []string {
	var out []string
	for _, m := range layerRowTag.FindAllStringSubmatch(page, -1) {
		out = append(out, m[1]+"="+m[2])
	}
	return out
}

var layerRowTag = regexp.MustCompile(`<tr data-layer="([a-z]+)" data-state="([a-z-]+)"`)

// Against a provider it did not start, the demo's panel shows the app's
// session alone, and none of the actions that need the embedded Scalekit:
// an app cannot see the provider's sessions.
func TestDemoPanelAgainstAnotherProvider(t *testing.T) {
	fake, err := scalekittest.New(scalekittest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	d := startDemo(t, options{Store: "redis", Issuer: fake.Issuer(), ClientID: "skc_elsewhere", ClientSecret: "elsewhere-secret"})
	if err := fake.AddClient(scalekittest.Client{ID: "skc_elsewhere", Secret: "elsewhere-secret",
		RedirectURIs: []string{d.AppURL + "/callback"}, PostLogoutRedirectURIs: []string{d.AppURL + "/logged-out"}}); err != nil {
		t.Fatal(err)
	}
	c := browserlessClient(t)
	page := body(t, follow(t, c, d.AppURL+"/login?login_hint=ada@example.com"))
	if got := layerStates(page); !slices.Equal(got, []string{"app=alive"}) {
		t.Errorf("signed in, the panel shows %v, want [app=alive]", got)
	}
	// Nor does it show a command with the app's client secret in it: that
	// secret is a real provider's.
	for _, absent := range []string{`id="revoke"`, `id="sign-in-sso"`, `id="revoke-command"`} {
		if strings.Contains(page, absent) {
			t.Errorf("the page has %s, which needs the embedded Scalekit", absent)
		}
	}
	if strings.Contains(page, "elsewhere-secret") {
		t.Error("the page shows the app's client secret")
	}
	if resp := post(t, c, d.AppURL+"/demo/revoke", "Sec-Fetch-Site", "same-origin"); resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /demo/revoke: status %d, want it not served", resp.StatusCode)
	}
	resp := post(t, c, d.AppURL+"/logout", "Sec-Fetch-Site", "same-origin")
	resp.Body.Close()
	if got := layerStates(body(t, follow(t, c, d.AppURL+"/"))); !slices.Equal(got, []string{"app=ended"}) {
		t.Errorf("signed out, the panel shows %v, want [app=ended]", got)
	}
}

// "Revoke at Scalekit" changes state, so another site cannot press it.
func TestDemoRevokeRefusesCrossSite(t *testing.T) {
	d := startDemo(t, options{Store: "redis"})
	c := browserlessClient(t)
	follow(t, c, d.AppURL+"/login?login_hint=ada@example.com")
	sid := d.Fake.ActiveSessions(d.Fake.User("ada@example.com").ID)[0]
	if resp := post(t, c, d.AppURL+"/demo/revoke", "Sec-Fetch-Site", "cross-site"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site revoke: status %d, want 403", resp.StatusCode)
	}
	if ses, _ := d.Fake.Session(sid); ses.Status != scalekittest.StatusActive {
		t.Errorf("Scalekit session %s after a refused revoke, want active", ses.Status)
	}
	resp := post(t, c, d.AppURL+"/demo/revoke", "Sec-Fetch-Site", "same-origin")
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/?after=revoked" {
		t.Fatalf("revoke: status %d to %q, want 303 to /?after=revoked", resp.StatusCode, loc)
	}
	if ses, _ := d.Fake.Session(sid); ses.Status != scalekittest.StatusRevoked {
		t.Errorf("Scalekit session %s after the revoke, want revoked", ses.Status)
	}
	if page := body(t, follow(t, c, d.AppURL+"/")); signedInPage(page, "ada@example.com") || !slices.Contains(layerStates(page), "app=ended") {
		t.Errorf("after the revoke the app still signs the user in, or its panel says otherwise: %v", layerStates(page))
	}
}

// -addr alone moves the whole demo: the embedded Scalekit and its upstream
// providers take free ports of their own, so that only the app's port has to
// be free. The start-up line names the Redis the demo uses.
func TestDemoNeedsOnlyAddr(t *testing.T) {
	o := demoFlags(t, "-addr", "127.0.0.1:0")
	if o.IDPAddr != "" || o.UpstreamAddr != "" || o.SLOUpstreamAddr != "" {
		t.Fatalf("default addresses %q %q %q; want all empty (free ports)", o.IDPAddr, o.UpstreamAddr, o.SLOUpstreamAddr)
	}
	o.BackstopDelay = 300 * time.Millisecond
	d, err := start(context.Background(), o, slog.New(slog.NewTextHandler(&demoLogs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	if !strings.HasPrefix(d.Issuer, "http://127.0.0.1:") {
		t.Errorf("the embedded Scalekit at %s; want a free port on the app's host, 127.0.0.1", d.Issuer)
	}
	resp, err := http.Get(d.AppURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `id="sign-in"`) {
		t.Errorf("the demo at %s shows no sign-in", d.AppURL)
	}
	if d.RedisName != "an in-process Redis" {
		t.Errorf("RedisName %q, want an in-process Redis", d.RedisName)
	}

	srv := testenv.StartRedisServer(t)
	o = demoFlags(t, "-redis-url", "redis://:secret@"+srv.Addr+"/3")
	d2 := startDemo(t, o)
	if want := "the Redis at " + srv.Addr + ", database 3"; d2.RedisName != want {
		t.Errorf("RedisName %q, want %q (and never the password)", d2.RedisName, want)
	}
}
