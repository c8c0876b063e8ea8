// SPDX-License-Identifier: Apache-2.0

package logout_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/endsession/logout"
	"github.com/endsession/logout/scalekittest"
)

const (
	provClient   = "skc_4200000000000001"
	provSecret   = "test-client-secret-never-logged"
	provCallback = "https://app.example.com/callback"
)

// provEnv is a fake Scalekit with the app registered, and a Provider on it.
type provEnv struct {
	fake     *scalekittest.Server
	provider *logout.Provider
	calls    *callCounter
}

func newProvEnv(t testing.TB, cfg scalekittest.Config) *provEnv {
	t.Helper()
	cfg.Clients = append(cfg.Clients, scalekittest.Client{
		ID: provClient, Secret: provSecret,
		RedirectURIs: []string{provCallback}, PostLogoutRedirectURIs: []string{testPostLogout},
	})
	fake, err := scalekittest.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	noteSecret(provSecret)
	calls := &callCounter{next: http.DefaultTransport, paths: map[string]int{}}
	p, err := logout.NewProvider(logout.ProviderConfig{
		Issuer: fake.Issuer(), ClientID: provClient, ClientSecret: provSecret, HTTPClient: &http.Client{Transport: calls},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &provEnv{fake: fake, provider: p, calls: calls}
}

// callCounter counts the requests a client sends, by method and path.
type callCounter struct {
	next  http.RoundTripper
	mu    sync.Mutex
	paths map[string]int
}

func (c *callCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.paths[r.Method+" "+r.URL.Path]++
	c.mu.Unlock()
	return c.next.RoundTrip(r)
}

func (c *callCounter) count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.paths[key]
}

func (c *callCounter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.paths {
		n += v
	}
	return n
}

// providerTokens is what a sign-in at the fake gave the app.
type providerTokens struct {
	IDToken, AccessToken, RefreshToken string
	UserID, SessionID                  string
	ExpiresIn                          int64
}

// signInAtFake signs email in at the fake as the app would: an authorization
// request from a browser with its own cookie jar (so one jar is one device),
// then the code exchange.
func (e *provEnv) signInAtFake(t testing.TB, jar http.CookieJar, email string) providerTokens {
	t.Helper()
	browser := &http.Client{Jar: jar, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(r.URL.String(), provCallback) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	q := url.Values{"client_id": {provClient}, "redirect_uri": {provCallback}, "response_type": {"code"},
		"scope": {"openid email profile offline_access"}, "login_hint": {email}, "state": {"s"}}
	resp, err := browser.Get(e.fake.URL + "/oauth/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("authorize answered %d without a redirect", resp.StatusCode)
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {provCallback}}
	req, _ := http.NewRequest(http.MethodPost, e.fake.URL+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(provClient, provSecret)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		IDToken      string `json:"id_token"`
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		ExpiresIn    int64  `json:"expires_in"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.IDToken == "" {
		t.Fatalf("code exchange: %d %v", resp.StatusCode, err)
	}
	out := providerTokens{IDToken: tok.IDToken, AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken,
		UserID: e.fake.User(email).ID, SessionID: claimOf(t, tok.IDToken, "sid"), ExpiresIn: tok.ExpiresIn}
	for _, s := range []string{tok.IDToken, tok.AccessToken, tok.RefreshToken} {
		noteSecret(s)
	}
	return out
}

// claimOf reads one claim of a JWT without verifying it (the fake signed it).
func claimOf(t testing.TB, jwt, name string) string {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT")
	}
	var claims map[string]any
	if err := json.Unmarshal(mustB64(t, parts[1]), &claims); err != nil {
		t.Fatal(err)
	}
	v, _ := claims[name].(string)
	return v
}

func newJar(t testing.TB) http.CookieJar {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return jar
}

func status(t testing.TB, fake *scalekittest.Server, sid string) string {
	t.Helper()
	s, err := fake.Session(sid)
	if err != nil {
		t.Fatal(err)
	}
	return s.Status
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", limit, what)
		}
		<-time.After(10 * time.Millisecond)
	}
}

func TestProviderSessionAPI(t *testing.T) {
	e := newProvEnv(t, scalekittest.Config{})
	ctx := context.Background()
	laptop := e.signInAtFake(t, newJar(t), "ada@example.com")
	phone := e.signInAtFake(t, newJar(t), "ada@example.com")
	if laptop.SessionID == "" || phone.SessionID == laptop.SessionID {
		t.Fatalf("sessions %q and %q, want two", laptop.SessionID, phone.SessionID)
	}

	s, err := e.provider.Session(ctx, laptop.SessionID)
	if err != nil || !s.Active() || s.UserID != laptop.UserID || s.CreatedAt.IsZero() {
		t.Fatalf("Session = %+v, %v; want the active session of %s", s, err, laptop.UserID)
	}
	if _, err := e.provider.Session(ctx, "ses_9999"); !errors.Is(err, logout.ErrProviderSessionNotFound) {
		t.Errorf("unknown session: %v, want ErrProviderSessionNotFound", err)
	}
	list, err := e.provider.UserSessions(ctx, laptop.UserID)
	if err != nil || len(list) != 2 {
		t.Fatalf("UserSessions = %d, %v; want 2", len(list), err)
	}

	if err := e.provider.EndSession(ctx, laptop.SessionID); err != nil {
		t.Fatal(err)
	}
	if got := status(t, e.fake, laptop.SessionID); got != scalekittest.StatusRevoked {
		t.Errorf("after EndSession: %s, want revoked", got)
	}
	revokes := e.calls.count("POST /api/v1/sessions/" + laptop.SessionID + "/revoke")
	for name, sid := range map[string]string{"already ended": laptop.SessionID, "unknown": "ses_9999"} {
		if err := e.provider.EndSession(ctx, sid); err != nil {
			t.Errorf("EndSession of an %s session: %v, want nil (it counts as ended)", name, err)
		}
	}
	if got := e.calls.count("POST /api/v1/sessions/" + laptop.SessionID + "/revoke"); got != revokes {
		t.Errorf("an ended session was revoked again (%d revokes)", got-revokes)
	}

	tablet := e.signInAtFake(t, newJar(t), "ada@example.com")
	if n, err := e.provider.EndOtherSessions(ctx, phone.UserID, phone.SessionID); err != nil || n != 1 {
		t.Errorf("EndOtherSessions = %d, %v; want 1 (the tablet)", n, err)
	}
	if status(t, e.fake, tablet.SessionID) != scalekittest.StatusRevoked || status(t, e.fake, phone.SessionID) != scalekittest.StatusActive {
		t.Error("EndOtherSessions did not end exactly the other device")
	}
}

// The API token is fetched once and reused; a 401 (the provider dropped it
// early) makes the client fetch a new one once and retry.
func TestProviderTokenCache(t *testing.T) {
	var offset atomic.Int64
	e := newProvEnv(t, scalekittest.Config{ClientCredentialsLifetime: 5 * time.Minute,
		Now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }})
	ctx := context.Background()
	sid := e.signInAtFake(t, newJar(t), "ada@example.com").SessionID
	for range 3 {
		if _, err := e.provider.Session(ctx, sid); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.calls.count("POST /oauth/token"); got != 1 {
		t.Errorf("3 calls fetched %d tokens, want 1", got)
	}
	offset.Store(int64(6 * time.Minute)) // the fake's tokens live 5 minutes; ours thinks it has time
	if _, err := e.provider.Session(ctx, sid); err != nil {
		t.Fatalf("after the provider dropped the token: %v", err)
	}
	if got := e.calls.count("POST /oauth/token"); got != 2 {
		t.Errorf("token fetches = %d, want 2 (one renewal on the 401)", got)
	}
}

// Wrong credentials give an error that names no secret.
func TestProviderBadCredentials(t *testing.T) {
	e := newProvEnv(t, scalekittest.Config{})
	p, err := logout.NewProvider(logout.ProviderConfig{Issuer: e.fake.Issuer(), ClientID: provClient, ClientSecret: "wrong-secret-value-1234"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Session(context.Background(), "ses_1")
	if err == nil || strings.Contains(err.Error(), "wrong-secret-value-1234") || strings.Contains(err.Error(), provSecret) {
		t.Errorf("error %v: want one, without the secret", err)
	}
	for _, cfg := range []logout.ProviderConfig{
		{Issuer: e.fake.Issuer(), ClientID: provClient},
		{Issuer: "http://idp.example", ClientID: provClient, ClientSecret: "x"},
		{Issuer: "/relative", ClientID: provClient, ClientSecret: "x"},
	} {
		if _, err := logout.NewProvider(cfg); err == nil {
			t.Errorf("NewProvider(%+v) accepted", cfg)
		}
	}
}

// Refresh rotates the refresh token; the spent one is refused.
func TestProviderRefresh(t *testing.T) {
	e := newProvEnv(t, scalekittest.Config{})
	ctx := context.Background()
	tok := e.signInAtFake(t, newJar(t), "ada@example.com")
	got, err := e.provider.Refresh(ctx, tok.RefreshToken)
	if err != nil || got.RefreshToken == "" || got.RefreshToken == tok.RefreshToken || got.IDToken == "" || got.Expiry.IsZero() {
		t.Fatalf("Refresh = %+v, %v; want rotated tokens", got.Expiry, err)
	}
	noteSecret(got.RefreshToken)
	noteSecret(got.AccessToken)
	noteSecret(got.IDToken)
	if _, err := e.provider.Refresh(ctx, tok.RefreshToken); !errors.Is(err, logout.ErrRefreshRefused) {
		t.Errorf("spent refresh token: %v, want ErrRefreshRefused", err)
	}
	e.fake.RevokeSession(tok.SessionID)
	if _, err := e.provider.Refresh(ctx, got.RefreshToken); !errors.Is(err, logout.ErrRefreshRefused) {
		t.Errorf("refresh after the session was revoked: %v, want ErrRefreshRefused", err)
	}
}

func mustB64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
