// SPDX-License-Identifier: Apache-2.0

package logout_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/endsession/logout"
)

// FuzzCookieStoreToken: any token, forged or garbled, reads as no session
// (or, for a real one, as its session) and never panics.
func FuzzCookieStoreToken(f *testing.F) {
	store, err := logout.NewCookieStore(make([]byte, 32))
	if err != nil {
		f.Fatal(err)
	}
	good, _ := store.Save(context.Background(), testSession())
	for _, seed := range []string{good, good[:len(good)/2], "", "AAAA", strings.Repeat("A", 20000), good + "=", "\x00"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		for _, op := range []func(context.Context, string) (logout.Session, error){store.Load, store.End} {
			s, err := op(context.Background(), token)
			if err != nil && !errors.Is(err, logout.ErrNoSession) {
				t.Fatalf("error %v, want ErrNoSession", err)
			}
			// Only tokens this key sealed open (each fuzz worker seals
			// its own, so compare what they hold, not the token).
			if err == nil && s.IDToken != testSession().IDToken {
				t.Fatalf("forged token %q opened as %v", token, s)
			}
		}
	})
}

// FuzzRedisStoreToken: the same for the Redis store's tokens, against a
// miniredis holding one real session.
func FuzzRedisStoreToken(f *testing.F) {
	store := newMiniStore(f)
	good, err := store.Save(context.Background(), testSession())
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{good, good[:40], good + "A", "", strings.Repeat("_", 75)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		s, err := store.Load(context.Background(), token)
		if err != nil && !errors.Is(err, logout.ErrNoSession) {
			t.Fatalf("error %v, want ErrNoSession", err)
		}
		if err == nil && token != good {
			t.Fatalf("forged token %q opened as %v", token, s)
		}
	})
}

// FuzzCookieHeader sends arbitrary Cookie headers, chunk counts and all, to
// Session and to the logout handler: never a panic, never a 5xx, never a
// session for a forged value.
func FuzzCookieHeader(f *testing.F) {
	store, _ := logout.NewCookieStore(make([]byte, 32))
	h, _ := newHandler(f, store, nil)
	f.Add("__Host-session=3.abc; __Host-session.1=def; __Host-session.2=ghi")
	f.Add("__Host-session=99.x")
	f.Add("__Host-session=.; __Host-session.1=")
	f.Add("__Host-session=-1.x; __Host-session.00=y; __Host-session.+1=z")
	f.Add(strings.Repeat("a=b; ", 300))
	f.Fuzz(func(t *testing.T, header string) {
		r := httptest.NewRequest(http.MethodPost, testAppOrigin+"/logout", nil)
		r.Header.Set("Cookie", header)
		r.Header.Set("Sec-Fetch-Site", "same-origin")
		if s, err := h.Session(r); !errors.Is(err, logout.ErrNoSession) {
			t.Fatalf("Session = %v, %v; want ErrNoSession", s, err)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != http.StatusSeeOther {
			t.Fatalf("status %d, want 303", rec.Code)
		}
	})
}

// FuzzReturnTo: no return target but the configured ones is ever followed.
func FuzzReturnTo(f *testing.F) {
	for _, s := range []string{allowedOther, testPostLogout, "//evil.example", "https://app.example.com@evil.example", "/\\evil.example", "javascript:alert(1)"} {
		f.Add(s)
	}
	h, _ := newHandler(f, newCookieStore(f), func(c *logout.Config) {
		c.ClientID = "skc_app"
		c.PostLogoutWithClientID = true
		c.AllowedPostLogoutRedirectURIs = []string{allowedOther}
	})
	f.Fuzz(func(t *testing.T, target string) {
		r := logoutRequest(http.MethodPost, nil)
		r.URL.RawQuery = url.Values{"return_to": {target}}.Encode()
		resp := serve(h, r)
		checkNoOpenRedirect(t, resp, "return_to="+strconv.Quote(target))
		if resp.StatusCode == http.StatusSeeOther && target != allowedOther && target != testPostLogout {
			t.Fatalf("return_to=%q accepted", target)
		}
	})
}

// FuzzHandler drives the whole logout handler with arbitrary methods,
// queries, bodies, cookies and fetch metadata. Invariants: no panic, no 5xx
// (the store is healthy), no redirect anywhere but the configured places,
// and a refused request leaves the session alive.
func FuzzHandler(f *testing.F) {
	f.Add("POST", "", "", "same-origin", "navigate", "", true)
	f.Add("POST", "return_to=https%3A%2F%2Fapp.example.com%2Fgoodbye", "", "same-origin", "cors", "application/json", true)
	f.Add("GET", "rd=//evil.example", "", "cross-site", "navigate", "", false)
	f.Add("POST", "", "return_to=%zz", "same-site", "navigate", "text/html", true)
	f.Add("DELETE", "", "", "", "", "", false)
	f.Fuzz(func(t *testing.T, method, query, body, site, mode, accept string, withSession bool) {
		store := newMiniStore(t)
		h, _ := newHandler(t, store, func(c *logout.Config) {
			c.ClientID = "skc_app"
			c.PostLogoutWithClientID = withSession
			c.AllowedPostLogoutRedirectURIs = []string{allowedOther}
			c.AllowGET = true
		})
		var cookies []*http.Cookie
		if withSession {
			cookies = signIn(t, h, testSession())
		}
		r := httptest.NewRequest(http.MethodGet, testAppOrigin+"/logout", strings.NewReader(body))
		r.Method = method
		r.URL.RawQuery = query
		if body != "" {
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		for k, v := range map[string]string{"Sec-Fetch-Site": site, "Sec-Fetch-Mode": mode, "Accept": accept} {
			if v != "" {
				r.Header.Set(k, v)
			}
		}
		for _, c := range cookies {
			r.AddCookie(c)
		}
		resp := serve(h, r)
		checkNoOpenRedirect(t, resp, "request")
		if resp.StatusCode >= 400 && withSession {
			if _, err := currentSession(h, cookies); err != nil {
				t.Fatalf("status %d, yet the session is gone: %v", resp.StatusCode, err)
			}
		}
	})
}

// FuzzLogoutToken posts arbitrary logout tokens to the back-channel
// receiver: never a panic, never a 5xx but the 503 that asks the provider to
// retry a token naming a key the receiver does not hold, never a session
// ended by a token the provider did not sign.
func FuzzLogoutToken(f *testing.F) {
	e := newBCEnv(f, false)
	valid := e.sign(f, e.claims())
	known := kidOf(valid)
	otherTyp, err := e.fake.Sign(e.claims(), "at+jwt")
	if err != nil {
		f.Fatal(err)
	}
	unknownKid := forge(f, e.claims(), "key_unknown")
	for _, s := range []string{valid, valid[:len(valid)/2], otherTyp, unknownKid, "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "", strings.Repeat(".", 100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		resp := e.post(t, form(token))
		if kid := kidOf(token); resp.StatusCode >= 500 && (resp.StatusCode != http.StatusServiceUnavailable || kid == "" || kid == known) {
			t.Fatalf("status %d for a token with kid %q", resp.StatusCode, kid)
		}
		if resp.StatusCode == http.StatusOK && token != valid {
			t.Fatalf("a token the fuzzer made was accepted: %q", token)
		}
	})
}

// FuzzRedisBlob puts arbitrary bytes where a session record lives, as a
// corrupted or hostile Redis would: Load must read them as no session.
func FuzzRedisBlob(f *testing.F) {
	m, rdb := newMini(f)
	store := logout.NewRedisStore(rdb)
	token, err := store.Save(context.Background(), testSession())
	if err != nil {
		f.Fatal(err)
	}
	var key string
	for _, k := range m.Keys() {
		if strings.Contains(k, ":s:") {
			key = k
		}
	}
	real, _ := m.Get(key)
	f.Add([]byte(real))
	f.Add([]byte{})
	f.Add([]byte(real[:len(real)/2]))
	f.Fuzz(func(t *testing.T, blob []byte) {
		m.Set(key, string(blob))
		s, err := store.Load(context.Background(), token)
		if string(blob) == real {
			return
		}
		if !errors.Is(err, logout.ErrNoSession) {
			t.Fatalf("Load of a forged record = %v, %v; want ErrNoSession", s, err)
		}
	})
}

// FuzzWebhook posts arbitrary deliveries to the webhook receiver twice: as
// the fuzzer made them, and signed afresh with the receiver's secret, so
// that the event decoder sees every body. Never a panic, never a 5xx (the
// store is up); nothing the fuzzer signed itself gets past verification; a
// delivery that is not answered 200 ends nothing.
func FuzzWebhook(f *testing.F) {
	e := newWHEnv(f, false)
	now := time.Now()
	for _, body := range []string{
		logoutEvent("usr_alice", "ses_1", nil),
		logoutEvent("usr_alice", "", func(e, d, _ map[string]any) { delete(d, "user_session") }),
		logoutEvent("usr_alice", "ses_1", func(e, _, _ map[string]any) { e["type"] = "user.login" }),
		`{"type":"user.logout","data":{"user_session":{"session_id":1}}}`,
		`{"type":"user.logout","data":{"user":{"id":"usr_bob"},"user_session":{"logout_at":"2024-01-15T10:40:00Z"}}}`,
		`{"type":"user.logout","data":{"user":{"id":"usr_bob"},"user_session":{"status":"REVOKED","logout_at":null,"expired_at":"2024-01-15T10:40:00Z"}}}`,
		strings.Repeat("[", 20000),
		"",
	} {
		d := newDelivery(e.secret, body, now)
		f.Add(d.id, d.timestamp, d.signature, d.body)
	}
	f.Add("evt.1", "1700000000", "v1,AAAA v1a,BBBB", []byte(`{"type":"user.logout"}`))
	f.Fuzz(func(t *testing.T, id, timestamp, signature string, body []byte) {
		before := e.ends.calls.Load()
		resp := postWebhook(e.wh, delivery{id: id, timestamp: timestamp, signature: signature, body: body})
		switch resp.StatusCode {
		case http.StatusOK, http.StatusBadRequest:
			real := "v1," + unnotedSignature(e.secret, id, timestamp, body)
			if !slices.Contains(strings.Fields(signature), real) {
				t.Fatalf("status %d for a signature the fuzzer made: %q", resp.StatusCode, signature)
			}
		case http.StatusUnauthorized, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d", resp.StatusCode)
		}
		if resp.StatusCode != http.StatusOK && e.ends.calls.Load() != before {
			t.Fatalf("status %d, yet sessions were ended", resp.StatusCode)
		}

		before = e.ends.calls.Load()
		signed := delivery{id: id, body: body}
		signed.timestamp = strconv.FormatInt(time.Now().Unix(), 10)
		signed.signature = "v1," + unnotedSignature(e.secret, signed.id, signed.timestamp, body)
		resp = postWebhook(e.wh, signed)
		validID := id != "" && len(id) <= 256 && !strings.Contains(id, ".")
		switch {
		case resp.StatusCode == http.StatusUnauthorized && !validID:
		case resp.StatusCode == http.StatusRequestEntityTooLarge && len(body) > 64<<10:
		case resp.StatusCode == http.StatusOK, resp.StatusCode == http.StatusBadRequest:
		default:
			t.Fatalf("signed delivery with id %q: status %d", id, resp.StatusCode)
		}
		if resp.StatusCode != http.StatusOK && e.ends.calls.Load() != before {
			t.Fatalf("signed delivery: status %d, yet sessions were ended", resp.StatusCode)
		}
	})
}
