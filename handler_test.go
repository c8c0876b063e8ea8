// SPDX-License-Identifier: Apache-2.0

package logout_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/endsession/logout"
)

func TestLogoutEndsSessionAndRedirects(t *testing.T) {
	for _, clientID := range []string{"", "skc_app"} {
		t.Run("client_id="+clientID, func(t *testing.T) {
			h, _ := newHandler(t, newCookieStore(t), func(c *logout.Config) { c.ClientID = clientID })
			s := testSession()
			cookies := signIn(t, h, s)

			resp := serve(h, logoutRequest(http.MethodPost, cookies))
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("status %d, want %d", resp.StatusCode, http.StatusSeeOther)
			}
			loc := location(t, resp)
			if got := loc.Scheme + "://" + loc.Host + loc.Path; got != testEndSession {
				t.Errorf("redirect to %s, want %s", got, testEndSession)
			}
			// Exactly what Scalekit's own SDKs send: with an ID token,
			// client_id is never needed.
			q := loc.Query()
			want := map[string]string{
				"id_token_hint":            s.IDToken,
				"post_logout_redirect_uri": testPostLogout,
			}
			for k, v := range want {
				if got := q.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if len(q.Get("state")) < 22 {
				t.Errorf("state %q is too short to be random", q.Get("state"))
			}
			if len(q) != len(want)+1 {
				t.Errorf("query has %d parameters, want only id_token_hint, post_logout_redirect_uri, state: %v", len(q), q)
			}
		})
	}
}

func TestStateIsRandom(t *testing.T) {
	h, _ := newHandler(t, newCookieStore(t), nil)
	cookies := signIn(t, h, testSession())
	a := location(t, serve(h, logoutRequest(http.MethodPost, cookies))).Query().Get("state")
	b := location(t, serve(h, logoutRequest(http.MethodPost, cookies))).Query().Get("state")
	if a == b {
		t.Errorf("two logouts got the same state %q", a)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestMethods(t *testing.T) {
	tests := []struct {
		method   string
		allowGET bool
		status   int
		allow    string
	}{
		{http.MethodPost, false, http.StatusSeeOther, ""},
		{http.MethodGet, false, http.StatusMethodNotAllowed, "POST"},
		{http.MethodHead, false, http.StatusMethodNotAllowed, "POST"},
		{http.MethodPut, false, http.StatusMethodNotAllowed, "POST"},
		{http.MethodDelete, false, http.StatusMethodNotAllowed, "POST"},
		{http.MethodGet, true, http.StatusFound, ""},
		{http.MethodPost, true, http.StatusSeeOther, ""},
		{http.MethodPut, true, http.StatusMethodNotAllowed, "GET, POST"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/allowGET=%v", tt.method, tt.allowGET), func(t *testing.T) {
			h, _ := newHandler(t, newCookieStore(t), func(c *logout.Config) { c.AllowGET = tt.allowGET })
			cookies := signIn(t, h, testSession())
			resp := serve(h, logoutRequest(tt.method, cookies))
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if got := resp.Header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow %q, want %q", got, tt.allow)
			}
			if tt.allow != "" {
				if len(resp.Header.Values("Set-Cookie")) != 0 {
					t.Errorf("a refused request set cookies: %v", resp.Header.Values("Set-Cookie"))
				}
			}
		})
	}
}

func TestCrossOriginRequestsTouchNothing(t *testing.T) {
	tests := []struct {
		name   string
		method string
		header []string
	}{
		{"cross-site POST", http.MethodPost, []string{"Sec-Fetch-Site", "cross-site"}},
		{"same-site POST", http.MethodPost, []string{"Sec-Fetch-Site", "same-site"}},
		{"POST from another origin, no Sec-Fetch", http.MethodPost, []string{"Sec-Fetch-Site", "", "Origin", "https://evil.example"}},
		{"cross-site GET", http.MethodGet, []string{"Sec-Fetch-Site", "cross-site"}},
		{"same-site GET", http.MethodGet, []string{"Sec-Fetch-Site", "same-site"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newMiniStore(t)
			h, _ := newHandler(t, store, func(c *logout.Config) { c.AllowGET = true })
			cookies := signIn(t, h, testSession())
			resp := serve(h, logoutRequest(tt.method, cookies, tt.header...))
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("status %d, want %d", resp.StatusCode, http.StatusForbidden)
			}
			if n := len(resp.Header.Values("Set-Cookie")); n != 0 {
				t.Errorf("refused request set %d cookies", n)
			}
			if _, err := currentSession(h, cookies); err != nil {
				t.Errorf("session after refused logout: %v, want it alive", err)
			}
		})
	}
}

func TestSameOriginWithoutFetchMetadata(t *testing.T) {
	// Older browsers send no Sec-Fetch-Site; an Origin equal to the Host is
	// same-origin and must work.
	h, _ := newHandler(t, newCookieStore(t), nil)
	cookies := signIn(t, h, testSession())
	resp := serve(h, logoutRequest(http.MethodPost, cookies, "Sec-Fetch-Site", "", "Sec-Fetch-Mode", "", "Origin", testAppOrigin))
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("status %d, want %d", resp.StatusCode, http.StatusSeeOther)
	}
}

func TestRedirectIgnoresHostHeader(t *testing.T) {
	h, _ := newHandler(t, newCookieStore(t), nil)
	cookies := signIn(t, h, testSession())
	r := logoutRequest(http.MethodPost, cookies, "X-Forwarded-Host", "evil.example", "X-Forwarded-Proto", "http")
	r.Host = "evil.example"
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	resp := serve(h, r)
	loc := location(t, resp)
	if loc.Host != "acme.scalekit.dev" {
		t.Errorf("redirect host %q, want acme.scalekit.dev", loc.Host)
	}
	if got := loc.Query().Get("post_logout_redirect_uri"); got != testPostLogout {
		t.Errorf("post_logout_redirect_uri %q, want %q", got, testPostLogout)
	}
}

func TestReturnTo(t *testing.T) {
	const other = "https://app.example.com/goodbye"
	tests := []struct {
		name   string
		query  string
		status int
		want   string
	}{
		{"absent", "", http.StatusSeeOther, testPostLogout},
		{"allowed", "return_to=" + url.QueryEscape(other), http.StatusSeeOther, other},
		{"default named", "return_to=" + url.QueryEscape(testPostLogout), http.StatusSeeOther, testPostLogout},
		{"not allowed", "return_to=" + url.QueryEscape("https://evil.example/"), http.StatusBadRequest, ""},
		{"relative", "return_to=/goodbye", http.StatusBadRequest, ""},
		{"prefix of allowed", "return_to=" + url.QueryEscape(other+"x"), http.StatusBadRequest, ""},
		{"duplicate", "return_to=" + url.QueryEscape(other) + "&return_to=" + url.QueryEscape(other), http.StatusBadRequest, ""},
		{"empty", "return_to=", http.StatusBadRequest, ""},
		{"broken encoding", "return_to=%zz", http.StatusBadRequest, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := newHandler(t, newMiniStore(t), func(c *logout.Config) {
				c.AllowedPostLogoutRedirectURIs = []string{other}
			})
			cookies := signIn(t, h, testSession())
			r := logoutRequest(http.MethodPost, cookies)
			r.URL.RawQuery = tt.query
			resp := serve(h, r)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			_, err := currentSession(h, cookies)
			if tt.want == "" {
				if err != nil {
					t.Errorf("session after a refused return_to: %v, want it alive", err)
				}
				return
			}
			if got := location(t, resp).Query().Get("post_logout_redirect_uri"); got != tt.want {
				t.Errorf("post_logout_redirect_uri %q, want %q", got, tt.want)
			}
			if !errors.Is(err, logout.ErrNoSession) {
				t.Errorf("session after logout: %v, want ErrNoSession", err)
			}
		})
	}
}

func TestReturnToInForm(t *testing.T) {
	const other = "https://app.example.com/goodbye"
	h, _ := newHandler(t, newCookieStore(t), func(c *logout.Config) { c.AllowedPostLogoutRedirectURIs = []string{other} })
	r := httptest.NewRequest(http.MethodPost, testAppOrigin+"/logout", strings.NewReader("return_to="+url.QueryEscape(other)))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	for _, c := range signIn(t, h, testSession()) {
		r.AddCookie(c)
	}
	resp := serve(h, r)
	if got := location(t, resp).Query().Get("post_logout_redirect_uri"); got != other {
		t.Errorf("post_logout_redirect_uri %q, want %q", got, other)
	}
}

// TestCookieDeletionMatchesCreation compares, attribute by attribute, each
// Set-Cookie that logout sends with the one sign-in sent, for every cookie
// shape a user may configure.
func TestCookieDeletionMatchesCreation(t *testing.T) {
	tests := []struct {
		name   string
		cookie logout.CookieConfig
		want   map[string]string // attributes the deletion must carry
	}{
		{"default __Host-", logout.CookieConfig{},
			map[string]string{"path": "/", "secure": "", "httponly": "", "samesite": "Lax"}},
		{"domain and path", logout.CookieConfig{Name: "app_session", Domain: "example.com", Path: "/app"},
			map[string]string{"path": "/app", "domain": "example.com", "secure": "", "httponly": "", "samesite": "Lax"}},
		{"__Secure- strict", logout.CookieConfig{Name: "__Secure-s", SameSite: http.SameSiteStrictMode},
			map[string]string{"path": "/", "secure": "", "httponly": "", "samesite": "Strict"}},
		{"partitioned none", logout.CookieConfig{Name: "__Host-s", Partitioned: true, SameSite: http.SameSiteNoneMode},
			map[string]string{"path": "/", "secure": "", "httponly": "", "samesite": "None", "partitioned": ""}},
		{"plain http", logout.CookieConfig{InsecureHTTP: true},
			map[string]string{"path": "/", "httponly": "", "samesite": "Lax"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := newHandler(t, newCookieStore(t), func(c *logout.Config) { c.Cookie = tt.cookie })
			rec := httptest.NewRecorder()
			if err := h.StartSession(rec, httptest.NewRequest(http.MethodGet, "/callback", nil), testSession()); err != nil {
				t.Fatal(err)
			}
			set := setCookies(rec.Result())
			if len(set) != 1 {
				t.Fatalf("sign-in set %d cookies, want 1", len(set))
			}
			var name string
			for n := range set {
				name = n
			}
			resp := serve(h, logoutRequest(http.MethodPost, rec.Result().Cookies()))
			del := setCookies(resp)[name]
			if del == nil {
				t.Fatalf("logout sent no Set-Cookie for %s; got %v", name, resp.Header.Values("Set-Cookie"))
			}
			if del["max-age"] != "0" {
				t.Errorf("Max-Age %q, want 0", del["max-age"])
			}
			if del["expires"] != "Thu, 01 Jan 1970 00:00:00 GMT" {
				t.Errorf("Expires %q, want the Unix epoch", del["expires"])
			}
			for k, v := range tt.want {
				if got, ok := del[k]; !ok || got != v {
					t.Errorf("deletion %s=%q (present %v), want %q", k, got, ok, v)
				}
				if got := set[name][k]; got != v {
					t.Errorf("creation %s=%q, want %q", k, got, v)
				}
			}
			for k := range del {
				if _, ok := tt.want[k]; !ok && k != "max-age" && k != "expires" {
					t.Errorf("deletion has unexpected attribute %s", k)
				}
			}
		})
	}
}

func TestClearCookies(t *testing.T) {
	extra := []http.Cookie{
		{Name: "accessToken", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode},
		{Name: "refreshToken", Path: "/auth", Domain: "example.com", Secure: true, HttpOnly: true},
		{Name: "idToken", Path: "/", SameSite: http.SameSiteLaxMode},
	}
	h, _ := newHandler(t, newCookieStore(t), func(c *logout.Config) { c.ClearCookies = extra })
	// Logout clears them even when the app session is already gone.
	resp := serve(h, logoutRequest(http.MethodPost, nil))
	set := setCookies(resp)
	for _, c := range extra {
		got := set[c.Name]
		if got == nil {
			t.Errorf("%s not expired", c.Name)
			continue
		}
		if got["max-age"] != "0" || got["path"] != c.Path || got["domain"] != c.Domain {
			t.Errorf("%s deletion %v, want Max-Age=0 Path=%s Domain=%q", c.Name, got, c.Path, c.Domain)
		}
		if _, secure := got["secure"]; secure != c.Secure {
			t.Errorf("%s deletion Secure=%v, want %v", c.Name, secure, c.Secure)
		}
	}
}

func TestChunkedSession(t *testing.T) {
	h, _ := newHandler(t, newCookieStore(t), nil)
	big := testSession()
	big.IDToken = strings.Repeat("i", 5000)
	big.AccessToken = strings.Repeat("a", 1500)
	cookies := signIn(t, h, big)
	names := map[string]bool{}
	for _, c := range cookies {
		names[c.Name] = true
		if n := len(c.Name) + len(c.Value); n > 4000 {
			t.Errorf("cookie %s holds %d bytes, over the browsers' limit", c.Name, n)
		}
	}
	if len(cookies) != 3 || !names["__Host-session"] || !names["__Host-session.1"] || !names["__Host-session.2"] {
		t.Fatalf("sign-in set %v, want __Host-session, .1 and .2", names)
	}
	got, err := currentSession(h, cookies)
	if err != nil || got.IDToken != big.IDToken || got.AccessToken != big.AccessToken {
		t.Fatalf("chunked session read back as %v, %v", got, err)
	}

	// A missing chunk reads as no session, never as an error page.
	if _, err := currentSession(h, cookies[:2]); !errors.Is(err, logout.ErrNoSession) {
		t.Errorf("session with a chunk missing: %v, want ErrNoSession", err)
	}

	// Shrinking prunes the chunks the smaller session no longer uses.
	rec := httptest.NewRecorder()
	small := got
	small.IDToken, small.AccessToken = testSession().IDToken, testSession().AccessToken
	if err := h.UpdateSession(rec, logoutRequest(http.MethodGet, cookies), small); err != nil {
		t.Fatal(err)
	}
	set := setCookies(rec.Result())
	if set["__Host-session"]["max-age"] == "0" {
		t.Error("update expired the session cookie")
	}
	for _, n := range []string{"__Host-session.1", "__Host-session.2"} {
		if set[n]["max-age"] != "0" {
			t.Errorf("update left stale chunk %s: %v", n, set[n])
		}
	}

	// Logout expires every chunk.
	resp := serve(h, logoutRequest(http.MethodPost, cookies))
	set = setCookies(resp)
	for n := range names {
		if set[n]["max-age"] != "0" || set[n]["path"] != "/" {
			t.Errorf("logout did not expire %s: %v", n, set[n])
		}
	}
	if got := location(t, resp).Query().Get("id_token_hint"); got != big.IDToken {
		t.Errorf("id_token_hint of a chunked session = %d bytes, want %d", len(got), len(big.IDToken))
	}
}

func TestOversizedSessionIsRefusedAtSave(t *testing.T) {
	h, _ := newHandler(t, newCookieStore(t), nil)
	huge := testSession()
	huge.IDToken = strings.Repeat("i", 16000)
	rec := httptest.NewRecorder()
	err := h.StartSession(rec, httptest.NewRequest(http.MethodGet, "/callback", nil), huge)
	if err == nil || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("StartSession of a 16 KB session: %v, want a size error", err)
	}
	if n := len(rec.Result().Cookies()); n != 0 {
		t.Errorf("refused session still set %d cookies", n)
	}
}

func TestHugeIDTokenLeftOutOfURL(t *testing.T) {
	for _, withClientID := range []bool{false, true} {
		t.Run(fmt.Sprint("PostLogoutWithClientID=", withClientID), func(t *testing.T) {
			h, _ := newHandler(t, newMiniStore(t), func(c *logout.Config) {
				c.ClientID = "skc_app"
				c.PostLogoutWithClientID = withClientID
			})
			s := testSession()
			s.IDToken = strings.Repeat("x", 9000)
			resp := serve(h, logoutRequest(http.MethodPost, signIn(t, h, s)))
			loc := resp.Header.Get("Location")
			if len(loc) > 8000 {
				t.Errorf("end-session URL is %d bytes, want at most 8000", len(loc))
			}
			q := location(t, resp).Query()
			if q.Has("id_token_hint") {
				t.Error("the oversized ID token is in the URL")
			}
			if withClientID && (q.Get("client_id") != "skc_app" || q.Get("post_logout_redirect_uri") != testPostLogout) {
				t.Errorf("query %v, want client_id and post_logout_redirect_uri", q)
			}
			if !withClientID && len(q) != 0 {
				t.Errorf("query %v, want the bare end-session endpoint", q)
			}
		})
	}
}

func TestResponseHeaders(t *testing.T) {
	for _, clear := range []bool{false, true} {
		t.Run(fmt.Sprint("ClearSiteData=", clear), func(t *testing.T) {
			h, _ := newHandler(t, newCookieStore(t), func(c *logout.Config) { c.ClearSiteData = clear })
			resp := serve(h, logoutRequest(http.MethodPost, signIn(t, h, testSession())))
			cc := resp.Header.Get("Cache-Control")
			for _, d := range []string{"no-store", "no-cache", "private"} {
				if !strings.Contains(cc, d) {
					t.Errorf("Cache-Control %q lacks %s", cc, d)
				}
			}
			if got := resp.Header.Get("Vary"); got != "Cookie" {
				t.Errorf("Vary %q, want Cookie", got)
			}
			want := ""
			if clear {
				want = `"cookies", "storage"`
			}
			if got := resp.Header.Get("Clear-Site-Data"); got != want {
				t.Errorf("Clear-Site-Data %q, want %q", got, want)
			}
		})
	}
}

func TestScriptCallerGetsJSON(t *testing.T) {
	tests := []struct {
		name   string
		header []string
		json   bool
	}{
		{"fetch", []string{"Sec-Fetch-Mode", "cors", "Accept", "*/*"}, true},
		{"same-origin mode fetch", []string{"Sec-Fetch-Mode", "same-origin"}, true},
		{"XHR from an old browser", []string{"Sec-Fetch-Mode", "", "Accept", "application/json"}, true},
		{"form navigation", []string{"Sec-Fetch-Mode", "navigate", "Accept", "text/html"}, false},
		{"navigation asking for JSON", []string{"Sec-Fetch-Mode", "navigate", "Accept", "application/json"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newMiniStore(t)
			h, _ := newHandler(t, store, nil)
			s := testSession()
			cookies := signIn(t, h, s)
			resp := serve(h, logoutRequest(http.MethodPost, cookies, tt.header...))
			if _, err := currentSession(h, cookies); !errors.Is(err, logout.ErrNoSession) {
				t.Errorf("session after logout: %v, want ErrNoSession", err)
			}
			if setCookies(resp)["__Host-session"]["max-age"] != "0" {
				t.Error("session cookie not expired")
			}
			if !tt.json {
				if resp.StatusCode != http.StatusSeeOther {
					t.Errorf("status %d, want 303", resp.StatusCode)
				}
				return
			}
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d, type %q, want 200 JSON", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			var body struct{ Location string }
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			u, _ := url.Parse(body.Location)
			if u.Host != "acme.scalekit.dev" || u.Query().Get("id_token_hint") != s.IDToken {
				t.Errorf("JSON location %q, want the end-session URL with the ID token", body.Location)
			}
		})
	}
}

// With no session the handler cannot know whether the provider's session
// lives (the provider finds it by its own cookie), so the browser always goes
// through the end-session endpoint: back to the app only where the provider
// can trust the return address without an ID token.
func TestNoSession(t *testing.T) {
	tests := []struct {
		name         string
		withClientID bool
		cookie       *http.Cookie
	}{
		{"no cookie, PostLogoutWithClientID", true, nil},
		{"no cookie", false, nil},
		{"garbage cookie, PostLogoutWithClientID", true, &http.Cookie{Name: "__Host-session", Value: "garbage"}},
		{"garbage cookie", false, &http.Cookie{Name: "__Host-session", Value: "garbage"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := newHandler(t, newMiniStore(t), func(c *logout.Config) {
				c.ClientID = "skc_app"
				c.PostLogoutWithClientID = tt.withClientID
			})
			var cookies []*http.Cookie
			if tt.cookie != nil {
				cookies = append(cookies, tt.cookie)
			}
			resp := serve(h, logoutRequest(http.MethodPost, cookies))
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("status %d, want 303", resp.StatusCode)
			}
			loc := location(t, resp)
			if got := loc.Scheme + "://" + loc.Host + loc.Path; got != testEndSession {
				t.Errorf("redirect to %s, want the end-session endpoint", loc)
			}
			q := loc.Query()
			if q.Has("id_token_hint") {
				t.Error("id_token_hint without a session")
			}
			if tt.withClientID && (q.Get("client_id") != "skc_app" || q.Get("post_logout_redirect_uri") != testPostLogout || q.Get("state") == "") {
				t.Errorf("query %v, want client_id, post_logout_redirect_uri and state", q)
			}
			if !tt.withClientID && loc.RawQuery != "" {
				t.Errorf("query %v, want none: without an ID token the provider keeps the browser", q)
			}
			if setCookies(resp)["__Host-session"]["max-age"] != "0" {
				t.Error("session cookie not expired")
			}
		})
	}
}

func TestStoreFailure(t *testing.T) {
	down := errors.New("dial tcp 127.0.0.1:6379: connection refused")
	for _, failClosed := range []bool{false, true} {
		t.Run(fmt.Sprint("FailOnStoreError=", failClosed), func(t *testing.T) {
			var reported error
			store := &failingStore{SessionStore: newMiniStore(t), err: down}
			h, logs := newHandler(t, store, func(c *logout.Config) {
				c.ClientID = "skc_app"
				c.FailOnStoreError = failClosed
				c.OnError = func(_ *http.Request, err error) { reported = err }
			})
			s := testSession()
			cookies := signIn(t, h, s)
			resp := serve(h, logoutRequest(http.MethodPost, cookies))

			// The default signs this browser out whatever the store did;
			// FailOnStoreError's 503 changes nothing, so that trying
			// again can end the session.
			if expired := setCookies(resp)["__Host-session"]["max-age"] == "0"; expired == failClosed {
				t.Errorf("session cookie expired: %v, want %v", expired, !failClosed)
			}
			if !errors.Is(reported, down) {
				t.Errorf("OnError got %v, want %v", reported, down)
			}
			if !strings.Contains(logs.String(), "connection refused") || !strings.Contains(logs.String(), "level=ERROR") {
				t.Errorf("failure not logged at error level: %s", logs)
			}
			if failClosed {
				if resp.StatusCode != http.StatusServiceUnavailable {
					t.Errorf("status %d, want 503", resp.StatusCode)
				}
				if len(resp.Header.Values("Set-Cookie")) != 0 {
					t.Errorf("a 503 set cookies: %q", resp.Header.Values("Set-Cookie"))
				}
				store.err = nil // the store is back: the user tries again
				resp := serve(h, logoutRequest(http.MethodPost, cookies))
				if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "id_token_hint=") {
					t.Errorf("trying again: status %d, Location %q; want 303 with the session's ID token", resp.StatusCode, resp.Header.Get("Location"))
				}
				if _, err := currentSession(h, cookies); !errors.Is(err, logout.ErrNoSession) {
					t.Errorf("trying again left the session: %v", err)
				}
				return
			}
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("status %d, want 303", resp.StatusCode)
			}
			if loc := resp.Header.Get("Location"); loc != testEndSession {
				t.Errorf("redirect %s, want the bare end-session endpoint (the provider session may be alive)", loc)
			}
		})
	}
}

func TestStoreTimeout(t *testing.T) {
	var reported error
	store := &failingStore{SessionStore: newCookieStore(t), block: true}
	h, _ := newHandler(t, store, func(c *logout.Config) {
		c.StoreTimeout = 50 * time.Millisecond
		c.OnError = func(_ *http.Request, err error) { reported = err }
	})
	resp := serve(h, logoutRequest(http.MethodPost, signIn(t, h, testSession())))
	if !errors.Is(reported, context.DeadlineExceeded) {
		t.Errorf("OnError got %v, want a deadline error", reported)
	}
	if resp.StatusCode != http.StatusSeeOther || setCookies(resp)["__Host-session"]["max-age"] != "0" {
		t.Errorf("status %d and cookies %v after a timeout, want 303 and the cookie expired", resp.StatusCode, resp.Header.Values("Set-Cookie"))
	}
}

func TestClientDisconnectDoesNotCancelEnd(t *testing.T) {
	store := &failingStore{SessionStore: newMiniStore(t), seen: make(chan error, 1)}
	h, _ := newHandler(t, store, nil)
	cookies := signIn(t, h, testSession())
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the browser went away before the handler ran
	serve(h, logoutRequest(http.MethodPost, cookies).WithContext(ctx))
	if err := <-store.seen; err != nil {
		t.Errorf("End saw a cancelled context: %v", err)
	}
	if _, err := currentSession(h, cookies); !errors.Is(err, logout.ErrNoSession) {
		t.Errorf("session after logout by a departed client: %v, want ErrNoSession", err)
	}
}

func TestOnLogoutAndLogs(t *testing.T) {
	var got logout.Session
	h, logs := newHandler(t, newCookieStore(t), func(c *logout.Config) {
		c.OnLogout = func(_ *http.Request, s logout.Session) { got = s }
	})
	s := testSession()
	cookies := signIn(t, h, s)
	serve(h, logoutRequest(http.MethodPost, cookies))
	if got.Subject != s.Subject || got.RefreshToken != s.RefreshToken {
		t.Errorf("OnLogout got %v, want the ended session", got)
	}
	out := logs.String()
	if !strings.Contains(out, "usr_1234") {
		t.Errorf("logout not logged with the subject: %s", out)
	}
	for _, secret := range []string{s.IDToken, s.AccessToken, s.RefreshToken, cookies[0].Value} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains a secret: %s", out)
		}
	}
	// A Session printed or logged by mistake leaks no token either.
	for _, text := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v", s, s, s)} {
		if strings.Contains(text, "TOKEN") {
			t.Errorf("formatted Session shows a token: %s", text)
		}
	}
}

func TestDiscovery(t *testing.T) {
	tests := []struct {
		name    string
		doc     func(issuer string) string
		status  int
		wantErr string
	}{
		{"ok", func(iss string) string {
			return `{"issuer":"` + iss + `","end_session_endpoint":"` + iss + `/oidc/logout"}`
		}, 200, ""},
		{"other issuer", func(string) string {
			return `{"issuer":"https://evil.example","end_session_endpoint":"https://evil.example/oidc/logout"}`
		}, 200, "names issuer"},
		{"no end_session_endpoint", func(iss string) string { return `{"issuer":"` + iss + `"}` }, 200, "no end_session_endpoint"},
		{"not JSON", func(string) string { return `<html>` }, 200, "not a JSON document"},
		{"down", func(string) string { return "" }, 503, "status 503"},
		{"plain http endpoint", func(iss string) string {
			return `{"issuer":"` + iss + `","end_session_endpoint":"http://idp.example/oidc/logout"}`
		}, 200, "must use https"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hits atomic.Int32
			var srv *httptest.Server
			srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				if r.URL.Path != "/.well-known/openid-configuration" {
					t.Errorf("discovery fetched %q", r.URL.Path)
				}
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.doc(srv.URL))
			}))
			defer srv.Close()
			h, err := logout.New(t.Context(), logout.Config{
				Store:                 newCookieStore(t),
				Issuer:                srv.URL + "/", // a trailing slash must not give //paths
				PostLogoutRedirectURI: testPostLogout,
			})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New: %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				resp := serve(h, logoutRequest(http.MethodPost, signIn(t, h, testSession())))
				if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, srv.URL+"/oidc/logout?") {
					t.Errorf("Location %q, want %s/oidc/logout?…", loc, srv.URL)
				}
			}
			if n := hits.Load(); n != 1 {
				t.Errorf("discovery fetched %d times, want once", n)
			}
		})
	}
}

func TestEndSessionEndpointKeepsItsQuery(t *testing.T) {
	h, _ := newHandler(t, newCookieStore(t), func(c *logout.Config) {
		c.EndSessionEndpoint = "https://idp.example/logout?p=b2c_policy"
	})
	loc := location(t, serve(h, logoutRequest(http.MethodPost, signIn(t, h, testSession()))))
	if loc.Path != "/logout" || loc.Query().Get("p") != "b2c_policy" || loc.Query().Get("id_token_hint") == "" {
		t.Errorf("redirect %s, want the endpoint's own query kept beside ours", loc)
	}
}

func TestNewValidation(t *testing.T) {
	store := newCookieStore(t)
	tests := []struct {
		name    string
		change  func(*logout.Config)
		wantErr string
	}{
		{"no store", func(c *logout.Config) { c.Store = nil }, "Store is required"},
		{"no post-logout URI", func(c *logout.Config) { c.PostLogoutRedirectURI = "" }, "PostLogoutRedirectURI is required"},
		{"relative post-logout URI", func(c *logout.Config) { c.PostLogoutRedirectURI = "/logged-out" }, "not an absolute URL"},
		{"http post-logout URI", func(c *logout.Config) { c.PostLogoutRedirectURI = "http://app.example.com/x" }, "must use https"},
		{"fragment", func(c *logout.Config) { c.PostLogoutRedirectURI = "https://app.example.com/x#y" }, "fragment"},
		{"user info", func(c *logout.Config) { c.PostLogoutRedirectURI = "https://u@app.example.com/x" }, "user info"},
		{"javascript", func(c *logout.Config) { c.PostLogoutRedirectURI = "javascript:alert(1)" }, "not an absolute URL"},
		{"bad allowed URI", func(c *logout.Config) { c.AllowedPostLogoutRedirectURIs = []string{"//evil.example"} }, "not an absolute URL"},
		{"no endpoint, no issuer", func(c *logout.Config) { c.EndSessionEndpoint = "" }, "Issuer is required"},
		{"http endpoint", func(c *logout.Config) { c.EndSessionEndpoint = "http://idp.example/oidc/logout" }, "must use https"},
		{"__Host- with domain", func(c *logout.Config) { c.Cookie.Domain = "example.com" }, "__Host-"},
		{"__Host- with path", func(c *logout.Config) { c.Cookie.Path = "/app" }, "__Host-"},
		{"__Host- over http", func(c *logout.Config) { c.Cookie = logout.CookieConfig{Name: "__Host-s", InsecureHTTP: true} }, "__Host-"},
		{"__Secure- over http", func(c *logout.Config) { c.Cookie = logout.CookieConfig{Name: "__Secure-s", InsecureHTTP: true} }, "__Secure-"},
		{"bad domain", func(c *logout.Config) { c.Cookie = logout.CookieConfig{Name: "s", Domain: "exa mple.com"} }, "Domain"},
		{"bad cookie name", func(c *logout.Config) { c.Cookie.Name = "a b" }, "Cookie"},
		{"partitioned over http", func(c *logout.Config) { c.Cookie = logout.CookieConfig{Partitioned: true, InsecureHTTP: true} }, "Partitioned"},
		{"bad clear cookie", func(c *logout.Config) { c.ClearCookies = []http.Cookie{{Name: "idToken", Domain: "-bad-"}} }, "ClearCookies"},
		{"__Host- clear cookie with domain", func(c *logout.Config) {
			c.ClearCookies = []http.Cookie{{Name: "__Host-x", Domain: "example.com", Secure: true, Path: "/"}}
		}, "__Host-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := logout.Config{Store: store, EndSessionEndpoint: testEndSession, PostLogoutRedirectURI: testPostLogout}
			tt.change(&cfg)
			_, err := logout.New(t.Context(), cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New: %v, want an error containing %q", err, tt.wantErr)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "logout: ") {
				t.Errorf("error %q lacks the logout: prefix", err)
			}
		})
	}
}

func TestLocalhostMayUseHTTP(t *testing.T) {
	for _, u := range []string{"http://localhost:8080/logged-out", "http://127.0.0.1:8080/logged-out", "http://[::1]:8080/x", "http://app.localhost/x"} {
		_, err := logout.New(t.Context(), logout.Config{Store: newCookieStore(t), EndSessionEndpoint: "http://127.0.0.1:8081/oidc/logout", PostLogoutRedirectURI: u})
		if err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}
