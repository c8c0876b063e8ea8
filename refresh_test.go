package logout_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

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
