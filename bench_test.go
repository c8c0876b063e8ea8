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
func benchHandler(b *testing.B, store logout.SessionStore, change func(*logout.Config)) *logout.Handler {
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
func benchSignIn(b *testing.B, h *logout.Handler) []*http.Cookie {
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
	reqs := make([]*http.Request, 0, benchBatch)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%benchBatch == 0 {
			b.StopTimer()
			reqs = reqs[:0]
			for range min(benchBatch, b.N-i) {
				reqs = append(reqs, logoutRequest(http.MethodPost, benchSignIn(b, h)))
			}
			b.StartTimer()
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, reqs[i%benchBatch])
		if rec.Code != http.StatusSeeOther {
			b.Fatalf("status %d", rec.Code)
		}
	}
}

func BenchmarkLogoutCookieStore(b *testing.B) { benchLogout(b, newCookieStore(b)) }

func BenchmarkLogoutCookieStoreRevocations(b *testing.B) {
	_, rdb := newMini(b)
	benchLogout(b, newRevocableStore(b, rdb))
}

func BenchmarkLogoutRedisStoreMiniredis(b *testing.B) { benchLogout(b, newMiniStore(b)) }

func BenchmarkLogoutRedisStoreReal(b *testing.B) {
	s, _ := realRedisStore(b)
	benchLogout(b, s)
}

// BenchmarkMiddleware is the per-request path of a signed-in page: the
// middleware loads and renews the session (idle timeout on), and the page
// reads it from the context. Renewal is in its steady state: a cookie store
// rewrites its cookie once per tenth of the idle timeout, so a request here
// sets none; RedisStore pushes the TTL on every request, in its one GETEX.
func BenchmarkMiddleware(b *testing.B) {
	for _, k := range []struct {
		name  string
		store func(b *testing.B) logout.SessionStore
	}{
		{"cookie", func(b *testing.B) logout.SessionStore { return newCookieStore(b) }},
		{"revocable-miniredis", func(b *testing.B) logout.SessionStore { _, rdb := newMini(b); return newRevocableStore(b, rdb) }},
		{"revocable-redis", func(b *testing.B) logout.SessionStore { return realRevocableStore(b) }},
		{"miniredis", func(b *testing.B) logout.SessionStore { return newMiniStore(b) }},
		{"redis", func(b *testing.B) logout.SessionStore { s, _ := realRedisStore(b); return s }},
	} {
		b.Run(k.name, func(b *testing.B) {
			h := benchHandler(b, k.store(b), func(c *logout.Config) { c.IdleTimeout = 30 * time.Minute })
			page := h.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				s, err := logout.SessionFromContext(r.Context())
				if err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
				io.WriteString(w, "<p>Signed in as "+s.Email+"</p>")
			}))
			benchPage(b, page, benchSignIn(b, h))
		})
	}
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
		{"redis", func(b *testing.B) (*redis.Client, string) { s, rdb := realRedisStore(b); return rdb, s.KeyPrefix }},
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
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		page.ServeHTTP(rec, r)
		if rec.Code != http.StatusOK || len(rec.Header()["Set-Cookie"]) != 0 {
			b.Fatalf("status %d, Set-Cookie %q", rec.Code, rec.Header()["Set-Cookie"])
		}
	}
}

// realRevocableStore is a RevocableCookieStore whose list lives in the real
// Redis under a key prefix of its own.
func realRevocableStore(b *testing.B) *logout.RevocableCookieStore {
	s, rdb := realRedisStore(b) // for its prefix and its cleanup
	list := logout.NewRevocationList(rdb)
	list.KeyPrefix = s.KeyPrefix + "rev:"
	store, err := logout.NewRevocableCookieStore(list, newKey(b))
	if err != nil {
		b.Fatal(err)
	}
	return store
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

// BenchmarkLogoutFloor is the reference the logout benchmarks are compared
// with: the plain logout an app writes without this package (read the
// idToken cookie, build the URL, clear three cookies, redirect), no store, no
// checks.
func BenchmarkLogoutFloor(b *testing.B) {
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
}
