// SPDX-License-Identifier: Apache-2.0

package logout_test

import (
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

	"github.com/redis/go-redis/v9"

	"github.com/endsession/logout"
)

// TestRedisCommandCounts counts, on a redis-server of its own, the commands
// each operation costs, and proves that a logout through the handler adds
// none to the store's single script.
func TestRedisCommandCounts(t *testing.T) {
	srv := startRedisServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rdb.Close() })
	counter := newCommandCounter(t, srv.Addr)
	store := logout.NewRedisStore(rdb)
	h, _ := newHandler(t, store, nil)
	ctx := context.Background()

	// Warm up: the first run of each script on a fresh server costs a
	// NOSCRIPT reply and an EVAL; every later run is a single EVALSHA.
	warm, _ := store.Save(ctx, testSession())
	store.Update(ctx, warm, testSession())
	serve(h, logoutRequest(http.MethodPost, signIn(t, h, testSession())))

	s := testSession()
	var token string
	steps := []struct {
		name string
		run  func() error
		want int
	}{
		{"Save", func() (err error) { token, err = store.Save(ctx, s); return }, 1},
		{"Load", func() error { _, err := store.Load(ctx, token); return err }, 1},
		{"Update", func() error { _, err := store.Update(ctx, token, s); return err }, 1},
		{"End", func() error { _, err := store.End(ctx, token); return err }, 1},
		{"logout request", func() error {
			cookies := signIn(t, h, s)
			counter.Reset(t)
			resp := serve(h, logoutRequest(http.MethodPost, cookies))
			if resp.StatusCode != http.StatusSeeOther {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		}, 1},
		{"logout request without a session", func() error {
			counter.Reset(t)
			serve(h, logoutRequest(http.MethodPost, nil))
			return nil
		}, 0},
	}
	for _, st := range steps {
		counter.Reset(t)
		if err := st.run(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got := counter.Count(t)
		if total(got) != st.want {
			t.Errorf("%s cost %d commands %v, want %d", st.name, total(got), got, st.want)
		} else {
			t.Logf("%s: %v", st.name, got)
		}
	}
}

// TestRedisDumpRevealsNothing reads every key and value the store wrote and
// finds no token, cookie value or personal data in them.
func TestRedisDumpRevealsNothing(t *testing.T) {
	m, rdb := newMini(t)
	store := logout.NewRedisStore(rdb)
	h, _ := newHandler(t, store, nil)
	s := testSession()
	cookies := signIn(t, h, s)

	var dump strings.Builder
	for _, k := range m.Keys() {
		dump.WriteString(k + "\n")
		switch m.Type(k) {
		case "string":
			v, _ := m.Get(k)
			dump.WriteString(v + "\n")
		case "hash":
			fields, _ := m.HKeys(k)
			for _, f := range fields {
				dump.WriteString(f + "=" + m.HGet(k, f) + "\n")
			}
		}
	}
	for _, secret := range []string{s.IDToken, s.AccessToken, s.RefreshToken, s.Email, s.Subject, s.SessionID, cookies[0].Value, "TOKEN"} {
		if strings.Contains(dump.String(), secret) {
			t.Errorf("Redis holds %q:\n%s", secret, dump.String())
		}
	}
}

func TestRedisTTLFollowsExpiry(t *testing.T) {
	m, rdb := newMini(t)
	store := logout.NewRedisStore(rdb)
	s := testSession()
	s.Expiry = time.Now().Add(10 * time.Minute)
	token, err := store.Save(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	var sessionKey string
	for _, k := range m.Keys() {
		if strings.Contains(k, ":s:") {
			sessionKey = k
		}
	}
	if ttl := m.TTL(sessionKey); ttl < 9*time.Minute || ttl > 10*time.Minute {
		t.Errorf("session TTL %v, want about 10m", ttl)
	}
	m.FastForward(10*time.Minute + time.Second)
	if _, err := store.Load(context.Background(), token); !errors.Is(err, logout.ErrNoSession) {
		t.Errorf("Load after the TTL = %v, want ErrNoSession", err)
	}
}

func TestRedisIndexPrunesExpiredSessions(t *testing.T) {
	m, rdb := newMini(t)
	store := logout.NewRedisStore(rdb)
	clock := newFakeClock()
	logout.SetRedisStoreClock(store, clock.Now)
	ctx := context.Background()
	short := testSession()
	short.Expiry = clock.Now().Add(time.Minute)
	store.Save(ctx, short)
	clock.Advance(2 * time.Minute)
	m.FastForward(2 * time.Minute)
	store.Save(ctx, testSession())
	for _, k := range m.Keys() {
		if strings.HasSuffix(k, ":u") {
			if fields, _ := m.HKeys(k); len(fields) != 1 {
				t.Errorf("index %s holds %d entries after the first session expired, want 1", k, len(fields))
			}
			if ttl := m.TTL(k); ttl <= 0 {
				t.Errorf("index %s has no TTL", k)
			}
		}
	}
}

// TestRedisEndBySubjectAndSID ends sessions through the indexes, as
// back-channel logout and "sign out everywhere" do, on each kind of Redis.
func TestRedisEndBySubjectAndSID(t *testing.T) {
	kinds := map[string]func(t *testing.T) *logout.RedisStore{
		"miniredis": func(t *testing.T) *logout.RedisStore { return newMiniStore(t) },
		"real":      func(t *testing.T) *logout.RedisStore { s, _ := realRedisStore(t); return s },
		"cluster":   func(t *testing.T) *logout.RedisStore { return logout.NewRedisStore(redisCluster(t)) },
	}
	for name, newStore := range kinds {
		t.Run(name, func(t *testing.T) {
			store := newStore(t)
			ctx := context.Background()
			save := func(sub, sid string) string {
				s := testSession()
				s.Subject, s.SessionID = sub, sid
				token, err := store.Save(ctx, s)
				if err != nil {
					t.Fatal(err)
				}
				return token
			}
			alive := func(token string) bool {
				_, err := store.Load(ctx, token)
				if err != nil && !errors.Is(err, logout.ErrNoSession) {
					t.Fatal(err)
				}
				return err == nil
			}
			a1, a2, a3 := save("usr_a", "ses_1"), save("usr_a", "ses_1"), save("usr_a", "ses_2")
			b1 := save("usr_b", "ses_3")
			iss := testSession().Issuer

			if n, err := store.EndSID(ctx, iss, "ses_1"); err != nil || n != 2 {
				t.Errorf("EndSID = %d, %v; want 2", n, err)
			}
			if alive(a1) || alive(a2) || !alive(a3) || !alive(b1) {
				t.Errorf("after EndSID(ses_1): alive a1=%v a2=%v a3=%v b1=%v, want only a3 and b1", alive(a1), alive(a2), alive(a3), alive(b1))
			}
			if n, err := store.EndSID(ctx, iss, "ses_3"); err != nil || n != 1 {
				t.Errorf("EndSID = %d, %v; want 1", n, err)
			}
			if alive(b1) {
				t.Error("b1 alive after EndSID(ses_3)")
			}
			a4 := save("usr_a", "ses_4")
			if n, err := store.EndSubject(ctx, iss, "usr_a", time.Now()); err != nil || n != 2 {
				t.Errorf("EndSubject = %d, %v; want 2", n, err)
			}
			if alive(a3) || alive(a4) {
				t.Error("a session of usr_a survived EndSubject")
			}
			if n, err := store.EndSubject(ctx, iss, "usr_a", time.Now()); err != nil || n != 0 {
				t.Errorf("second EndSubject = %d, %v; want 0", n, err)
			}
			if n, err := store.EndSID(ctx, iss, "ses_unknown"); err != nil || n != 0 {
				t.Errorf("EndSID(unknown) = %d, %v; want 0", n, err)
			}
		})
	}
}

func TestRedisEndCommandCounts(t *testing.T) {
	srv := startRedisServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rdb.Close() })
	counter := newCommandCounter(t, srv.Addr)
	store := logout.NewRedisStore(rdb)
	ctx := context.Background()
	iss := testSession().Issuer
	for _, sessions := range []int{1, 10, 100} {
		for range sessions {
			store.Save(ctx, testSession())
		}
		counter.Reset(t)
		n, err := store.EndSubject(ctx, iss, testSession().Subject, time.Now())
		if err != nil || n != sessions {
			t.Fatalf("EndSubject = %d, %v; want %d", n, err, sessions)
		}
		if got := total(counter.Count(t)); got != 1 {
			t.Errorf("EndSubject of %d sessions cost %d commands, want 1", sessions, got)
		}
	}
	store.Save(ctx, testSession())
	counter.Reset(t)
	store.EndSID(ctx, iss, testSession().SessionID)
	if got := total(counter.Count(t)); got != 2 {
		t.Errorf("EndSID without subject cost %d commands, want 2 (pointer, then script)", got)
	}
}

// TestRedisNoResurrection races many token refreshes against one logout on a
// real Redis and finds nothing alive afterwards.
func TestRedisNoResurrection(t *testing.T) {
	store, rdb := realRedisStore(t)
	ctx := context.Background()
	for round := range 20 {
		s := testSession()
		token, err := store.Save(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for j := range 20 {
					s := s
					s.AccessToken = fmt.Sprintf("ACCESS-%d-%d", i, j)
					if _, err := store.Update(ctx, token, s); err != nil && !errors.Is(err, logout.ErrNoSession) {
						t.Error(err)
					}
				}
			}()
		}
		close(start)
		if _, err := store.End(ctx, token); err != nil {
			t.Fatalf("round %d: End: %v", round, err)
		}
		wg.Wait()
		if _, err := store.Load(ctx, token); !errors.Is(err, logout.ErrNoSession) {
			t.Fatalf("round %d: session alive after logout and racing updates: %v", round, err)
		}
	}
	if keys, _ := rdb.Keys(ctx, store.KeyPrefix+"*:s:*").Result(); len(keys) != 0 {
		t.Errorf("session keys left behind: %v", keys)
	}
}

// TestSharedAcrossInstances signs in on instance A, logs out on instance B,
// and finds that the cookie copied before logout signs nobody in anywhere.
func TestSharedAcrossInstances(t *testing.T) {
	for name, newStore := range map[string]func(t *testing.T) logout.SessionStore{
		"real Redis": func(t *testing.T) logout.SessionStore { s, _ := realRedisStore(t); return s },
		"cluster":    func(t *testing.T) logout.SessionStore { return logout.NewRedisStore(redisCluster(t)) },
	} {
		t.Run(name, func(t *testing.T) {
			store := newStore(t)
			a, b := newInstance(t, store), newInstance(t, store)

			cookie := get(t, a.URL+"/login", "").Header.Get("Set-Cookie")
			cookie, _, _ = strings.Cut(cookie, ";")
			for _, inst := range []*httptest.Server{a, b} {
				if body := readBody(t, get(t, inst.URL+"/me", cookie)); body != "usr_1234" {
					t.Fatalf("before logout, %s/me = %q, want usr_1234", inst.URL, body)
				}
			}
			req, _ := http.NewRequest(http.MethodPost, b.URL+"/logout", nil)
			req.Header.Set("Cookie", cookie)
			req.Header.Set("Sec-Fetch-Site", "same-origin")
			resp, err := noRedirect.Do(req)
			if err != nil || resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("logout on B: %v %v", resp, err)
			}
			for _, inst := range []*httptest.Server{a, b} {
				if body := readBody(t, get(t, inst.URL+"/me", cookie)); body != "signed out" {
					t.Errorf("copied cookie after logout: %s/me = %q, want signed out", inst.URL, body)
				}
			}
		})
	}
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// newInstance is one app instance: /login signs the test user in, /me says
// who is signed in, /logout is the Handler.
func newInstance(t *testing.T, store logout.SessionStore) *httptest.Server {
	h, _ := newHandler(t, store, func(c *logout.Config) { c.Cookie.InsecureHTTP = true })
	mux := http.NewServeMux()
	mux.Handle("/logout", h)
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		if err := h.StartSession(w, r, testSession()); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	mux.HandleFunc("/me", func(w http.ResponseWriter, r *http.Request) {
		s, err := h.Session(r)
		if err != nil {
			io.WriteString(w, "signed out")
			return
		}
		io.WriteString(w, s.Subject)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url, cookie string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A user who signs in many times costs each sign-in the same: the index is
// pruned by sampling, and entries of ended sessions do not pile up.
func TestRedisIndexPrunesEndedSessions(t *testing.T) {
	m, rdb := newMini(t)
	store := logout.NewRedisStore(rdb)
	ctx := context.Background()
	for range 200 {
		token, err := store.Save(ctx, testSession())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.End(ctx, token); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range m.Keys() {
		if strings.HasSuffix(k, ":u") {
			if fields, _ := m.HKeys(k); len(fields) > 40 {
				t.Errorf("index holds %d entries after 200 sign-ins and logouts, want at most the sample size", len(fields))
			}
		}
	}
}
