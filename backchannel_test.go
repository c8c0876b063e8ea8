package logout_test

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/endsession/logout"
	"github.com/endsession/logout/scalekittest"
)

const bcClient = "skc_app"

// bcEnv is a back-channel receiver in front of a store, with a fake provider
// and two users signed in: alice twice under two sids, bob once.
type bcEnv struct {
	fake    *scalekittest.Server
	store   logout.SessionStore
	bc      *logout.BackChannelHandler
	tokens  map[string]string // name -> session token
	logSink *logSink
}

func newBCEnv(t testing.TB, cookie bool) *bcEnv {
	t.Helper()
	fake := scalekittest.NewServer()
	t.Cleanup(fake.Close)
	var store logout.SessionStore
	_, rdb := newMini(t)
	if cookie {
		store = newRevocableStore(t, rdb)
	} else {
		store = logout.NewRedisStore(rdb)
	}
	sink := &logSink{}
	bc, err := logout.NewBackChannelHandler(context.Background(), logout.BackChannelConfig{
		Issuer: fake.Issuer(), ClientID: bcClient, Store: store, Logger: newLogger(sink),
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &bcEnv{fake: fake, store: store, bc: bc, tokens: map[string]string{}, logSink: sink}
	for name, ids := range map[string][2]string{"alice1": {"usr_alice", "ses_1"}, "alice2": {"usr_alice", "ses_2"}, "bob": {"usr_bob", "ses_3"}} {
		s := testSession()
		s.Issuer, s.Subject, s.SessionID = fake.Issuer(), ids[0], ids[1]
		s.IssuedAt = time.Now().Add(-time.Minute)
		tok, err := store.Save(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[name] = tok
	}
	return e
}

func (e *bcEnv) alive(t *testing.T, name string) bool {
	t.Helper()
	_, err := e.store.Load(context.Background(), e.tokens[name])
	if err != nil && !errors.Is(err, logout.ErrNoSession) {
		t.Fatal(err)
	}
	return err == nil
}

// claims is a valid logout token's claims for alice's first session.
func (e *bcEnv) claims() map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": e.fake.Issuer(), "aud": []string{bcClient}, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
		"jti": rand.Text(), "events": map[string]any{scalekittest.BackChannelLogoutEvent: map[string]any{}},
		"sub": "usr_alice", "sid": "ses_1",
	}
}

func (e *bcEnv) sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	tok, err := e.fake.Sign(claims, "logout+jwt")
	if err != nil {
		t.Fatal(err)
	}
	noteSecret(tok)
	return tok
}

func (e *bcEnv) post(t *testing.T, body string) *http.Response {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/backchannel-logout", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	e.bc.ServeHTTP(rec, r)
	return rec.Result()
}

func form(token string) string { return url.Values{"logout_token": {token}}.Encode() }

func TestBackChannelRefusesBadTokens(t *testing.T) {
	tests := []struct {
		name  string
		token func(t *testing.T, e *bcEnv) string
	}{
		{"bad signature", func(t *testing.T, e *bcEnv) string {
			other := scalekittest.NewServer()
			defer other.Close()
			tok, _ := other.Sign(e.claims(), "logout+jwt") // same claims, a stranger's key
			return tok
		}},
		{"alg none", func(t *testing.T, e *bcEnv) string {
			payload, _ := json.Marshal(e.claims())
			return b64(`{"alg":"none","typ":"logout+jwt"}`) + "." + base64.RawURLEncoding.EncodeToString(payload) + "."
		}},
		{"HS256 keyed with the public key", func(t *testing.T, e *bcEnv) string {
			der, _ := x509.MarshalPKIXPublicKey(e.fake.PublicKey())
			key := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
			signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: key}, nil)
			if err != nil {
				t.Fatal(err)
			}
			tok, _ := jwt.Signed(signer).Claims(e.claims()).Serialize()
			return tok
		}},
		{"wrong iss", func(t *testing.T, e *bcEnv) string { return e.signWith(t, "iss", "https://evil.example") }},
		{"wrong aud", func(t *testing.T, e *bcEnv) string { return e.signWith(t, "aud", []string{"skc_other"}) }},
		{"expired", func(t *testing.T, e *bcEnv) string {
			c := e.claims()
			c["iat"], c["exp"] = time.Now().Add(-10*time.Minute).Unix(), time.Now().Add(-5*time.Minute).Unix()
			return e.sign(t, c)
		}},
		{"issued in the future", func(t *testing.T, e *bcEnv) string {
			c := e.claims()
			c["iat"], c["exp"] = time.Now().Add(10*time.Minute).Unix(), time.Now().Add(12*time.Minute).Unix()
			return e.sign(t, c)
		}},
		{"no iat", func(t *testing.T, e *bcEnv) string { return e.signWithout(t, "iat") }},
		{"no events", func(t *testing.T, e *bcEnv) string { return e.signWithout(t, "events") }},
		{"other event", func(t *testing.T, e *bcEnv) string {
			return e.signWith(t, "events", map[string]any{"http://schemas.openid.net/event/other": map[string]any{}})
		}},
		{"nonce", func(t *testing.T, e *bcEnv) string { return e.signWith(t, "nonce", "n-0S6_WzA2Mj") }},
		{"neither sub nor sid", func(t *testing.T, e *bcEnv) string {
			c := e.claims()
			delete(c, "sub")
			delete(c, "sid")
			return e.sign(t, c)
		}},
		{"no jti", func(t *testing.T, e *bcEnv) string { return e.signWithout(t, "jti") }},
		{"garbage", func(t *testing.T, e *bcEnv) string { return "not.a.jwt" }},
		{"truncated", func(t *testing.T, e *bcEnv) string { tok := e.sign(t, e.claims()); return tok[:len(tok)-10] }},
		{"huge", func(t *testing.T, e *bcEnv) string { return strings.Repeat("A", 100_000) }},
	}
	for _, cookie := range []bool{false, true} {
		for _, tt := range tests {
			t.Run(storeName(cookie)+"/"+tt.name, func(t *testing.T) {
				e := newBCEnv(t, cookie)
				resp := e.post(t, form(tt.token(t, e)))
				checkRefused(t, resp)
				if !e.alive(t, "alice1") || !e.alive(t, "alice2") || !e.alive(t, "bob") {
					t.Error("a refused token ended a session")
				}
			})
		}
	}
}

func TestBackChannelMalformedRequests(t *testing.T) {
	e := newBCEnv(t, false)
	good := e.sign(t, e.claims())
	for name, body := range map[string]string{
		"no token":       "",
		"empty token":    "logout_token=",
		"two tokens":     form(good) + "&" + form(good),
		"broken percent": "logout_token=%zz",
	} {
		t.Run(name, func(t *testing.T) {
			checkRefused(t, e.post(t, body))
		})
	}
	r := httptest.NewRequest(http.MethodGet, "/backchannel-logout?"+form(good), nil)
	rec := httptest.NewRecorder()
	e.bc.ServeHTTP(rec, r)
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("GET: %d %q, want 405 no-store", rec.Code, rec.Header().Get("Cache-Control"))
	}
	if !e.alive(t, "alice1") {
		t.Error("a malformed request ended a session")
	}
}

func checkRefused(t *testing.T, resp *http.Response) {
	t.Helper()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("status %d, want 400", resp.StatusCode)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", resp.Header.Get("Cache-Control"))
	}
	var body struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	if body.Error != "invalid_request" || body.ErrorDescription == "" {
		t.Errorf("body %+v, want invalid_request with a description", body)
	}
}

func TestBackChannelEndsSessions(t *testing.T) {
	tests := []struct {
		name   string
		change func(c map[string]any)
		alive  map[string]bool
	}{
		{"sid and sub: that session", func(map[string]any) {}, map[string]bool{"alice1": false, "alice2": true, "bob": true}},
		{"sid alone: that session", func(c map[string]any) { delete(c, "sub") }, map[string]bool{"alice1": false, "alice2": true, "bob": true}},
		{"sub alone: all the user's", func(c map[string]any) { delete(c, "sid") }, map[string]bool{"alice1": false, "alice2": false, "bob": true}},
		{"no typ header", nil, map[string]bool{"alice1": false, "alice2": true, "bob": true}},
	}
	for _, cookie := range []bool{false, true} {
		for _, tt := range tests {
			t.Run(storeName(cookie)+"/"+tt.name, func(t *testing.T) {
				e := newBCEnv(t, cookie)
				c := e.claims()
				var tok string
				if tt.change == nil {
					tok, _ = e.fake.Sign(c, "")
				} else {
					tt.change(c)
					tok = e.sign(t, c)
				}
				resp := e.post(t, form(tok))
				if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" {
					t.Fatalf("status %d, Cache-Control %q; want 200 no-store", resp.StatusCode, resp.Header.Get("Cache-Control"))
				}
				for name, want := range tt.alive {
					if got := e.alive(t, name); got != want {
						t.Errorf("%s alive = %v, want %v", name, got, want)
					}
				}
				// The same token again is a replay.
				checkRefused(t, e.post(t, form(tok)))
				if strings.Contains(e.logSink.String(), tok) {
					t.Error("the logout token reached the log")
				}
			})
		}
	}
}

// A user who signs in again after a back-channel logout is not locked out.
func TestBackChannelLetsTheUserSignInAgain(t *testing.T) {
	e := newBCEnv(t, true)
	c := e.claims()
	delete(c, "sid")
	if resp := e.post(t, form(e.sign(t, c))); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	s := testSession()
	s.Issuer, s.Subject, s.SessionID = e.fake.Issuer(), "usr_alice", "ses_1"
	s.IssuedAt = time.Now().Add(time.Millisecond)
	tok, err := e.store.Save(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Load(context.Background(), tok); err != nil {
		t.Errorf("a session started after the back-channel logout: %v, want alive", err)
	}
	if e.alive(t, "alice1") {
		t.Error("the old session survived")
	}
}

func TestBackChannelKeyRotation(t *testing.T) {
	e := newBCEnv(t, false)
	if resp := e.post(t, form(e.sign(t, e.claims()))); resp.StatusCode != http.StatusOK {
		t.Fatalf("before rotation: %d", resp.StatusCode)
	}
	e.fake.RotateKey() // the next token has a kid the receiver has not seen
	c := e.claims()
	c["sid"] = "ses_2"
	if resp := e.post(t, form(e.sign(t, c))); resp.StatusCode != http.StatusOK {
		t.Fatalf("after rotation: %d, want 200 (keys fetched again for the unknown kid)", resp.StatusCode)
	}
	if e.alive(t, "alice2") {
		t.Error("alice2 alive after a logout token signed with the new key")
	}
}

// TestBackChannelStoreDown answers 503 while Redis is down, so the provider
// retries, and the retry with the same token works once Redis is back.
func TestBackChannelStoreDown(t *testing.T) {
	m, rdb := newMini(t)
	fake := scalekittest.NewServer()
	defer fake.Close()
	store := logout.NewRedisStore(rdb)
	s := testSession()
	s.Issuer, s.Subject, s.SessionID = fake.Issuer(), "usr_alice", "ses_1"
	token, _ := store.Save(context.Background(), s)
	bc, err := logout.NewBackChannelHandler(context.Background(), logout.BackChannelConfig{
		Issuer: fake.Issuer(), ClientID: bcClient, Store: store, StoreTimeout: 500 * time.Millisecond, Logger: newLogger(&logSink{}),
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &bcEnv{fake: fake, bc: bc}
	tok := e.sign(t, e.claims())
	m.SetError("LOADING Redis is loading the dataset in memory")
	if resp := e.post(t, form(tok)); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("store down: status %d, want 503", resp.StatusCode)
	}
	m.SetError("")
	if resp := e.post(t, form(tok)); resp.StatusCode != http.StatusOK {
		t.Fatalf("retry after recovery: status %d, want 200", resp.StatusCode)
	}
	if _, err := store.Load(context.Background(), token); !errors.Is(err, logout.ErrNoSession) {
		t.Errorf("session after the retried logout: %v", err)
	}
}

func TestBackChannelConfig(t *testing.T) {
	fake := scalekittest.NewServer()
	defer fake.Close()
	bare := newCookieStore(t)
	for name, cfg := range map[string]logout.BackChannelConfig{
		"no client ID":                  {Issuer: fake.Issuer(), Store: newMiniStore(t)},
		"cookie store without list":     {Issuer: fake.Issuer(), ClientID: bcClient, Store: bare},
		"no store":                      {Issuer: fake.Issuer(), ClientID: bcClient},
		"relative issuer":               {Issuer: "/", ClientID: bcClient, Store: newMiniStore(t)},
		"issuer without discovery":      {Issuer: fake.Issuer() + "/nothing", ClientID: bcClient, Store: newMiniStore(t)},
		"plain http issuer not on host": {Issuer: "http://idp.example", ClientID: bcClient, Store: newMiniStore(t)},
	} {
		if _, err := logout.NewBackChannelHandler(context.Background(), cfg); err == nil || !strings.HasPrefix(err.Error(), "logout: ") {
			t.Errorf("%s: %v, want a logout: error", name, err)
		}
	}
}

// Sign out everywhere ends the user's other sessions too, for both stores.
func TestEverywhere(t *testing.T) {
	for _, cookie := range []bool{false, true} {
		t.Run(storeName(cookie), func(t *testing.T) {
			var store logout.SessionStore = newMiniStore(t)
			if cookie {
				_, rdb := newMini(t)
				store = newRevocableStore(t, rdb)
			}
			h, _ := newHandler(t, store, nil)
			here := signIn(t, h, testSession())
			phone := signIn(t, h, testSession())
			other := testSession()
			other.Subject = "usr_other"
			someoneElse := signIn(t, h, other)

			resp := serve(h.Everywhere(), logoutRequest(http.MethodPost, here))
			if resp.StatusCode != http.StatusSeeOther || location(t, resp).Query().Get("id_token_hint") == "" {
				t.Fatalf("status %d, Location %q; want 303 to the end-session endpoint", resp.StatusCode, resp.Header.Get("Location"))
			}
			for name, c := range map[string][]*http.Cookie{"this browser": here, "the phone": phone} {
				if _, err := currentSession(h, c); !errors.Is(err, logout.ErrNoSession) {
					t.Errorf("%s after sign-out everywhere: %v, want ErrNoSession", name, err)
				}
			}
			if _, err := currentSession(h, someoneElse); err != nil {
				t.Errorf("another user's session: %v, want alive", err)
			}
		})
	}
}

func (e *bcEnv) signWith(t *testing.T, k string, v any) string {
	c := e.claims()
	c[k] = v
	return e.sign(t, c)
}

func (e *bcEnv) signWithout(t *testing.T, k string) string {
	c := e.claims()
	delete(c, k)
	return e.sign(t, c)
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func storeName(cookie bool) string {
	if cookie {
		return "cookie+revocations"
	}
	return "redis"
}
