package logout_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/endsession/logout"
)

// benchSession is a session with tokens of realistic size.
func benchSession() logout.Session {
	s := testSession()
	s.IDToken = "eyJhbGciOiJSUzI1NiJ9." + strings.Repeat("eyJzdWIiOiJ1c3JfMTIzIn0", 30) + "." + strings.Repeat("c2ln", 86)
	s.AccessToken = strings.Repeat("a", 400)
	return s
}

// benchLogout measures a full logout request through ServeHTTP. Each
// iteration logs out a session of its own, signed in before the timer runs.
func benchLogout(b *testing.B, store logout.SessionStore) {
	h, _ := newHandler(b, store, nil)
	reqs := make([]*http.Request, b.N)
	for i := range reqs {
		reqs[i] = logoutRequest(http.MethodPost, signIn(b, h, benchSession()))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, reqs[i])
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
		b.ResetTimer()
		for range b.N {
			if _, err := s.Load(context.Background(), token); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkSave(b *testing.B) {
	benchStores(b, func(b *testing.B, s logout.SessionStore) {
		sess := benchSession()
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			sess.Subject = "usr_" + string(rune('a'+i%26)) // spread over a few users
			if _, err := s.Save(context.Background(), sess); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkEndSessionURL(b *testing.B) {
	h, _ := newHandler(b, newCookieStore(b), func(c *logout.Config) { c.ClientID = "skc_app" })
	hint := benchSession().IDToken
	b.ReportAllocs()
	for range b.N {
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
	for range b.N {
		if _, err := s.Save(context.Background(), sess); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	s := newCookieStore(b)
	token, _ := s.Save(context.Background(), benchSession())
	b.ReportAllocs()
	for range b.N {
		if _, err := s.Load(context.Background(), token); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLogoutFloor is the reference the others are compared with: the
// plain logout an app writes without this package (read the idToken cookie,
// build the URL, clear three cookies, redirect), no store, no checks.
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
	reqs := make([]*http.Request, b.N)
	for i := range reqs {
		reqs[i] = logoutRequest(http.MethodPost, []*http.Cookie{
			{Name: "idToken", Value: s.IDToken}, {Name: "accessToken", Value: s.AccessToken}, {Name: "refreshToken", Value: s.RefreshToken},
		})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		rec := httptest.NewRecorder()
		floor.ServeHTTP(rec, reqs[i])
		if rec.Code != http.StatusSeeOther {
			b.Fatal(rec.Code)
		}
	}
}
