// SPDX-License-Identifier: Apache-2.0

package logout_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/endsession/logout"
	"github.com/endsession/logout/scalekittest"
)

// sharedStores builds a store of each kind that instances can share, on rdb;
// instances that share a session share rdb and the cookie key.
func sharedStores(t *testing.T) map[string]func(rdb redis.UniversalClient, key []byte) logout.SessionStore {
	return map[string]func(rdb redis.UniversalClient, key []byte) logout.SessionStore{
		"redis": func(rdb redis.UniversalClient, _ []byte) logout.SessionStore { return logout.NewRedisStore(rdb) },
		"revocable cookie": func(rdb redis.UniversalClient, key []byte) logout.SessionStore {
			s, err := logout.NewRevocableCookieStore(logout.NewRevocationList(rdb), key)
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
}

// refreshEnv signs a user in at a fake Scalekit and into a Handler on the
// store newStore makes, with the fake as its Provider.
func refreshEnv(t *testing.T, newStore func(redis.UniversalClient, []byte) logout.SessionStore) (*provEnv, *logout.Handler, providerTokens, []*http.Cookie) {
	t.Helper()
	e := newProvEnv(t, scalekittest.Config{})
	_, rdb := newMini(t)
	h := e.handler(t, newStore(rdb, newKey(t)), 0, nil)
	tok := e.signInAtFake(t, newJar(t), "ada@example.com")
	return e, h, tok, signIn(t, h, e.appSession(tok))
}

func refreshRequest(cookies []*http.Cookie) *http.Request {
	return logoutRequest(http.MethodGet, cookies)
}

// A refresh stores rotated tokens, and the next logout sends the newest ID
// token.
func TestRefreshRotatesTokens(t *testing.T) {
	for name, newStore := range sharedStores(t) {
		t.Run(name, func(t *testing.T) {
			_, h, tok, cookies := refreshEnv(t, newStore)

			rec := httptest.NewRecorder()
			s, err := h.Refresh(rec, refreshRequest(cookies))
			if err != nil {
				t.Fatal(err)
			}
			if s.RefreshToken == tok.RefreshToken || s.IDToken == tok.IDToken || s.AccessToken == tok.AccessToken {
				t.Error("refresh kept an old token")
			}
			noteSecret(s.RefreshToken)
			noteSecret(s.AccessToken)
			noteSecret(s.IDToken)
			if c := rec.Result().Cookies(); len(c) > 0 {
				cookies = c
				for _, ck := range c {
					noteSecret(ck.Value)
				}
			}
			stored, err := currentSession(h, cookies)
			if err != nil || stored.RefreshToken != s.RefreshToken {
				t.Fatalf("stored session %v, %v; want the refreshed one", stored.RefreshToken == s.RefreshToken, err)
			}
			resp := serve(h, logoutRequest(http.MethodPost, cookies))
			if got := location(t, resp).Query().Get("id_token_hint"); got != s.IDToken {
				t.Error("logout after a refresh did not send the refreshed ID token")
			}
		})
	}
}

// When the provider session was revoked, the next refresh ends the app
// session: the caller gets ErrNoSession and the cookie is expired.
func TestRefreshAfterProviderRevocation(t *testing.T) {
	for name, newStore := range sharedStores(t) {
		t.Run(name, func(t *testing.T) {
			e, h, tok, cookies := refreshEnv(t, newStore)
			if _, err := e.fake.RevokeSession(tok.SessionID); err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			if _, err := h.Refresh(rec, refreshRequest(cookies)); !errors.Is(err, logout.ErrNoSession) {
				t.Fatalf("Refresh after the provider revoked the session: %v, want ErrNoSession", err)
			}
			if setCookies(rec.Result())[cookies[0].Name]["max-age"] != "0" {
				t.Error("the cookie was not expired")
			}
			if _, err := currentSession(h, cookies); !errors.Is(err, logout.ErrNoSession) {
				t.Errorf("app session after the failed refresh: %v, want ended", err)
			}
		})
	}
}

// Many tabs on two instances refreshing one session at once: the provider
// sees one refresh, nobody is signed out (even with a provider that revokes
// the whole session when a refresh token is used twice), and every caller
// ends up with the winner's tokens.
func TestConcurrentRefreshesDoNotSignOut(t *testing.T) {
	for name, newStore := range sharedStores(t) {
		t.Run(name, func(t *testing.T) {
			e := newProvEnv(t, scalekittest.Config{RefreshReuseRevokesSession: true})
			_, rdb := newMini(t)
			key := newKey(t)
			a := e.handler(t, newStore(rdb, key), 0, nil)
			b := e.handler(t, newStore(rdb, key), 0, nil)
			tok := e.signInAtFake(t, newJar(t), "ada@example.com")
			cookies := signIn(t, a, e.appSession(tok))
			grants := e.calls.count("POST /oauth/token")

			var wg, loaded sync.WaitGroup
			loaded.Add(12)
			results := make([]logout.Session, 12)
			errs := make([]error, 12)
			start := make(chan struct{})
			for i := range results {
				wg.Add(1)
				go func() {
					defer wg.Done()
					h := a
					if i%2 == 1 {
						h = b
					}
					// Each tab's request has loaded the session before any
					// refresh begins, as pages under the middleware do.
					h.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						loaded.Done()
						<-start
						results[i], errs[i] = h.Refresh(w, r)
					})).ServeHTTP(httptest.NewRecorder(), refreshRequest(cookies))
				}()
			}
			loaded.Wait()
			close(start)
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("refresh %d: %v", i, err)
				}
				noteSecret(results[i].RefreshToken)
				noteSecret(results[i].AccessToken)
				noteSecret(results[i].IDToken)
				if results[i].RefreshToken != results[0].RefreshToken {
					t.Errorf("refresh %d got other tokens than refresh 0", i)
				}
			}
			if got := e.calls.count("POST /oauth/token") - grants; got != 1 {
				t.Errorf("the provider saw %d refreshes, want 1", got)
			}
			if got := status(t, e.fake, tok.SessionID); got != scalekittest.StatusActive {
				t.Errorf("provider session %s, want active", got)
			}
			if _, err := e.provider.Refresh(context.Background(), results[0].RefreshToken); err != nil {
				t.Errorf("the stored refresh token is not the provider's current one: %v", err)
			}
		})
	}
}

// A refresh racing a logout never brings the session back.
func TestRefreshAfterLogout(t *testing.T) {
	for name, newStore := range sharedStores(t) {
		t.Run(name, func(t *testing.T) {
			_, h, _, cookies := refreshEnv(t, newStore)
			serve(h, logoutRequest(http.MethodPost, cookies))
			if _, err := h.Refresh(httptest.NewRecorder(), refreshRequest(cookies)); !errors.Is(err, logout.ErrNoSession) {
				t.Errorf("Refresh after logout: %v, want ErrNoSession", err)
			}
			if _, err := currentSession(h, cookies); !errors.Is(err, logout.ErrNoSession) {
				t.Errorf("session after logout and refresh: %v", err)
			}
		})
	}
}

// refreshGate holds the provider's refresh_token grants of one Provider:
// each waits, once it reached the gate, until the test lets it through or
// makes it fail.
type refreshGate struct {
	next    http.RoundTripper
	entered chan struct{}
	release chan bool // true: on to the provider; false: a 503 instead
}

func newRefreshGate(next http.RoundTripper) *refreshGate {
	return &refreshGate{next: next, entered: make(chan struct{}, 16), release: make(chan bool, 16)}
}

func (g *refreshGate) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path == "/oauth/token" && r.Body != nil {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if strings.Contains(string(body), "grant_type=refresh_token") {
			g.entered <- struct{}{}
			if !<-g.release {
				return &http.Response{StatusCode: http.StatusServiceUnavailable, Header: http.Header{"Content-Type": {"application/json"}},
					Body: io.NopCloser(strings.NewReader(`{"error":"temporarily_unavailable"}`)), Request: r}, nil
			}
		}
	}
	return g.next.RoundTrip(r)
}

// gatedProvider is a Provider on the env's fake whose refreshes pass g,
// counted with the env's other calls.
func (e *provEnv) gatedProvider(t *testing.T, g *refreshGate) *logout.Provider {
	t.Helper()
	g.next = e.calls
	p, err := logout.NewProvider(logout.ProviderConfig{
		Issuer: e.fake.Issuer(), ClientID: provClient, ClientSecret: provSecret, HTTPClient: &http.Client{Transport: g},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// commandSignal reports on a channel each time its client sends a command of
// one name.
type commandSignal struct {
	name string
	seen chan struct{}
}

func (c commandSignal) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c commandSignal) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (c commandSignal) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == c.name {
			select {
			case c.seen <- struct{}{}:
			default:
			}
		}
		return next(ctx, cmd)
	}
}

// refreshGrants counts the refresh and client-credentials grants the env's
// fake has been sent.
func (e *provEnv) grants() int { return e.calls.count("POST /oauth/token") }

// A page request that carries the cookie a refresh replaced, handled after
// the refresh, renews nothing of the old session: it writes no cookie that
// still holds the spent refresh token.
func TestRenewNeverResealsARefreshedSession(t *testing.T) {
	for _, kind := range []string{"revocable cookie", "cookie (one instance)"} {
		t.Run(kind, func(t *testing.T) {
			e := newProvEnv(t, scalekittest.Config{})
			m, rdb := newMini(t)
			clock := newFakeClock()
			var store logout.SessionStore = newCookieStore(t)
			if kind == "revocable cookie" {
				store = newRevocableStore(t, rdb)
			}
			logout.SetCookieStoreClock(store, clock.Now)
			h := e.handler(t, store, 0, func(c *logout.Config) { c.IdleTimeout = 15 * time.Minute })
			tok := e.signInAtFake(t, newJar(t), "ada@example.com")
			old := signIn(t, h, e.appSession(tok))

			refreshed, err := h.Refresh(httptest.NewRecorder(), refreshRequest(old))
			if err != nil {
				t.Fatal(err)
			}
			noteSecret(refreshed.RefreshToken)
			noteSecret(refreshed.AccessToken)
			noteSecret(refreshed.IDToken)
			// Late enough that a renewal of the old cookie would write a new one.
			clock.Advance(2 * time.Minute)
			m.FastForward(2 * time.Minute)
			rec := httptest.NewRecorder()
			h.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(rec, refreshRequest(old))
			written := rec.Result().Cookies()
			for _, c := range written {
				noteSecret(c.Value)
			}
			if len(written) == 0 {
				return
			}
			s, err := currentSession(h, written)
			if err != nil {
				t.Fatalf("the cookie the page request wrote: %v", err)
			}
			if s.RefreshToken != refreshed.RefreshToken {
				t.Error("the page request re-sealed the session the refresh replaced: its cookie holds the spent refresh token")
			}
		})
	}
}

// A cookie renewed while a refresh ran, whose response reached the browser
// last, holds the refresh token the refresh spent: the next Refresh never
// sends it to the provider, and never answers with its stale tokens.
func TestRefreshNeverRedeemsASpentToken(t *testing.T) {
	for _, reuseRevokes := range []bool{true, false} {
		t.Run(fmt.Sprint("RefreshReuseRevokesSession=", reuseRevokes), func(t *testing.T) {
			e := newProvEnv(t, scalekittest.Config{RefreshReuseRevokesSession: reuseRevokes})
			m, rdb := newMini(t)
			clock := newFakeClock()
			store := newRevocableStore(t, rdb)
			logout.SetCookieStoreClock(store, clock.Now)
			h := e.handler(t, store, 0, func(c *logout.Config) { c.IdleTimeout = 15 * time.Minute })
			tok := e.signInAtFake(t, newJar(t), "ada@example.com")
			old := signIn(t, h, e.appSession(tok))

			// The page request renews the cookie just before the refresh
			// stores its tokens; its answer reaches the browser last.
			clock.Advance(2 * time.Minute)
			m.FastForward(2 * time.Minute)
			rec := httptest.NewRecorder()
			h.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(rec, refreshRequest(old))
			renewed := rec.Result().Cookies()
			if len(renewed) == 0 {
				t.Fatal("the page request did not renew the cookie")
			}
			for _, c := range renewed {
				noteSecret(c.Value)
			}
			refreshed, err := h.Refresh(httptest.NewRecorder(), refreshRequest(old))
			if err != nil {
				t.Fatal(err)
			}
			noteSecret(refreshed.RefreshToken)

			rec = httptest.NewRecorder()
			got, err := h.Refresh(rec, refreshRequest(renewed))
			if err != nil {
				t.Fatalf("Refresh with the renewed old cookie: %v", err)
			}
			noteSecret(got.RefreshToken)
			noteSecret(got.AccessToken)
			noteSecret(got.IDToken)
			if st := status(t, e.fake, tok.SessionID); st != scalekittest.StatusActive {
				t.Fatalf("provider session %s: the spent refresh token was sent to the provider", st)
			}
			if got.RefreshToken == tok.RefreshToken || got.AccessToken == tok.AccessToken {
				t.Error("Refresh answered with the stale tokens of the old cookie, and no error")
			}
			if c := rec.Result().Cookies(); len(c) > 0 {
				for _, ck := range c {
					noteSecret(ck.Value)
				}
				if s, err := currentSession(h, c); err != nil || s.RefreshToken != got.RefreshToken {
					t.Errorf("the cookie Refresh wrote: %v; holds the returned tokens: %v", err, s.RefreshToken == got.RefreshToken)
				}
			}
		})
	}
}

// Two tabs of one browser on one instance with a bare CookieStore: the
// second refresh, with the same cookie, handled just after the first
// finished, gets the first one's tokens; nobody is signed out, and the
// provider sees one refresh.
func TestCookieStoreTabsRefreshOnOneInstance(t *testing.T) {
	e := newProvEnv(t, scalekittest.Config{RefreshReuseRevokesSession: true})
	h := e.handler(t, newCookieStore(t), 0, nil)
	tok := e.signInAtFake(t, newJar(t), "ada@example.com")
	cookies := signIn(t, h, e.appSession(tok))
	grants := e.grants()

	first, err := h.Refresh(httptest.NewRecorder(), refreshRequest(cookies))
	if err != nil {
		t.Fatal(err)
	}
	noteSecret(first.RefreshToken)
	noteSecret(first.AccessToken)
	noteSecret(first.IDToken)
	rec := httptest.NewRecorder()
	second, err := h.Refresh(rec, refreshRequest(cookies))
	if err != nil {
		t.Fatalf("the second tab's refresh: %v", err)
	}
	if second.RefreshToken != first.RefreshToken {
		t.Error("the second tab got other tokens than the first")
	}
	if setCookies(rec.Result())[cookies[0].Name]["max-age"] == "0" {
		t.Error("the second tab's refresh expired the session cookie")
	}
	if got := e.grants() - grants; got != 1 {
		t.Errorf("the provider saw %d refreshes, want 1", got)
	}
	if st := status(t, e.fake, tok.SessionID); st != scalekittest.StatusActive {
		t.Errorf("provider session %s, want active", st)
	}
}

// twoInstances is a session signed in on two Handlers that share its store,
// a on a Provider whose refreshes pass gate, b on the env's own; b's Redis
// client reports each EXISTS it sends (a wait on the refresh lease).
func twoInstances(t *testing.T, e *provEnv, newStore func(redis.UniversalClient, []byte) logout.SessionStore, gate *refreshGate, aProvider ...func(*logout.Provider)) (a, b *logout.Handler, bWaits chan struct{}, m *miniredis.Miniredis, tok providerTokens, cookies []*http.Cookie) {
	t.Helper()
	m, rdbA := newMini(t)
	rdbB := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { rdbB.Close() })
	bWaits = make(chan struct{}, 1)
	rdbB.AddHook(commandSignal{name: "exists", seen: bWaits})
	key := newKey(t)
	p := e.gatedProvider(t, gate)
	for _, f := range aProvider {
		f(p)
	}
	a = e.handler(t, newStore(rdbA, key), time.Hour, func(c *logout.Config) { c.Provider = p })
	b = e.handler(t, newStore(rdbB, key), time.Hour, nil)
	tok = e.signInAtFake(t, newJar(t), "ada@example.com")
	return a, b, bWaits, m, tok, signIn(t, a, e.appSession(tok))
}

// When the instance holding the refresh lease fails, a request that waited
// for it on another instance gets an error, never the old session as if it
// had been refreshed.
func TestWaitingRefreshFailsWhenTheHolderFails(t *testing.T) {
	for name, newStore := range sharedStores(t) {
		t.Run(name, func(t *testing.T) {
			e := newProvEnv(t, scalekittest.Config{})
			gate := newRefreshGate(nil)
			a, b, bWaits, _, _, cookies := twoInstances(t, e, newStore, gate)

			if s, err := refreshWhileTheHolderFails(t, a, b, gate, bWaits, refreshRequest(cookies), refreshRequest(cookies)); err == nil {
				t.Errorf("b's refresh reported success though nothing was refreshed (got the old tokens back: %v)", s.RefreshToken != "")
			}
		})
	}
}

// A request that waited for another instance's refresh, which failed, gets
// an error even when the session it then finds holds a newer refresh token
// than the one it saw: an earlier refresh stored that token, and its access
// token has expired since, which is why the failed refresh was needed.
func TestWaitingRefreshNeverReturnsAnExpiredAccessToken(t *testing.T) {
	for name, newStore := range sharedStores(t) {
		t.Run(name, func(t *testing.T) {
			e := newProvEnv(t, scalekittest.Config{})
			gate := newRefreshGate(nil)
			// a's provider reads its clock an hour back: the access tokens
			// of its refreshes have expired when they are stored.
			a, b, bWaits, _, _, cookies := twoInstances(t, e, newStore, gate, func(p *logout.Provider) {
				logout.SetProviderClock(p, func() time.Time { return time.Now().Add(-time.Hour) })
			})
			// b serves a page with the session as first signed in.
			var page *http.Request
			b.Middleware(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { page = r })).ServeHTTP(httptest.NewRecorder(), refreshRequest(cookies))
			if _, err := logout.SessionFromContext(page.Context()); err != nil {
				t.Fatal(err)
			}
			// a refreshes once, storing tokens whose access token has
			// expired, and then again, when the provider fails.
			gate.release <- true
			rec := httptest.NewRecorder()
			if _, err := a.Refresh(rec, refreshRequest(cookies)); err != nil {
				t.Fatal(err)
			}
			<-gate.entered
			if c := rec.Result().Cookies(); len(c) > 0 {
				cookies = c
			}
			if s, err := refreshWhileTheHolderFails(t, a, b, gate, bWaits, refreshRequest(cookies), page); err == nil {
				t.Errorf("b's refresh reported success with an access token that expired at %v", s.AccessTokenExpiry)
			}
		})
	}
}

// refreshWhileTheHolderFails has a refresh aReq on a take the lease, one
// bReq on b wait for it, and the provider fail a's; it returns b's result.
func refreshWhileTheHolderFails(t *testing.T, a, b *logout.Handler, gate *refreshGate, bWaits chan struct{}, aReq, bReq *http.Request) (logout.Session, error) {
	t.Helper()
	aDone := make(chan error, 1)
	go func() {
		_, err := a.Refresh(httptest.NewRecorder(), aReq)
		aDone <- err
	}()
	<-gate.entered // a holds the lease, and the provider holds a
	for len(bWaits) > 0 {
		<-bWaits
	}
	type result struct {
		s   logout.Session
		err error
	}
	bDone := make(chan result, 1)
	go func() {
		s, err := b.Refresh(httptest.NewRecorder(), bReq)
		bDone <- result{s, err}
	}()
	select {
	case <-bWaits: // b found the lease taken and waits
	case r := <-bDone:
		t.Fatalf("b did not wait for a's refresh: %v", r.err)
	}
	gate.release <- false // the provider fails a's refresh
	if err := <-aDone; err == nil {
		t.Fatal("a's refresh succeeded through a failing provider")
	}
	r := <-bDone
	return r.s, r.err
}

// A refresh that takes as long as its bound allows (a slow provider) keeps
// its lease throughout: no other instance redeems the same refresh token
// meanwhile.
func TestRefreshLeaseOutlivesASlowProvider(t *testing.T) {
	for name, newStore := range sharedStores(t) {
		t.Run(name, func(t *testing.T) {
			e := newProvEnv(t, scalekittest.Config{RefreshReuseRevokesSession: true})
			gate := newRefreshGate(nil)
			a, b, bWaits, m, tok, cookies := twoInstances(t, e, newStore, gate)
			grants := e.grants()

			type result struct {
				s   logout.Session
				err error
			}
			aDone := make(chan result, 1)
			go func() {
				s, err := a.Refresh(httptest.NewRecorder(), refreshRequest(cookies))
				aDone <- result{s, err}
			}()
			<-gate.entered
			// The provider is slow: Redis's clock moves to just before the
			// end of the refresh's bound (StoreTimeout 3 s + 2 × the
			// provider's 10 s timeout).
			m.FastForward(22 * time.Second)
			for len(bWaits) > 0 {
				<-bWaits
			}
			bDone := make(chan result, 1)
			go func() {
				s, err := b.Refresh(httptest.NewRecorder(), refreshRequest(cookies))
				bDone <- result{s, err}
			}()
			var rb result
			select {
			case <-bWaits:
			case rb = <-bDone:
				bDone <- rb
			}
			gate.release <- true
			ra := <-aDone
			rb = <-bDone
			for who, r := range map[string]result{"a": ra, "b": rb} {
				if r.err != nil {
					t.Errorf("%s: %v", who, r.err)
				}
				noteSecret(r.s.RefreshToken)
				noteSecret(r.s.AccessToken)
				noteSecret(r.s.IDToken)
			}
			if got := e.grants() - grants; got != 1 {
				t.Errorf("the provider saw %d refreshes of one refresh token, want 1", got)
			}
			if st := status(t, e.fake, tok.SessionID); st != scalekittest.StatusActive {
				t.Errorf("provider session %s, want active", st)
			}
		})
	}
}
