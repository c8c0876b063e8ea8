// SPDX-License-Identifier: Apache-2.0

package logout_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/endsession/logout"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// storeEnv is one store under contract test.
type storeEnv struct {
	store logout.SessionStore
	clock *fakeClock
	// global is true when End ends the session for every copy of its
	// token. The bare cookie store cannot: it keeps no server state.
	global bool
}

// storeContract is the behaviour every SessionStore must have. Rows marked
// global hold only for stores whose End reaches every copy of a token.
var storeContract = []struct {
	name   string
	global bool
	run    func(t *testing.T, e storeEnv)
}{
	{"save then load returns the session", false, func(t *testing.T, e storeEnv) {
		want := testSession()
		want.IssuedAt = e.clock.Now().Truncate(time.Millisecond).UTC()
		want.Expiry = e.clock.Now().Add(time.Hour).Truncate(time.Millisecond).UTC()
		got := mustLoad(t, e, mustSave(t, e, want))
		if got != want {
			t.Errorf("loaded %+v\nwant   %+v", got, want)
		}
		if got.IDToken != want.IDToken || got.RefreshToken != want.RefreshToken {
			t.Error("tokens did not survive the round trip")
		}
	}},
	{"token reveals no secret", false, func(t *testing.T, e storeEnv) {
		s := testSession()
		token := mustSave(t, e, s)
		for _, secret := range []string{s.IDToken, s.AccessToken, s.RefreshToken, s.Email} {
			if strings.Contains(token, secret) {
				t.Errorf("token contains %q", secret)
			}
		}
	}},
	{"unknown, garbled and tampered tokens read as no session", false, func(t *testing.T, e storeEnv) {
		token := mustSave(t, e, testSession())
		flipped := []byte(token)
		flipped[len(flipped)/2] ^= 1
		if flipped[len(flipped)/2] == '.' || flipped[len(flipped)/2] == '/' {
			flipped[len(flipped)/2] = 'A'
		}
		other := mustSave(t, e, testSession())
		for name, bad := range map[string]string{
			"empty":       "",
			"garbage":     "not a token",
			"flipped bit": string(flipped),
			"truncated":   token[:len(token)-1],
			"extended":    token + "A",
			"doubled":     token + token,
			"random":      base64.RawURLEncoding.EncodeToString(make([]byte, len(token)*3/4)),
			"spliced":     token[:len(token)/2] + other[len(other)/2:],
			"nul":         token[:4] + "\x00" + token[5:],
		} {
			if _, err := e.store.Load(context.Background(), bad); !errors.Is(err, logout.ErrNoSession) {
				t.Errorf("%s: Load = %v, want ErrNoSession", name, err)
			}
			if _, err := e.store.End(context.Background(), bad); !errors.Is(err, logout.ErrNoSession) {
				t.Errorf("%s: End = %v, want ErrNoSession", name, err)
			}
		}
		mustLoad(t, e, token) // none of that harmed the real session
	}},
	{"end returns what the session held", false, func(t *testing.T, e storeEnv) {
		s := testSession()
		got, err := e.store.End(context.Background(), mustSave(t, e, s))
		if err != nil || got.IDToken != s.IDToken || got.Subject != s.Subject || got.SessionID != s.SessionID {
			t.Errorf("End = %v, %v; want the session with its ID token", got, err)
		}
	}},
	{"after end the token is dead", true, func(t *testing.T, e storeEnv) {
		token := mustSave(t, e, testSession())
		if _, err := e.store.End(context.Background(), token); err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.Load(context.Background(), token); !errors.Is(err, logout.ErrNoSession) {
			t.Errorf("Load after End = %v, want ErrNoSession", err)
		}
		if _, err := e.store.End(context.Background(), token); !errors.Is(err, logout.ErrNoSession) {
			t.Errorf("second End = %v, want ErrNoSession", err)
		}
	}},
	{"concurrent ends: exactly one gets the session", true, func(t *testing.T, e storeEnv) {
		token := mustSave(t, e, testSession())
		var wg sync.WaitGroup
		var winners atomic.Int32
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := e.store.End(context.Background(), token)
				if err == nil && s.IDToken != "" {
					winners.Add(1)
				} else if !errors.Is(err, logout.ErrNoSession) {
					t.Errorf("End: %v", err)
				}
			}()
		}
		wg.Wait()
		if n := winners.Load(); n != 1 {
			t.Errorf("%d concurrent Ends got the session, want 1", n)
		}
	}},
	{"ending one session leaves the others", false, func(t *testing.T, e storeEnv) {
		a, b := mustSave(t, e, testSession()), mustSave(t, e, testSession())
		if _, err := e.store.End(context.Background(), a); err != nil {
			t.Fatal(err)
		}
		mustLoad(t, e, b)
	}},
	{"update replaces a live session", false, func(t *testing.T, e storeEnv) {
		s := testSession()
		token := mustSave(t, e, s)
		s.AccessToken, s.RefreshToken = "ACCESS-2", "REFRESH-2"
		s.Expiry = s.Expiry.Add(time.Hour)
		next, err := e.store.Update(context.Background(), token, s)
		if err != nil {
			t.Fatal(err)
		}
		if got := mustLoad(t, e, next); got.AccessToken != "ACCESS-2" || !got.Expiry.Equal(s.Expiry) {
			t.Errorf("after Update, Load = %v (access %q)", got, got.AccessToken)
		}
	}},
	{"update never resurrects an ended session", true, func(t *testing.T, e storeEnv) {
		s := testSession()
		token := mustSave(t, e, s)
		if _, err := e.store.End(context.Background(), token); err != nil {
			t.Fatal(err)
		}
		next, err := e.store.Update(context.Background(), token, s)
		if !errors.Is(err, logout.ErrNoSession) {
			t.Errorf("Update after End = %q, %v; want ErrNoSession", next, err)
		}
		if _, err := e.store.Load(context.Background(), token); !errors.Is(err, logout.ErrNoSession) {
			t.Errorf("Load after Update after End = %v, want ErrNoSession", err)
		}
	}},
	{"update cannot make a session another one", false, func(t *testing.T, e storeEnv) {
		s := testSession()
		s.IssuedAt = e.clock.Now().Add(-time.Minute).Truncate(time.Millisecond)
		token := mustSave(t, e, s)
		for name, change := range map[string]func(*logout.Session){
			"another sid":        func(s *logout.Session) { s.SessionID = "ses_other" },
			"no sid":             func(s *logout.Session) { s.SessionID = "" },
			"another subject":    func(s *logout.Session) { s.Subject = "usr_other" },
			"another start time": func(s *logout.Session) { s.IssuedAt = s.IssuedAt.Add(time.Hour) },
		} {
			changed := s
			change(&changed)
			if _, err := e.store.Update(context.Background(), token, changed); err == nil || errors.Is(err, logout.ErrNoSession) {
				t.Errorf("Update to %s: %v, want a refusal", name, err)
			}
			if got := mustLoad(t, e, token); got.SessionID != s.SessionID || got.Subject != s.Subject || !got.IssuedAt.Equal(s.IssuedAt) {
				t.Errorf("after a refused Update to %s the session is %v", name, got)
			}
		}
	}},
	{"update of a garbled token stores nothing", false, func(t *testing.T, e storeEnv) {
		if next, err := e.store.Update(context.Background(), "garbage", testSession()); !errors.Is(err, logout.ErrNoSession) {
			t.Errorf("Update(garbage) = %q, %v; want ErrNoSession", next, err)
		}
	}},
	{"expired sessions are gone", false, func(t *testing.T, e storeEnv) {
		s := testSession()
		s.Expiry = e.clock.Now().Add(time.Minute)
		token := mustSave(t, e, s)
		mustLoad(t, e, token)
		e.clock.Advance(time.Minute + time.Millisecond)
		if _, err := e.store.Load(context.Background(), token); !errors.Is(err, logout.ErrNoSession) {
			t.Errorf("Load after expiry = %v, want ErrNoSession", err)
		}
		if _, err := e.store.End(context.Background(), token); !errors.Is(err, logout.ErrNoSession) {
			t.Errorf("End after expiry = %v, want ErrNoSession", err)
		}
	}},
	{"a session already expired is refused at save", false, func(t *testing.T, e storeEnv) {
		s := testSession()
		s.Expiry = e.clock.Now().Add(-time.Second)
		if token, err := e.store.Save(context.Background(), s); err == nil || errors.Is(err, logout.ErrNoSession) {
			t.Errorf("Save(expired) = %q, %v; want an error", token, err)
		}
	}},
	{"concurrent saves and loads", false, func(t *testing.T, e storeEnv) {
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 10 {
					token, err := e.store.Save(context.Background(), testSession())
					if err != nil {
						t.Error(err)
						return
					}
					if _, err := e.store.Load(context.Background(), token); err != nil {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
	}},
}

func mustSave(t *testing.T, e storeEnv, s logout.Session) string {
	t.Helper()
	token, err := e.store.Save(context.Background(), s)
	if err != nil {
		t.Fatalf("Save: %v", err)
	}
	return token
}

func mustLoad(t *testing.T, e storeEnv, token string) logout.Session {
	t.Helper()
	s, err := e.store.Load(context.Background(), token)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return s
}

// runContract runs every contract row against a fresh store from newEnv.
func runContract(t *testing.T, newEnv func(t *testing.T) storeEnv) {
	for _, row := range storeContract {
		t.Run(row.name, func(t *testing.T) {
			e := newEnv(t)
			if row.global && !e.global {
				t.Skip("this store's End cannot reach copies of a token (documented)")
			}
			row.run(t, e)
		})
	}
}

func TestCookieStoreContract(t *testing.T) {
	runContract(t, func(t *testing.T) storeEnv {
		clock := newFakeClock()
		s := newCookieStore(t)
		logout.SetCookieStoreClock(s, clock.Now)
		return storeEnv{store: s, clock: clock}
	})
}

func TestCookieStoreWithRevocationListContract(t *testing.T) {
	runContract(t, func(t *testing.T) storeEnv {
		clock := newFakeClock()
		_, rdb := newMini(t)
		s := newRevocableStore(t, rdb)
		logout.SetCookieStoreClock(s, clock.Now)
		return storeEnv{store: s, clock: clock, global: true}
	})
}

func TestCookieStoreWithRevocationListContractRealRedis(t *testing.T) {
	runContract(t, func(t *testing.T) storeEnv {
		clock := newFakeClock()
		rdb := realRedis(t)
		list := logout.NewRevocationList(rdb)
		list.KeyPrefix = keyPrefix(t, rdb)
		s, err := logout.NewRevocableCookieStore(list, newKey(t))
		if err != nil {
			t.Fatal(err)
		}
		logout.SetCookieStoreClock(s, clock.Now)
		return storeEnv{store: s, clock: clock, global: true}
	})
}

func TestRedisStoreContractMiniredis(t *testing.T) {
	runContract(t, func(t *testing.T) storeEnv {
		clock := newFakeClock()
		s := newMiniStore(t)
		logout.SetRedisStoreClock(s, clock.Now)
		return storeEnv{store: s, clock: clock, global: true}
	})
}

func TestRedisStoreContractRealRedis(t *testing.T) {
	runContract(t, func(t *testing.T) storeEnv {
		clock := newFakeClock()
		s, _ := realRedisStore(t)
		logout.SetRedisStoreClock(s, clock.Now)
		return storeEnv{store: s, clock: clock, global: true}
	})
}

func TestRedisStoreContractCluster(t *testing.T) {
	rdb := redisCluster(t)
	runContract(t, func(t *testing.T) storeEnv {
		clock := newFakeClock()
		s := logout.NewRedisStore(rdb)
		logout.SetRedisStoreClock(s, clock.Now)
		return storeEnv{store: s, clock: clock, global: true}
	})
}
