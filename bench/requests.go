// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/alexedwards/scs/goredisstore"
	"github.com/alexedwards/scs/v2"
	"github.com/gorilla/sessions"
	"github.com/redis/go-redis/v9"

	"github.com/endsession/logout"
)

// goroutinePath names the row of RedisStore on a client without
// ContextTimeoutEnabled, whose every call runs in a goroutine of its own.
const goroutinePath = "logout.RedisStore, client without ContextTimeoutEnabled"

// idleTimeout is the idle timeout of every system that has one.
const idleTimeout = 30 * time.Minute

// requestTable is a signed-in page: each system reads the session and writes
// the same small page.
func requestTable(rdb *redis.Client) table {
	var users atomic.Int64 // every sign-in is a user of its own
	user := func() string { return fmt.Sprintf("usr_%d", users.Add(1)) }
	t := table{
		name: "requests",
		request: func(base string, cookies []*http.Cookie) *http.Request {
			r, _ := http.NewRequest(http.MethodGet, base+"/account", nil)
			r.Header.Set("Sec-Fetch-Site", "same-origin")
			r.Header.Set("Sec-Fetch-Mode", "navigate")
			return withCookies(r, cookies)
		},
		status:   http.StatusOK,
		sessions: 1000,
	}

	// The floor: one GET on the same Redis, and the page. No decryption,
	// no renewal, no checks.
	floorPage := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie("session")
		if err != nil {
			http.Error(w, "signed out", http.StatusUnauthorized)
			return
		}
		if _, err := rdb.Get(r.Context(), "floor:"+c.Value).Bytes(); err != nil {
			http.Error(w, "signed out", http.StatusUnauthorized)
			return
		}
		writePage(w, "ada@example.com")
	})
	t.systems = append(t.systems, system{"floor (one GET)", floor, floorPage, func() []*http.Cookie {
		token := rand.Text()
		check(rdb.Set(context.Background(), "floor:"+token, idToken+accessToken, time.Hour).Err())
		return []*http.Cookie{{Name: "session", Value: token}}
	}})

	// scs with its go-redis store: with an idle timeout it loads the
	// session (GET) and saves it again with a new expiry (SET) on every
	// request, with a Set-Cookie.
	sm := scs.New()
	sm.Store = goredisstore.NewWithPrefix(rdb, "scs:")
	sm.Cookie.Name = "session"
	sm.IdleTimeout = idleTimeout
	sm.Lifetime = 12 * time.Hour
	t.systems = append(t.systems, system{"scs + goredisstore (LoadAndSave)", scsPeer, sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		email := sm.GetString(r.Context(), "email")
		if email == "" {
			http.Error(w, "signed out", http.StatusUnauthorized)
			return
		}
		writePage(w, email)
	})), func() []*http.Cookie {
		ctx, _ := sm.Load(context.Background(), "")
		sm.Put(ctx, "sub", user())
		sm.Put(ctx, "email", "ada@example.com")
		sm.Put(ctx, "id_token", idToken)
		sm.Put(ctx, "access_token", accessToken)
		sm.Put(ctx, "refresh_token", "rt_0123456789")
		token, _, err := sm.Commit(ctx)
		check(err)
		return []*http.Cookie{{Name: "session", Value: token}}
	}})

	// gorilla/sessions' cookie store, encrypted (AES-CTR and HMAC-SHA256).
	// Its MaxAge is checked against the time in the cookie, so an idle
	// timeout means saving the session again on every request; read only,
	// it ends MaxAge after sign-in however busy the user is.
	gs := sessions.NewCookieStore(benchKey("gorilla hash"), benchKey("gorilla block"))
	gs.MaxAge(int(idleTimeout.Seconds()))
	gs.Options.Secure, gs.Options.HttpOnly, gs.Options.SameSite = true, true, http.SameSiteLaxMode
	gorillaSignIn := func() []*http.Cookie {
		r := httptest.NewRequest(http.MethodGet, "/callback", nil)
		s, err := gs.New(r, "session")
		check(err)
		s.Values["sub"] = user()
		s.Values["email"] = "ada@example.com"
		s.Values["id_token"] = idToken
		s.Values["access_token"] = accessToken
		s.Values["refresh_token"] = "rt_0123456789"
		rec := httptest.NewRecorder()
		check(s.Save(r, rec))
		return rec.Result().Cookies()
	}
	gorillaPage := func(renew bool) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s, err := gs.Get(r, "session")
			email, _ := s.Values["email"].(string)
			if err != nil || email == "" {
				http.Error(w, "signed out", http.StatusUnauthorized)
				return
			}
			if renew {
				if err := s.Save(r, w); err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
			}
			writePage(w, email)
		})
	}
	t.systems = append(t.systems,
		system{"gorilla/sessions CookieStore, saved every request", peer, gorillaPage(true), gorillaSignIn},
		system{"gorilla/sessions CookieStore, read only", reference, gorillaPage(false), gorillaSignIn},
	)

	// This package, with each store, through the middleware.
	cookieStore, err := logout.NewCookieStore(benchKey("requests cookie"))
	check(err)
	revocable, err := logout.NewRevocableCookieStore(logout.NewRevocationList(rdb), benchKey("requests revocable"))
	check(err)
	for _, s := range []struct {
		name  string
		role  role
		store logout.SessionStore
		idle  time.Duration // how long ago the session was last used at sign-in
	}{
		{"logout.RedisStore", ours, logout.NewRedisStore(rdb), 0},
		{goroutinePath, reference, logout.NewRedisStore(redisClient(false)), 0},
		{"logout.CookieStore", ours, cookieStore, 0},
		{"logout.RevocableCookieStore", ours, revocable, 0},
		// A session last used more than a tenth of the idle timeout ago is
		// renewed by every request: the cost of the requests that do set a
		// cookie.
		{"logout.CookieStore, every request renews", ours, cookieStore, idleTimeout / 5},
	} {
		h, err := logout.New(context.Background(), logout.Config{Store: s.store, EndSessionEndpoint: endSession, PostLogoutRedirectURI: postLogout, IdleTimeout: idleTimeout, Logger: quiet})
		check(err)
		page := h.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s, err := logout.SessionFromContext(r.Context())
			if err != nil {
				http.Error(w, "signed out", http.StatusUnauthorized)
				return
			}
			writePage(w, s.Email)
		}))
		t.systems = append(t.systems, system{s.name, s.role, page, func() []*http.Cookie {
			sub := user()
			return signIn(h, logout.Session{
				Issuer: "https://acme.scalekit.dev", Subject: sub, SessionID: "ses_" + sub[len("usr_"):], Email: "ada@example.com",
				IDToken: idToken, AccessToken: accessToken, RefreshToken: "rt_0123456789",
				LastSeen: lastSeen(s.idle),
			})
		}})
	}
	return t
}

func lastSeen(ago time.Duration) time.Time {
	if ago == 0 {
		return time.Time{}
	}
	return time.Now().Add(-ago)
}

// writePage is the same small page for every system.
func writePage(w http.ResponseWriter, email string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	io.WriteString(w, "<!doctype html><title>Account</title><p>Signed in as "+email+"</p>")
}

func signIn(h *logout.Handler, s logout.Session) []*http.Cookie {
	rec := httptest.NewRecorder()
	check(h.StartSession(rec, httptest.NewRequest(http.MethodGet, "/callback", nil), s))
	return rec.Result().Cookies()
}

// benchKey is a 32-byte key named by purpose: the bench and its server
// processes derive the same ones. (A bench's keys protect nothing.)
func benchKey(purpose string) []byte {
	k := sha256.Sum256([]byte("bench key\x00" + purpose))
	return k[:]
}
