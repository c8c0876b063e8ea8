// SPDX-License-Identifier: Apache-2.0

package logout_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/endsession/logout"
)

// Every benchmark here costs the same per op whatever b.N is: each op works
// on sessions of its own user, benchmarks that consume sessions sign them in
// a batch at a time with the timer stopped, and nothing is logged (a log that
// grew with b.N would also be scanned for secrets at the end of the run).

// benchSession is a session with tokens of realistic size, of a user (and
// provider session) of its own, so no user index grows with b.N.
func benchSession() logout.Session {
	s := testSession()
	n := strconv.FormatInt(benchUsers.Add(1), 10)
	s.Subject, s.SessionID = "usr_"+n, "ses_"+n
	s.IDToken = "eyJhbGciOiJSUzI1NiJ9." + strings.Repeat("eyJzdWIiOiJ1c3JfMTIzIn0", 30) + "." + strings.Repeat("c2ln", 86)
	s.AccessToken = strings.Repeat("a", 400)
	return s
}

var benchUsers atomic.Int64

// benchHandler is a Handler on store that logs nothing.
func benchHandler(b testing.TB, store logout.SessionStore, change func(*logout.Config)) *logout.Handler {
	b.Helper()
	h, _ := newHandler(b, store, func(c *logout.Config) {
		c.Logger = slog.New(slog.DiscardHandler)
		if change != nil {
			change(c)
		}
	})
	return h
}

// benchSignIn starts a new session through h and returns its cookies.
func benchSignIn(b testing.TB, h *logout.Handler) []*http.Cookie {
	b.Helper()
	rec := httptest.NewRecorder()
	if err := h.StartSession(rec, httptest.NewRequest(http.MethodGet, testAppOrigin+"/callback", nil), benchSession()); err != nil {
		b.Fatal(err)
	}
	return rec.Result().Cookies()
}

// benchBatch is how many sessions a benchmark that consumes them signs in at
// once, with the timer stopped.
const benchBatch = 256

// benchLogout measures a full logout request through ServeHTTP. Each
// iteration logs out a session of its own.
func benchLogout(b *testing.B, store logout.SessionStore) {
	h := benchHandler(b, store, nil)
	benchLogoutHandler(b, h, func() *http.Request { return logoutRequest(http.MethodPost, benchSignIn(b, h)) })
}

// benchLogoutHandler sends h b.N logout requests, each made by next with
// the timer stopped, a batch at a time.
func benchLogoutHandler(b *testing.B, h http.Handler, next func() *http.Request) {
	reqs := make([]*http.Request, 0, benchBatch)
	cpu := startCPUClock(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%benchBatch == 0 {
			b.StopTimer()
			cpu.stop()
			reqs = reqs[:0]
			for range min(benchBatch, b.N-i) {
				reqs = append(reqs, next())
			}
			cpu.start()
			b.StartTimer()
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, reqs[i%benchBatch])
		if rec.Code != http.StatusSeeOther {
			b.Fatalf("status %d", rec.Code)
		}
	}
	b.StopTimer()
	cpu.report()
}

// benchRedis is a client of the real Redis, with ContextTimeoutEnabled as
// asked (the stores then call it directly, or each call in a goroutine of
// its own), and a key prefix of the benchmark's own, removed at the end.
func benchRedis(b testing.TB, contextTimeout bool) (*redis.Client, string) {
	s, shared := realRedisStore(b) // for its prefix and its cleanup
	o := shared.Options()
	rdb := redis.NewClient(&redis.Options{
		Network: o.Network, Addr: o.Addr, Username: o.Username, Password: o.Password, DB: o.DB, TLSConfig: o.TLSConfig,
		ContextTimeoutEnabled: contextTimeout,
	})
	b.Cleanup(func() { rdb.Close() })
	return rdb, s.KeyPrefix
}

// benchStoreKinds are the stores the logout and page benchmarks run on; on
// the real Redis, each with the client that takes the direct path
// (ContextTimeoutEnabled, as the README recommends) and one that takes the
// goroutine path.
var benchStoreKinds = []struct {
	name  string
	store func(b *testing.B) logout.SessionStore
}{
	{"cookie", func(b *testing.B) logout.SessionStore { return newCookieStore(b) }},
	{"revocable-miniredis", func(b *testing.B) logout.SessionStore { _, rdb := newMini(b); return newRevocableStore(b, rdb) }},
	{"revocable-redis", func(b *testing.B) logout.SessionStore { return benchRevocableStore(b, true) }},
	{"revocable-redis-goroutine", func(b *testing.B) logout.SessionStore { return benchRevocableStore(b, false) }},
	{"miniredis", func(b *testing.B) logout.SessionStore { return newMiniStore(b) }},
	{"redis", func(b *testing.B) logout.SessionStore { return benchRedisStore(b, true) }},
	{"redis-goroutine", func(b *testing.B) logout.SessionStore { return benchRedisStore(b, false) }},
}

func benchRedisStore(b testing.TB, contextTimeout bool) *logout.RedisStore {
	rdb, prefix := benchRedis(b, contextTimeout)
	s := logout.NewRedisStore(rdb)
	s.KeyPrefix = prefix
	return s
}

// benchRevocableStore is a RevocableCookieStore whose list lives in the real
// Redis under a key prefix of its own.
func benchRevocableStore(b testing.TB, contextTimeout bool) *logout.RevocableCookieStore {
	rdb, prefix := benchRedis(b, contextTimeout)
	list := logout.NewRevocationList(rdb)
	list.KeyPrefix = prefix + "rev:"
	store, err := logout.NewRevocableCookieStore(list, newKey(b))
	if err != nil {
		b.Fatal(err)
	}
	return store
}

// BenchmarkLogout is a full logout through ServeHTTP with each store; it
// compares with BenchmarkLogoutFloor.
func BenchmarkLogout(b *testing.B) {
	for _, k := range benchStoreKinds {
		b.Run(k.name, func(b *testing.B) { benchLogout(b, k.store(b)) })
	}
}

// BenchmarkMiddleware is the per-request path of a signed-in page: the
// middleware loads and renews the session (idle timeout on), and the page
// reads it from the context. Renewal is in its steady state: a cookie store
// rewrites its cookie once per tenth of the idle timeout, so a request here
// sets none; RedisStore pushes the TTL on every request, in its one GETEX.
// It compares with BenchmarkRequestFloor.
func BenchmarkMiddleware(b *testing.B) {
	for _, k := range benchStoreKinds {
		b.Run(k.name, func(b *testing.B) {
			h := benchHandler(b, k.store(b), func(c *logout.Config) { c.IdleTimeout = 30 * time.Minute })
			benchPage(b, signedInPage(h), benchSignIn(b, h))
		})
	}
}

// signedInPage is a page behind h's middleware that shows the session's
// email.
func signedInPage(h *logout.Handler) http.Handler {
	return h.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := logout.SessionFromContext(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "<p>Signed in as "+s.Email+"</p>")
	}))
}

// BenchmarkRequestFloor is what BenchmarkMiddleware is compared with: a page
// that reads its session with one GET on the same Redis and does nothing
// else (no decryption, no renewal, no checks).
func BenchmarkRequestFloor(b *testing.B) {
	for _, k := range []struct {
		name string
		rdb  func(b *testing.B) (*redis.Client, string)
	}{
		{"miniredis", func(b *testing.B) (*redis.Client, string) { _, rdb := newMini(b); return rdb, "floor:" }},
		{"redis", func(b *testing.B) (*redis.Client, string) { return benchRedis(b, true) }},
	} {
		b.Run(k.name, func(b *testing.B) {
			rdb, prefix := k.rdb(b)
			if err := rdb.Set(context.Background(), prefix+"token", benchSession().IDToken, time.Hour).Err(); err != nil {
				b.Fatal(err)
			}
			page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := r.Cookie("session")
				if err != nil {
					http.Error(w, err.Error(), http.StatusUnauthorized)
					return
				}
				if _, err := rdb.Get(r.Context(), prefix+c.Value).Bytes(); err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
				io.WriteString(w, "<p>Signed in as ada@example.com</p>")
			})
			benchPage(b, page, []*http.Cookie{{Name: "session", Value: "token"}})
		})
	}
}

// benchPage sends the same signed-in page request through page b.N times.
// No response may set a cookie: that would be a renewal on every request.
func benchPage(b *testing.B, page http.Handler, cookies []*http.Cookie) {
	r := httptest.NewRequest(http.MethodGet, testAppOrigin+"/account", nil)
	for _, c := range cookies {
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	cpu := startCPUClock(b)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		page.ServeHTTP(rec, r)
		if rec.Code != http.StatusOK || len(rec.Header()["Set-Cookie"]) != 0 {
			b.Fatalf("status %d, Set-Cookie %q", rec.Code, rec.Header()["Set-Cookie"])
		}
	}
	cpu.report()
}

func benchStores(b *testing.B, run func(b *testing.B, s logout.SessionStore)) {
	b.Run("cookie", func(b *testing.B) { run(b, newCookieStore(b)) })
	b.Run("miniredis", func(b *testing.B) { run(b, newMiniStore(b)) })
	b.Run("redis", func(b *testing.B) { s, _ := realRedisStore(b); run(b, s) })
}

func BenchmarkLoad(b *testing.B) {
	benchStores(b, func(b *testing.B, s logout.SessionStore) {
		token, err := s.Save(context.Background(), benchSession())
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Load(context.Background(), token); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSave stores each session for a user of its own: sessions of one
// user would pile up in that user's index and make each Save dearer than the
// last.
func BenchmarkSave(b *testing.B) {
	benchStores(b, func(b *testing.B, s logout.SessionStore) {
		sess := benchSession()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			sess.Subject = "usr_save_" + strconv.Itoa(i)
			if _, err := s.Save(context.Background(), sess); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkEndSessionURL(b *testing.B) {
	h := benchHandler(b, newCookieStore(b), func(c *logout.Config) { c.ClientID = "skc_app" })
	hint := benchSession().IDToken
	b.ReportAllocs()
	for b.Loop() {
		if u := h.EndSessionURL(hint, testPostLogout, "STATE0123456789ABCDEFGHIJK"); len(u) < len(hint) {
			b.Fatal(u)
		}
	}
}

// BenchmarkSeal and BenchmarkOpen time the cookie store's AES-256-GCM seal
// and open of a realistic session, with no I/O.
func BenchmarkSeal(b *testing.B) {
	s, sess := newCookieStore(b), benchSession()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Save(context.Background(), sess); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	s := newCookieStore(b)
	token, _ := s.Save(context.Background(), benchSession())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Load(context.Background(), token); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLogoutFloor is what BenchmarkLogout is compared with. "getdel"
// is the floor of a logout with a store: one GETDEL on the same Redis reads
// the ID token and ends the session, then one cookie is cleared and the
// browser redirected, no checks. "plain" is the logout an app writes with no
// store at all (read the idToken cookie, build the URL, clear three cookies,
// redirect).
func BenchmarkLogoutFloor(b *testing.B) {
	b.Run("getdel", func(b *testing.B) {
		rdb, prefix := benchRedis(b, true)
		hint := benchSession().IDToken
		floor := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			q := url.Values{"post_logout_redirect_uri": {testPostLogout}}
			if c, err := r.Cookie("session"); err == nil {
				if v, err := rdb.GetDel(r.Context(), prefix+c.Value).Result(); err == nil {
					q.Set("id_token_hint", v)
				}
			}
			http.SetCookie(w, &http.Cookie{Name: "session", Path: "/", MaxAge: -1, HttpOnly: true, Secure: true})
			http.Redirect(w, r, testEndSession+"?"+q.Encode(), http.StatusSeeOther)
		})
		var n atomic.Int64
		benchLogoutHandler(b, floor, func() *http.Request {
			token := "t" + strconv.FormatInt(n.Add(1), 10)
			if err := rdb.Set(context.Background(), prefix+token, hint, time.Hour).Err(); err != nil {
				b.Fatal(err)
			}
			return logoutRequest(http.MethodPost, []*http.Cookie{{Name: "session", Value: token}})
		})
	})
	b.Run("plain", func(b *testing.B) {
		floor := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			q := url.Values{"post_logout_redirect_uri": {testPostLogout}}
			if c, err := r.Cookie("idToken"); err == nil {
				q.Set("id_token_hint", c.Value)
			}
			for _, name := range []string{"accessToken", "refreshToken", "idToken"} {
				http.SetCookie(w, &http.Cookie{Name: name, Path: "/", MaxAge: -1, HttpOnly: true, Secure: true})
			}
			http.Redirect(w, r, testEndSession+"?"+q.Encode(), http.StatusSeeOther)
		})
		s := benchSession()
		r := logoutRequest(http.MethodPost, []*http.Cookie{
			{Name: "idToken", Value: s.IDToken}, {Name: "accessToken", Value: s.AccessToken}, {Name: "refreshToken", Value: s.RefreshToken},
		})
		b.ReportAllocs()
		for b.Loop() {
			rec := httptest.NewRecorder()
			floor.ServeHTTP(rec, r)
			if rec.Code != http.StatusSeeOther {
				b.Fatal(rec.Code)
			}
		}
	})
}

// cpuClock adds up the process's CPU time over the timed parts of a
// benchmark and reports it per op as cpu-ns/op: unlike ns/op it leaves out
// the time spent waiting for Redis, and on a shared machine it moves less.
type cpuClock struct {
	b       *testing.B
	total   time.Duration
	started time.Duration
	ok      bool
}

func startCPUClock(b *testing.B) *cpuClock {
	c := &cpuClock{b: b}
	c.start()
	return c
}

func (c *cpuClock) start() { c.started, c.ok = processCPU() }

func (c *cpuClock) stop() {
	if now, ok := processCPU(); ok && c.ok {
		c.total += now - c.started
	}
}

func (c *cpuClock) report() {
	c.stop()
	if c.ok && c.b.N > 0 {
		c.b.ReportMetric(float64(c.total.Nanoseconds())/float64(c.b.N), "cpu-ns/op")
	}
}
