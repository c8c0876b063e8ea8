// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/alexedwards/scs/goredisstore"
	"github.com/alexedwards/scs/v2"
	"github.com/redis/go-redis/v9"

	"github.com/endsession/logout"
)

// quiet drops the handler's log lines: the floors and the peers write none,
// so the CPU comparison leaves logging out for all.
var quiet = slog.New(slog.DiscardHandler)

// logoutTable is a logout: each request ends a session of its own and sends
// the browser to the provider's end-session endpoint.
func logoutTable(rdb *redis.Client) table {
	var users atomic.Int64 // every sign-in is a user of its own
	t := table{
		name: "logout",
		request: func(base string, cookies []*http.Cookie) *http.Request {
			r, _ := http.NewRequest(http.MethodPost, base+"/logout", nil)
			r.Header.Set("Sec-Fetch-Site", "same-origin")
			r.Header.Set("Sec-Fetch-Mode", "navigate")
			return withCookies(r, cookies)
		},
		status: http.StatusSeeOther,
	}
	redirect := func(w http.ResponseWriter, r *http.Request, hint string) {
		q := url.Values{"post_logout_redirect_uri": {postLogout}}
		if hint != "" {
			q.Set("id_token_hint", hint)
		}
		http.Redirect(w, r, endSession+"?"+q.Encode(), http.StatusSeeOther)
	}

	// The floor: one GETDEL on the same Redis, which reads the ID token and
	// ends the session, and a redirect. No checks.
	t.systems = append(t.systems, system{"floor (one GETDEL)", floor, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var hint string
		if c, err := r.Cookie("session"); err == nil {
			hint, _ = rdb.GetDel(r.Context(), "floor:"+c.Value).Result()
		}
		http.SetCookie(w, &http.Cookie{Name: "session", Path: "/", MaxAge: -1, HttpOnly: true, Secure: true})
		redirect(w, r, hint)
	}), func() []*http.Cookie {
		token := rand.Text()
		check(rdb.Set(context.Background(), "floor:"+token, idToken, time.Hour).Err())
		return []*http.Cookie{{Name: "session", Value: token}}
	}})

	// The seed's logout written plainly, with no store at all: the tokens
	// live in plain cookies.
	t.systems = append(t.systems, system{"no store (plain cookies)", reference, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var hint string
		if c, err := r.Cookie("idToken"); err == nil {
			hint = c.Value
		}
		for _, name := range []string{"accessToken", "refreshToken", "idToken"} {
			http.SetCookie(w, &http.Cookie{Name: name, Path: "/", MaxAge: -1, HttpOnly: true, Secure: true})
		}
		redirect(w, r, hint)
	}), func() []*http.Cookie {
		return []*http.Cookie{{Name: "idToken", Value: idToken}, {Name: "accessToken", Value: accessToken}, {Name: "refreshToken", Value: "rt_0123456789"}}
	}})

	// The peer: scs with its go-redis store: load, destroy, redirect.
	sm := scs.New()
	sm.Store = goredisstore.NewWithPrefix(rdb, "scs:")
	sm.Cookie.Name = "session"
	t.systems = append(t.systems, system{"scs + goredisstore", scsPeer, sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hint := sm.GetString(r.Context(), "id_token")
		if err := sm.Destroy(r.Context()); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		redirect(w, r, hint)
	})), func() []*http.Cookie {
		ctx, _ := sm.Load(context.Background(), "")
		sm.Put(ctx, "sub", fmt.Sprintf("usr_%d", users.Add(1)))
		sm.Put(ctx, "id_token", idToken)
		sm.Put(ctx, "access_token", accessToken)
		sm.Put(ctx, "refresh_token", "rt_0123456789")
		token, _, err := sm.Commit(ctx)
		check(err)
		return []*http.Cookie{{Name: "session", Value: token}}
	}})

	// This package, with each store.
	cookieStore, err := logout.NewCookieStore(benchKey("logout cookie"))
	check(err)
	revocable, err := logout.NewRevocableCookieStore(logout.NewRevocationList(rdb), benchKey("logout revocable"))
	check(err)
	for _, s := range []struct {
		name  string
		role  role
		store logout.SessionStore
	}{
		{"logout.RedisStore", ours, logout.NewRedisStore(rdb)},
		{goroutinePath, reference, logout.NewRedisStore(redisClient(false))},
		{"logout.CookieStore", ours, cookieStore},
		{"logout.RevocableCookieStore", ours, revocable},
	} {
		h, err := logout.New(context.Background(), logout.Config{Store: s.store, EndSessionEndpoint: endSession, PostLogoutRedirectURI: postLogout, Logger: quiet})
		check(err)
		t.systems = append(t.systems, system{s.name, s.role, h, func() []*http.Cookie {
			n := users.Add(1)
			return signIn(h, logout.Session{
				Issuer: "https://acme.scalekit.dev", Subject: fmt.Sprintf("usr_%d", n), SessionID: fmt.Sprintf("ses_%d", n), Email: "ada@example.com",
				IDToken: idToken, AccessToken: accessToken, RefreshToken: "rt_0123456789",
			})
		}})
	}
	t.systems = append(t.systems, otelLogout(rdb, &users))
	return t
}
