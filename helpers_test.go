// SPDX-License-Identifier: Apache-2.0

package logout_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/endsession/logout"
)

const (
	testEndSession = "https://acme.scalekit.dev/oidc/logout"
	testPostLogout = "https://app.example.com/logged-out"
	testAppOrigin  = "https://app.example.com"
)

// logSink collects every log line the package writes during a test, so tests
// can assert that no token ever reaches a log.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// newLogger writes to sink and to the suite-wide capture.
func newLogger(sink *logSink) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.MultiWriter(sink, &suiteLogs), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func newKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

func newCookieStore(t testing.TB) *logout.CookieStore {
	t.Helper()
	s, err := logout.NewCookieStore(newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newRevocableStore is a RevocableCookieStore whose list lives in rdb.
func newRevocableStore(t testing.TB, rdb redis.UniversalClient) *logout.RevocableCookieStore {
	t.Helper()
	s, err := logout.NewRevocableCookieStore(logout.NewRevocationList(rdb), newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newHandler builds a Handler around store with test defaults that each test
// may change; its log lines go to the returned sink.
func newHandler(t testing.TB, store logout.SessionStore, change func(*logout.Config)) (*logout.Handler, *logSink) {
	t.Helper()
	sink := &logSink{}
	cfg := logout.Config{
		Store:                 store,
		EndSessionEndpoint:    testEndSession,
		PostLogoutRedirectURI: testPostLogout,
		Logger:                newLogger(sink),
	}
	if change != nil {
		change(&cfg)
	}
	h, err := logout.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return h, sink
}

// testSession is what a sign-in produced, with recognisable tokens.
func testSession() logout.Session {
	return logout.Session{
		Issuer:       "https://acme.scalekit.dev",
		Subject:      "usr_1234",
		SessionID:    "ses_5678",
		Email:        "ada@example.com",
		IDToken:      "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c3JfMTIzNCJ9.sig-ID-TOKEN",
		AccessToken:  "ACCESS-TOKEN-abc",
		RefreshToken: "REFRESH-TOKEN-xyz",
		Expiry:       time.Now().Add(time.Hour).Truncate(time.Millisecond).UTC(),
	}
}

// signIn starts s through the handler and returns the cookies it set.
func signIn(t testing.TB, h *logout.Handler, s logout.Session) []*http.Cookie {
	t.Helper()
	rec := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, testAppOrigin+"/callback", nil)
	if err := h.StartSession(rec, r, s); err != nil {
		t.Fatalf("StartSession: %v", err)
	}
	cookies := rec.Result().Cookies()
	if len(cookies) == 0 {
		t.Fatal("StartSession set no cookie")
	}
	for _, c := range cookies {
		noteSecret(c.Value)
	}
	return cookies
}

// logoutRequest is a same-origin form POST to /logout from a browser.
func logoutRequest(method string, cookies []*http.Cookie, header ...string) *http.Request {
	r := httptest.NewRequest(method, testAppOrigin+"/logout", nil)
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	r.Header.Set("Sec-Fetch-Mode", "navigate")
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			r.Header.Del(header[i])
		} else {
			r.Header.Set(header[i], header[i+1])
		}
	}
	for _, c := range cookies {
		if c.MaxAge >= 0 {
			r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
		}
	}
	return r
}

func serve(h http.Handler, r *http.Request) *http.Response {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec.Result()
}

// currentSession asks the handler whether the cookies still sign someone in.
func currentSession(h *logout.Handler, cookies []*http.Cookie) (logout.Session, error) {
	return h.Session(logoutRequest(http.MethodGet, cookies))
}

func location(t testing.TB, resp *http.Response) *url.URL {
	t.Helper()
	u, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatalf("Location %q: %v", resp.Header.Get("Location"), err)
	}
	return u
}

// setCookieAttrs parses a raw Set-Cookie line into its name and a map of
// lower-cased attribute names to values, so tests can compare attributes
// exactly as the browser receives them.
func setCookieAttrs(line string) (name string, attrs map[string]string) {
	parts := strings.Split(line, ";")
	name, _, _ = strings.Cut(strings.TrimSpace(parts[0]), "=")
	attrs = map[string]string{}
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		attrs[strings.ToLower(k)] = v
	}
	return name, attrs
}

// setCookies maps each Set-Cookie line of resp by cookie name.
func setCookies(resp *http.Response) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, line := range resp.Header.Values("Set-Cookie") {
		n, a := setCookieAttrs(line)
		out[n] = a
	}
	return out
}

// failingStore is a SessionStore whose End fails or blocks, as Redis does
// when it is down or slow; the rest delegates to a real store.
type failingStore struct {
	logout.SessionStore
	err   error
	block bool
	seen  chan error // receives ctx.Err() as End sees it on entry
}

func (f *failingStore) End(ctx context.Context, token string) (logout.Session, error) {
	if f.seen != nil {
		f.seen <- ctx.Err()
	}
	if f.block {
		<-ctx.Done()
		return logout.Session{}, ctx.Err()
	}
	if f.err != nil {
		return logout.Session{}, f.err
	}
	return f.SessionStore.End(ctx, token)
}
