// SPDX-License-Identifier: Apache-2.0

package logout_test

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/endsession/logout"
)

// formatFixture is a session written by an earlier version of this package,
// in session format 1: its encoding, a sealed cookie and a Redis record.
type formatFixture struct {
	CookieKeyHex string         `json:"cookie_key_hex"`
	CookieName   string         `json:"cookie_name"`
	CookieToken  string         `json:"cookie_token"`
	RedisToken   string         `json:"redis_token"`
	RedisKey     string         `json:"redis_key"`
	RedisBlobHex string         `json:"redis_blob_hex"`
	Session      logout.Session `json:"session"`
}

func readFixture(t *testing.T) formatFixture {
	t.Helper()
	b, err := os.ReadFile("testdata/session-format-1.json")
	if err != nil {
		t.Fatal(err)
	}
	var f formatFixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	noteSecret(f.CookieToken)
	noteSecret(f.RedisToken)
	return f
}

// Sessions written before this version, by instances still running it during
// a rolling deploy, read back whole, and their logout still carries the ID
// token to the provider.
func TestReadsSessionFormat1(t *testing.T) {
	f := readFixture(t)
	key, _ := hex.DecodeString(f.CookieKeyHex)
	cookieStore, err := logout.NewCookieStore(key)
	if err != nil {
		t.Fatal(err)
	}
	m, rdb := newMini(t)
	blob, _ := hex.DecodeString(f.RedisBlobHex)
	m.Set(f.RedisKey, string(blob))
	for name, tt := range map[string]struct {
		store logout.SessionStore
		token string
	}{
		"cookie": {cookieStore, f.CookieToken},
		"redis":  {logout.NewRedisStore(rdb), f.RedisToken},
	} {
		t.Run(name, func(t *testing.T) {
			h, _ := newHandler(t, tt.store, nil)
			cookies := []*http.Cookie{{Name: f.CookieName, Value: tt.token}}
			got, err := currentSession(h, cookies)
			if err != nil {
				t.Fatalf("format 1 session: %v", err)
			}
			got.LastSeen = time.Time{} // RedisStore reports its renewal
			if got != f.Session {
				t.Errorf("read %+v\nwant %+v", got, f.Session)
			}
			resp := serve(h, logoutRequest(http.MethodPost, cookies))
			if hint := location(t, resp).Query().Get("id_token_hint"); hint != f.Session.IDToken {
				t.Errorf("id_token_hint %q, want the format 1 session's ID token", hint)
			}
		})
	}
}

// During the first step of an upgrade (SessionFormat 1) the new version
// writes sessions that the old one reads: a format 1 session a reader of
// format 1 alone accepts.
func TestWritesSessionFormat1(t *testing.T) {
	f := readFixture(t)
	key, _ := hex.DecodeString(f.CookieKeyHex)
	store, _ := logout.NewCookieStore(key)
	h, _ := newHandler(t, store, func(c *logout.Config) { c.SessionFormat = 1 })
	s := f.Session
	s.AccessTokenExpiry = time.Now().Add(time.Hour)
	cookies := signIn(t, h, s)
	if got := logout.SessionFormatOf(t, store, f.CookieName, cookies[0].Value); got != 1 {
		t.Errorf("SessionFormat 1 wrote format %d", got)
	}
	h2, _ := newHandler(t, store, nil)
	if got := logout.SessionFormatOf(t, store, f.CookieName, signIn(t, h2, s)[0].Value); got != 2 {
		t.Errorf("the default wrote format %d, want 2", got)
	}
	if _, err := logout.New(t.Context(), logout.Config{Store: store, EndSessionEndpoint: testEndSession, PostLogoutRedirectURI: testPostLogout, SessionFormat: 3}); err == nil {
		t.Error("SessionFormat 3 accepted")
	}
}
