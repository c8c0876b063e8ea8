// SPDX-License-Identifier: Apache-2.0

package logout_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/endsession/logout"
	"github.com/endsession/logout/scalekittest"
)

// device signs in testSession's user from a device of the given name.
func device(t *testing.T, h *logout.Handler, name string) []*http.Cookie {
	t.Helper()
	s := testSession()
	s.Device = name
	return signIn(t, h, s)
}

func listOf(t *testing.T, h *logout.Handler, cookies []*http.Cookie) []logout.SessionInfo {
	t.Helper()
	list, next, err := h.ListSessions(logoutRequest(http.MethodGet, cookies), "")
	if err != nil || next != "" {
		t.Fatalf("ListSessions = %d, %q, %v", len(list), next, err)
	}
	return list
}

func TestListSessions(t *testing.T) {
	for name, newStore := range map[string]func(t *testing.T) logout.SessionStore{
		"miniredis": func(t *testing.T) logout.SessionStore { return newMiniStore(t) },
		"real":      func(t *testing.T) logout.SessionStore { s, _ := realRedisStore(t); return s },
	} {
		t.Run(name, func(t *testing.T) {
			h, _ := newHandler(t, newStore(t), nil)
			laptop := device(t, h, "Firefox on Linux")
			device(t, h, "Safari on iPhone, Paris")
			device(t, h, "")
			other := testSession()
			other.Subject = "usr_other"
			other.Device = "someone else's"
			signIn(t, h, other)

			list := listOf(t, h, laptop)
			if len(list) != 3 {
				t.Fatalf("listed %d sessions, want the user's 3", len(list))
			}
			var devices []string
			current := 0
			for _, s := range list {
				devices = append(devices, s.Device)
				if s.Current {
					current++
					if s.Device != "Firefox on Linux" {
						t.Errorf("the current session is %q, want the laptop", s.Device)
					}
				}
				if s.Handle == "" || s.CreatedAt.IsZero() || s.ExpiresAt.IsZero() {
					t.Errorf("session %+v lacks a handle or times", s)
				}
				if name == "real" && (s.LastSeen.IsZero() || time.Since(s.LastSeen) > time.Minute) {
					t.Errorf("LastSeen %v, want about now", s.LastSeen)
				}
			}
			slices.Sort(devices)
			if want := []string{"", "Firefox on Linux", "Safari on iPhone, Paris"}; !slices.Equal(devices, want) {
				t.Errorf("devices %q, want %q", devices, want)
			}
			if current != 1 {
				t.Errorf("%d sessions marked current, want 1", current)
			}
		})
	}
	t.Run("cookie store", func(t *testing.T) {
		h, _ := newHandler(t, newCookieStore(t), nil)
		if _, _, err := h.ListSessions(logoutRequest(http.MethodGet, device(t, h, "x")), ""); err == nil || !strings.Contains(err.Error(), "cannot list") {
			t.Errorf("ListSessions on a cookie store: %v, want an error saying it cannot", err)
		}
	})
}

// A user with more sessions than a page holds gets them all over several
// pages, one round trip each.
func TestListSessionsPages(t *testing.T) {
	srv := startRedisServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rdb.Close() })
	counter := newCommandCounter(t, srv.Addr)
	store := logout.NewRedisStore(rdb)
	h, _ := newHandler(t, store, nil)
	var cookies []*http.Cookie
	for i := range 250 {
		c := device(t, h, fmt.Sprint("device ", i))
		if i == 0 {
			cookies = c
		}
	}
	seen := map[string]bool{}
	pages := 0
	counter.Reset(t)
	for cursor := ""; ; pages++ {
		list, next, err := h.ListSessions(logoutRequest(http.MethodGet, cookies), cursor)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) > logout.MaxListPage {
			t.Fatalf("a page of %d, over the bound of %d", len(list), logout.MaxListPage)
		}
		for _, s := range list {
			seen[s.Handle] = true
		}
		if cursor = next; cursor == "" {
			pages++
			break
		}
	}
	got := counter.Count(t)
	if len(seen) != 250 {
		t.Errorf("%d sessions over %d pages, want 250", len(seen), pages)
	}
	if got["eval"] != pages || got["get"] != pages || total(got) != 2*pages {
		t.Errorf("%d pages sent %v, want one GET (the request's session) and one EVAL per page", pages, got)
	}
	t.Logf("250 sessions listed in %d pages, %v", pages, got)
}

// Ending a listed session by its handle ends exactly that one, and only the
// user's own: another user's handle ends nothing.
func TestEndSessionByHandle(t *testing.T) {
	h, _ := newHandler(t, newMiniStore(t), nil)
	laptop := device(t, h, "laptop")
	phone := device(t, h, "phone")
	tablet := device(t, h, "tablet")
	other := testSession()
	other.Subject = "usr_other"
	stranger := signIn(t, h, other)
	strangerHandle := listOf(t, h, stranger)[0].Handle

	handleOf := func(name string) string {
		for _, s := range listOf(t, h, laptop) {
			if s.Device == name {
				return s.Handle
			}
		}
		t.Fatalf("no session %q", name)
		return ""
	}
	phoneHandle := handleOf("phone")
	if err := h.EndSessionByHandle(httptest.NewRecorder(), logoutRequest(http.MethodPost, laptop), phoneHandle); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string][]*http.Cookie{"laptop": laptop, "tablet": tablet, "stranger": stranger} {
		if _, err := currentSession(h, c); err != nil {
			t.Errorf("%s: %v, want alive", name, err)
		}
	}
	if _, err := currentSession(h, phone); !errors.Is(err, logout.ErrNoSession) {
		t.Errorf("the phone: %v, want ended", err)
	}
	for name, handle := range map[string]string{"another user's": strangerHandle, "garbage": "zz", "ended": phoneHandle} {
		if err := h.EndSessionByHandle(httptest.NewRecorder(), logoutRequest(http.MethodPost, laptop), handle); !errors.Is(err, logout.ErrNoSession) {
			t.Errorf("%s handle: %v, want ErrNoSession", name, err)
		}
	}
	for name, c := range map[string][]*http.Cookie{"the stranger's": stranger, "the tablet's": tablet} {
		if _, err := currentSession(h, c); err != nil {
			t.Errorf("%s session after those handles were tried: %v", name, err)
		}
	}
}

// "Sign out other devices" leaves only the caller's session, for both
// stores that can do it.
func TestEndOtherSessions(t *testing.T) {
	for name, newStore := range map[string]func(t *testing.T) logout.SessionStore{
		"redis":            func(t *testing.T) logout.SessionStore { return newMiniStore(t) },
		"revocable cookie": func(t *testing.T) logout.SessionStore { _, rdb := newMini(t); return newRevocableStore(t, rdb) },
	} {
		t.Run(name, func(t *testing.T) {
			h, _ := newHandler(t, newStore(t), nil)
			here := device(t, h, "here")
			phone := device(t, h, "phone")
			tablet := device(t, h, "tablet")
			other := testSession()
			other.Subject = "usr_other"
			stranger := signIn(t, h, other)

			rec := httptest.NewRecorder()
			if _, err := h.EndOtherSessions(rec, logoutRequest(http.MethodPost, here)); err != nil {
				t.Fatal(err)
			}
			if renewed := rec.Result().Cookies(); len(renewed) > 0 {
				here = renewed // the cookie store gave this session a new seal
			}
			if _, err := currentSession(h, here); err != nil {
				t.Errorf("this device: %v, want alive", err)
			}
			for name, c := range map[string][]*http.Cookie{"phone": phone, "tablet": tablet} {
				if _, err := currentSession(h, c); !errors.Is(err, logout.ErrNoSession) {
					t.Errorf("%s: %v, want ended", name, err)
				}
			}
			if _, err := currentSession(h, stranger); err != nil {
				t.Errorf("another user: %v, want alive", err)
			}
		})
	}
}

// The handlers apply the logout endpoint's rules, and answer browsers and
// scripts as a logout does.
func TestSignOutHandlers(t *testing.T) {
	h, _ := newHandler(t, newMiniStore(t), func(c *logout.Config) { c.SessionsPage = "/account/sessions" })
	here := device(t, h, "here")
	phone := device(t, h, "phone")
	var phoneHandle string
	for _, s := range listOf(t, h, here) {
		if !s.Current {
			phoneHandle = s.Handle
		}
	}
	form := func(method, site, mode string) *http.Request {
		r := httptest.NewRequest(method, testAppOrigin+"/sessions/end", strings.NewReader("handle="+phoneHandle))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Sec-Fetch-Site", site)
		r.Header.Set("Sec-Fetch-Mode", mode)
		for _, c := range here {
			r.AddCookie(c)
		}
		return r
	}
	for name, tt := range map[string]struct {
		r    *http.Request
		want int
	}{
		"cross-site": {form(http.MethodPost, "cross-site", "navigate"), http.StatusForbidden},
		"same-site":  {form(http.MethodPost, "same-site", "navigate"), http.StatusForbidden},
		"GET":        {form(http.MethodGet, "same-origin", "navigate"), http.StatusMethodNotAllowed},
	} {
		resp := serve(h.SignOutSession(), tt.r)
		if resp.StatusCode != tt.want || !strings.Contains(resp.Header.Get("Cache-Control"), "no-store") {
			t.Errorf("%s: %d %q, want %d and no-store", name, resp.StatusCode, resp.Header.Get("Cache-Control"), tt.want)
		}
	}
	if _, err := currentSession(h, phone); err != nil {
		t.Fatalf("a refused request ended the phone's session: %v", err)
	}
	resp := serve(h.SignOutSession(), form(http.MethodPost, "same-origin", "navigate"))
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/account/sessions" {
		t.Errorf("end one: %d to %q, want 303 to the sessions page", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, err := currentSession(h, phone); !errors.Is(err, logout.ErrNoSession) {
		t.Errorf("the phone after end one: %v", err)
	}
	if resp := serve(h.SignOutSession(), form(http.MethodPost, "same-origin", "navigate")); resp.StatusCode != http.StatusNotFound {
		t.Errorf("ending it again: %d, want 404", resp.StatusCode)
	}
	device(t, h, "tablet")
	resp = serve(h.SignOutOtherDevices(), form(http.MethodPost, "same-origin", "cors"))
	if resp.StatusCode != http.StatusOK || !strings.Contains(readAll(t, resp), `"ended":1`) {
		t.Errorf("other devices from a script: %d", resp.StatusCode)
	}
	if _, err := logout.New(t.Context(), logout.Config{Store: newMiniStore(t), EndSessionEndpoint: testEndSession, PostLogoutRedirectURI: testPostLogout, SessionsPage: "//evil.example"}); err == nil {
		t.Error("a SessionsPage on another host was accepted")
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// What each operation on active sessions sends Redis: one command each.
func TestActiveSessionCommandCounts(t *testing.T) {
	srv := startRedisServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rdb.Close() })
	counter := newCommandCounter(t, srv.Addr)
	store := logout.NewRedisStore(rdb)
	ctx := context.Background()
	var handles []string
	for i := range 5 {
		s := testSession()
		s.Device = fmt.Sprint(i)
		token, err := store.Save(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			defer func() {
				counter.Reset(t)
				store.EndSubject(ctx, s.Issuer, s.Subject, time.Now())
			}()
			_ = token
		}
	}
	s := testSession()
	counter.Reset(t)
	list, _, err := store.ListSessions(ctx, s.Issuer, s.Subject, "")
	if got := counter.Count(t); err != nil || len(list) != 5 || total(got) != 1 {
		t.Errorf("list: %d sessions, %v, commands %v; want 5 in 1 command", len(list), err, got)
	}
	for _, l := range list {
		handles = append(handles, l.Handle)
	}
	counter.Reset(t)
	if ok, err := store.EndHandle(ctx, s.Issuer, s.Subject, handles[0]); !ok || err != nil {
		t.Fatal(err)
	}
	if got := counter.Count(t); total(got) != 1 {
		t.Errorf("end one: %v, want 1 command", got)
	}
	t.Logf("commands: list %d, end one %d", 1, 1)
}

// The one hook hears of every ending, once per session, with its reason.
func TestSessionEndHook(t *testing.T) {
	var mu sync.Mutex
	var events []logout.SessionEnd
	hook := func(_ context.Context, e logout.SessionEnd) { mu.Lock(); events = append(events, e); mu.Unlock() }
	take := func() []logout.SessionEnd {
		mu.Lock()
		defer mu.Unlock()
		out := events
		events = nil
		return out
	}
	reasons := func(es []logout.SessionEnd) []string {
		var out []string
		for _, e := range es {
			out = append(out, string(e.Reason))
		}
		slices.Sort(out)
		return out
	}

	e := newProvEnv(t, scalekittest.Config{})
	_, rdb := newMini(t)
	store := logout.NewRedisStore(rdb)
	clock := newFakeClock()
	h := e.handler(t, store, time.Hour, func(c *logout.Config) { c.OnSessionEnd = hook; c.IdleTimeout = 15 * time.Minute })

	// logout
	serve(h, logoutRequest(http.MethodPost, device(t, h, "a")))
	if got := reasons(take()); !slices.Equal(got, []string{"logout"}) {
		t.Errorf("logout: %v", got)
	}
	// everywhere: this one is a logout, the two others "everywhere"
	here := device(t, h, "here")
	device(t, h, "b")
	device(t, h, "c")
	serve(h.Everywhere(), logoutRequest(http.MethodPost, here))
	if got := reasons(take()); !slices.Equal(got, []string{"everywhere", "everywhere", "logout"}) {
		t.Errorf("everywhere: %v", got)
	}
	// other devices and ended by user
	here = device(t, h, "here")
	device(t, h, "b")
	device(t, h, "c")
	h.EndOtherSessions(httptest.NewRecorder(), logoutRequest(http.MethodPost, here))
	if got := reasons(take()); !slices.Equal(got, []string{"other-devices", "other-devices"}) {
		t.Errorf("other devices: %v", got)
	}
	device(t, h, "d")
	for _, s := range listOf(t, h, here) {
		if !s.Current {
			h.EndSessionByHandle(httptest.NewRecorder(), logoutRequest(http.MethodPost, here), s.Handle)
		}
	}
	if got := take(); len(got) != 1 || got[0].Reason != logout.EndByUser || got[0].Handle == "" || got[0].Subject != testSession().Subject {
		t.Errorf("ended by user: %+v", got)
	}
	// refresh refused: the provider session is revoked behind the app's back
	tok := e.signInAtFake(t, newJar(t), "ada@example.com")
	cookies := signIn(t, h, e.appSession(tok))
	e.fake.RevokeSession(tok.SessionID)
	h.Refresh(httptest.NewRecorder(), logoutRequest(http.MethodGet, cookies))
	if got := take(); len(got) != 1 || got[0].Reason != logout.EndRefreshRefused || got[0].SessionID != tok.SessionID {
		t.Errorf("refresh refused: %+v", got)
	}
	// back-channel: each session of the provider session, one event each
	bc, err := logout.NewBackChannelHandler(context.Background(), logout.BackChannelConfig{
		Issuer: e.fake.Issuer(), ClientID: provClient, Store: store, OnSessionEnd: hook, Logger: newLogger(&logSink{}),
	})
	if err != nil {
		t.Fatal(err)
	}
	tok = e.signInAtFake(t, newJar(t), "ada@example.com")
	signIn(t, h, e.appSession(tok))
	signIn(t, h, e.appSession(tok))
	lt, _ := e.fake.LogoutToken(provClient, tok.UserID, tok.SessionID)
	noteSecret(lt)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/bc", strings.NewReader(form(lt)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	bc.ServeHTTP(rec, req)
	if got := take(); rec.Code != 200 || len(got) != 2 || got[0].Reason != logout.EndBackChannel || got[0].Handle == got[1].Handle {
		t.Errorf("back-channel (%d): %+v, want one event per session", rec.Code, got)
	}
	// expired, seen by the middleware
	short := testSession()
	short.Expiry = time.Now().Add(50 * time.Millisecond)
	expiring := signIn(t, h, short)
	waitFor(t, 5*time.Second, "the session to expire", func() bool { return time.Now().After(short.Expiry) })
	rec = httptest.NewRecorder()
	h.Middleware(http.NotFoundHandler()).ServeHTTP(rec, logoutRequest(http.MethodGet, expiring))
	if got := take(); len(got) != 1 || got[0].Reason != logout.EndExpired {
		t.Errorf("expired: %+v, want one event", got)
	}
	if setCookies(rec.Result())["__Host-session"]["max-age"] != "0" {
		t.Error("the middleware left the expired session's cookie")
	}

	// idle, seen by the middleware of a cookie store
	cs := newCookieStore(t)
	logout.SetCookieStoreClock(cs, clock.Now)
	hc, _ := newHandler(t, cs, func(c *logout.Config) { c.OnSessionEnd = hook; c.IdleTimeout = 15 * time.Minute })
	idle := testSession()
	idle.IssuedAt, idle.LastSeen, idle.Expiry = clock.Now(), clock.Now(), clock.Now().Add(time.Hour)
	idleCookies := signIn(t, hc, idle)
	clock.Advance(16 * time.Minute)
	hc.Middleware(http.NotFoundHandler()).ServeHTTP(httptest.NewRecorder(), logoutRequest(http.MethodGet, idleCookies))
	if got := take(); len(got) != 1 || got[0].Reason != logout.EndIdle || got[0].Subject != idle.Subject || got[0].Handle == "" {
		t.Errorf("idle: %+v, want one event", got)
	}
}
