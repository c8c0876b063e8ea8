// SPDX-License-Identifier: Apache-2.0

package logout_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/endsession/logout"
)

// With WaitReplicas set and no replica confirming, a logout is reported as
// not done (OnError gets ErrNotConfirmed, OnLogout is not called), but the
// session stays ended on the primary: nothing puts it back, so no copy of
// the cookie signs in and no later revocation can miss it.
func TestUnconfirmedLogoutStaysEnded(t *testing.T) {
	for _, failClosed := range []bool{false, true} {
		t.Run(fmt.Sprint("FailOnStoreError=", failClosed), func(t *testing.T) {
			store, _ := realRedisStore(t)
			store.WaitReplicas = 1 // the machine's Redis has no replica: WAIT answers 0
			store.WaitTimeout = 50 * time.Millisecond
			var acknowledged int
			var reported error
			h, _ := newHandler(t, store, func(c *logout.Config) {
				c.FailOnStoreError = failClosed
				c.OnLogout = func(*http.Request, logout.Session) { acknowledged++ }
				c.OnError = func(_ *http.Request, err error) { reported = err }
			})
			cookies := signIn(t, h, testSession())
			resp := serve(h, logoutRequest(http.MethodPost, cookies))
			if failClosed && resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("status %d, want 503", resp.StatusCode)
			}
			if !failClosed && location(t, resp).Query().Get("id_token_hint") != testSession().IDToken {
				t.Errorf("Location %q, want the ID token still sent to the provider", resp.Header.Get("Location"))
			}
			if acknowledged != 0 || !errors.Is(reported, logout.ErrNotConfirmed) {
				t.Errorf("OnLogout called %d times, OnError got %v; want 0 and ErrNotConfirmed", acknowledged, reported)
			}
			if _, err := currentSession(h, cookies); !errors.Is(err, logout.ErrNoSession) {
				t.Errorf("a copy of the cookie after the unconfirmed logout: %v, want ErrNoSession", err)
			}
		})
	}
	t.Run("RevocableCookieStore", func(t *testing.T) {
		rdb := realRedis(t)
		list := logout.NewRevocationList(rdb)
		list.KeyPrefix = keyPrefix(t, rdb)
		list.WaitReplicas = 1
		list.WaitTimeout = 50 * time.Millisecond
		store, err := logout.NewRevocableCookieStore(list, newKey(t))
		if err != nil {
			t.Fatal(err)
		}
		h, _ := newHandler(t, store, nil)
		cookies := signIn(t, h, testSession())
		serve(h, logoutRequest(http.MethodPost, cookies))
		if _, err := currentSession(h, cookies); !errors.Is(err, logout.ErrNoSession) {
			t.Errorf("a copy of the cookie after the unconfirmed logout: %v, want ErrNoSession", err)
		}
	})
}

// Signing out other devices from a request whose session another tab logged
// out meanwhile brings nothing back, on either store that can do it; and a
// user-wide revocation dated before the "other devices" still ends the
// caller's session.
func TestEndOtherSessionsAfterLogout(t *testing.T) {
	for name, newStore := range sharedStores(t) {
		t.Run(name, func(t *testing.T) {
			_, rdb := newMini(t)
			store := newStore(rdb, newKey(t))
			h, _ := newHandler(t, store, nil)
			cookies := signIn(t, h, testSession())
			var written []*http.Cookie
			h.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				serve(h, logoutRequest(http.MethodPost, cookies)) // another tab
				rec := httptest.NewRecorder()
				h.EndOtherSessions(rec, r)
				written = rec.Result().Cookies()
			})).ServeHTTP(httptest.NewRecorder(), logoutRequest(http.MethodPost, cookies))
			if _, err := currentSession(h, append(written, cookies...)); !errors.Is(err, logout.ErrNoSession) {
				t.Errorf("after a logout and then other devices: %v, want ErrNoSession", err)
			}
		})
	}
	t.Run("late user-wide revocation", func(t *testing.T) {
		_, rdb := newMini(t)
		store := newRevocableStore(t, rdb)
		h, _ := newHandler(t, store, nil)
		s := testSession()
		s.IssuedAt = time.Now().Add(-10 * time.Minute)
		cookies := signIn(t, h, s)
		loggedOutAt := time.Now().Add(-time.Minute) // the provider logged the user out a minute ago
		if _, err := h.EndOtherSessions(httptest.NewRecorder(), logoutRequest(http.MethodPost, cookies)); err != nil {
			t.Fatal(err)
		}
		if _, err := store.EndSubject(context.Background(), s.Issuer, s.Subject, loggedOutAt); err != nil {
			t.Fatal(err)
		}
		if _, err := currentSession(h, cookies); !errors.Is(err, logout.ErrNoSession) {
			t.Errorf("a session begun before a user.logout survives it after other devices: %v", err)
		}
	})
}

// Sign out everywhere from a tab whose own session is past its absolute
// expiry, though Redis still holds it (renewals kept its record alive),
// still signs the user's other devices out: the store knows whose it was.
// A session Redis already dropped names nobody; the handler then logs that
// the other devices were not signed out.
func TestEverywhereFromLapsedSession(t *testing.T) {
	m, rdb := newMini(t)
	store := logout.NewRedisStore(rdb)
	clock := newFakeClock()
	logout.SetRedisStoreClock(store, clock.Now)
	h, _ := newHandler(t, store, func(c *logout.Config) { c.IdleTimeout = time.Minute })
	advance := func(d time.Duration) { clock.Advance(d); m.FastForward(d) }
	b := signIn(t, h, testSession())
	short := testSession()
	short.Expiry = clock.Now().Add(30 * time.Second)
	c := signIn(t, h, short)
	advance(20 * time.Second)
	for _, cookies := range [][]*http.Cookie{b, c} { // both in use: renewed for another minute
		if _, err := currentSession(h, cookies); err != nil {
			t.Fatal(err)
		}
	}
	advance(20 * time.Second) // C is past its expiry; Redis still holds it
	serve(h.Everywhere(), logoutRequest(http.MethodPost, c))
	if _, err := currentSession(h, b); !errors.Is(err, logout.ErrNoSession) {
		t.Errorf("device B after sign out everywhere from an expired session: %v, want ended", err)
	}
}

// A call whose deadline is short does not wait out another call's slow
// token fetch.
func TestProviderTokenWaitHonoursDeadline(t *testing.T) {
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select { // a token endpoint that hangs
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	p, err := logout.NewProvider(logout.ProviderConfig{Issuer: srv.URL, ClientID: "c", ClientSecret: "s", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	go p.EndSession(context.Background(), "ses_1") // a backstop job, say
	<-arrived
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := p.Session(ctx, "ses_2"); err == nil {
		t.Fatal("a call against a hanging token endpoint succeeded")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("a call with a 100 ms deadline took %v", took.Round(time.Millisecond))
	}
}

// On a redis.Ring, as on Cluster, the revocation check reads each record
// from its own shard: no revoked session opens.
func TestRevocationOnRing(t *testing.T) {
	s1, s2 := startRedisServer(t), startRedisServer(t)
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": s1.Addr, "b": s2.Addr}})
	t.Cleanup(func() { ring.Close() })
	store, err := logout.NewRevocableCookieStore(logout.NewRevocationList(ring), newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	h, _ := newHandler(t, store, nil)
	redisStore := logout.NewRedisStore(ring)
	hr, _ := newHandler(t, redisStore, nil)
	ctx := context.Background()
	for i := range 20 {
		s := testSession()
		s.Subject, s.SessionID = fmt.Sprintf("usr_%d", i), fmt.Sprintf("ses_%d", i)
		cookies := signIn(t, h, s)
		redisCookies := signIn(t, hr, s)
		if _, err := store.EndSubject(ctx, s.Issuer, s.Subject, time.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := currentSession(h, cookies); !errors.Is(err, logout.ErrNoSession) {
			t.Errorf("user %d: a revoked cookie session opens on a Ring: %v", i, err)
		}
		if n, err := redisStore.EndSID(ctx, s.Issuer, s.SessionID); err != nil || n != 1 {
			t.Errorf("user %d: EndSID on a Ring = %d, %v; want 1", i, n, err)
		}
		if _, err := currentSession(hr, redisCookies); !errors.Is(err, logout.ErrNoSession) {
			t.Errorf("user %d: a Redis session ended by sid opens on a Ring: %v", i, err)
		}
	}
}

// A session already ended on the server (by "sign out everywhere", a
// webhook or back-channel logout, or "sign out other devices") is not live
// for a logout that brings its cookie: no OnLogout, no second report of the
// ending, no ID token in the Location. Both stores that keep server-side
// state answer it alike.
func TestLogoutOfAnEndedSession(t *testing.T) {
	ways := map[string]func(t *testing.T, h *logout.Handler, store logout.SessionStore, victim logout.Session){
		"everywhere from another device": func(t *testing.T, h *logout.Handler, _ logout.SessionStore, victim logout.Session) {
			serve(h.Everywhere(), logoutRequest(http.MethodPost, signIn(t, h, victim)))
		},
		"other devices": func(t *testing.T, h *logout.Handler, _ logout.SessionStore, victim logout.Session) {
			if _, err := h.EndOtherSessions(httptest.NewRecorder(), logoutRequest(http.MethodPost, signIn(t, h, victim))); err != nil {
				t.Fatal(err)
			}
		},
		"webhook or back-channel by sid": func(t *testing.T, _ *logout.Handler, store logout.SessionStore, victim logout.Session) {
			if _, err := store.(logout.Revoker).EndSID(context.Background(), victim.Issuer, victim.SessionID); err != nil {
				t.Fatal(err)
			}
		},
		"webhook or back-channel by user": func(t *testing.T, _ *logout.Handler, store logout.SessionStore, victim logout.Session) {
			if _, err := store.(logout.Revoker).EndSubject(context.Background(), victim.Issuer, victim.Subject, time.Now()); err != nil {
				t.Fatal(err)
			}
		},
	}
	stores := map[string]func(t *testing.T) logout.SessionStore{
		"redis":            func(t *testing.T) logout.SessionStore { return newMiniStore(t) },
		"revocable cookie": func(t *testing.T) logout.SessionStore { _, rdb := newMini(t); return newRevocableStore(t, rdb) },
	}
	for storeName, newStore := range stores {
		for way, end := range ways {
			t.Run(storeName+"/"+way, func(t *testing.T) {
				var logouts, reported atomic.Int32
				store := newStore(t)
				h, _ := newHandler(t, store, func(c *logout.Config) {
					c.OnLogout = func(*http.Request, logout.Session) { logouts.Add(1) }
					c.OnSessionEnd = func(_ context.Context, e logout.SessionEnd) {
						if e.Reason == logout.EndLogout {
							reported.Add(1)
						}
					}
				})
				s := testSession()
				s.IssuedAt = time.Now().Add(-time.Minute)
				cookies := signIn(t, h, s)
				end(t, h, store, s)
				// Ending the victim's sessions from another device logged
				// that device out or kept it: only the victim's logout counts.
				logouts.Store(0)
				reported.Store(0)

				resp := serve(h, logoutRequest(http.MethodPost, cookies))
				if resp.StatusCode != http.StatusSeeOther {
					t.Fatalf("logout: %d", resp.StatusCode)
				}
				if n := logouts.Load(); n != 0 {
					t.Errorf("OnLogout called %d times for a session already ended", n)
				}
				if n := reported.Load(); n != 0 {
					t.Errorf("the ending was reported again, as a logout, %d times", n)
				}
				if hint := location(t, resp).Query().Get("id_token_hint"); hint != "" {
					t.Error("the ended session's ID token went into the Location")
				}
			})
		}
	}
}

// With WaitReplicas set and no replica confirming, a logout of a session a
// revocation already ended is still no logout: nothing to report as
// unconfirmed, no ID token, no OnError.
func TestUnconfirmedLogoutOfAnEndedSession(t *testing.T) {
	rdb := realRedis(t)
	list := logout.NewRevocationList(rdb)
	list.KeyPrefix = keyPrefix(t, rdb)
	list.WaitReplicas = 1 // the machine's Redis has no replica: WAIT answers 0
	list.WaitTimeout = 50 * time.Millisecond
	store, err := logout.NewRevocableCookieStore(list, newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	var logouts int
	var reported error
	h, _ := newHandler(t, store, func(c *logout.Config) {
		c.OnLogout = func(*http.Request, logout.Session) { logouts++ }
		c.OnError = func(_ *http.Request, err error) { reported = err }
	})
	s := testSession()
	s.IssuedAt = time.Now().Add(-time.Minute)
	cookies := signIn(t, h, s)
	if _, err := store.EndSubject(context.Background(), s.Issuer, s.Subject, time.Now()); !errors.Is(err, logout.ErrNotConfirmed) {
		t.Fatalf("EndSubject: %v, want recorded but not confirmed", err)
	}
	resp := serve(h, logoutRequest(http.MethodPost, cookies))
	if logouts != 0 || reported != nil {
		t.Errorf("OnLogout called %d times, OnError got %v; want neither", logouts, reported)
	}
	if hint := location(t, resp).Query().Get("id_token_hint"); hint != "" {
		t.Error("the ended session's ID token went into the Location")
	}
}
