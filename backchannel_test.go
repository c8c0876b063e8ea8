// SPDX-License-Identifier: Apache-2.0

package logout_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
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

// keyFetches counts the requests a back-channel receiver makes for the
// provider's keys, at its HTTP client's transport.
type keyFetches struct{ n atomic.Int64 }

func (k *keyFetches) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path == "/keys" {
		k.n.Add(1)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// watch replaces e's receiver by one whose key fetches are counted and whose
// clock the test moves. It returns the count after start-up, which fetches
// the keys once.
func (e *bcEnv) watch(t *testing.T) (fetches *keyFetches, startup int64, clock *fakeClock) {
	t.Helper()
	fetches, clock = &keyFetches{}, newFakeClock()
	bc, err := logout.NewBackChannelHandler(context.Background(), logout.BackChannelConfig{
		Issuer: e.fake.Issuer(), ClientID: bcClient, Store: e.store, Logger: newLogger(e.logSink),
		HTTPClient: &http.Client{Transport: fetches},
	})
	if err != nil {
		t.Fatal(err)
	}
	logout.SetBackChannelClock(bc, clock.Now)
	e.bc = bc
	return fetches, fetches.n.Load(), clock
}

// strangerKey is an RSA key the provider never had.
var strangerKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// forge signs claims with the stranger's key under the key ID kid.
func forge(t testing.TB, claims map[string]any, kid string) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("logout+jwt").WithHeader(jose.HeaderKey("kid"), kid)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: strangerKey()}, opts)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	noteSecret(tok)
	return tok
}

// kidOf returns the key ID in a token's header, or "" when it has none or
// is not a JWS.
func kidOf(token string) string {
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return ""
	}
	return jws.Signatures[0].Header.KeyID
}

func (e *bcEnv) allAlive(t *testing.T) bool {
	t.Helper()
	return e.alive(t, "alice1") && e.alive(t, "alice2") && e.alive(t, "bob")
}

// Forged tokens naming a key the receiver holds are refused without a
// request to the provider: a stranger's POST costs no outbound request.
func TestBackChannelForgedKnownKidFetchesNothing(t *testing.T) {
	e := newBCEnv(t, false)
	fetches, startup, _ := e.watch(t)
	genuine := e.sign(t, e.claims())
	kid := kidOf(genuine)
	for range 50 {
		c := e.claims()
		c["sub"], c["sid"] = "usr_bob", "ses_3"
		checkRefused(t, e.post(t, form(forge(t, c, kid))))
	}
	if resp := e.post(t, form(genuine)); resp.StatusCode != http.StatusOK {
		t.Fatalf("genuine token: status %d, want 200", resp.StatusCode)
	}
	if got := fetches.n.Load() - startup; got != 0 {
		t.Errorf("key fetches after 50 forged tokens with a known kid and a genuine one: got %d, want 0", got)
	}
	if !e.alive(t, "bob") || e.alive(t, "alice1") {
		t.Error("bob ended by forged tokens, or alice1 not ended by the genuine one")
	}
}

// Forged tokens naming keys the receiver does not hold cause at most one
// fetch per interval, whether they come one after another or all at once.
func TestBackChannelForgedUnknownKidsFetchOnce(t *testing.T) {
	for _, together := range []bool{false, true} {
		t.Run(map[bool]string{false: "one after another", true: "all at once"}[together], func(t *testing.T) {
			e := newBCEnv(t, false)
			fetches, startup, _ := e.watch(t)
			tokens := make([]string, 50)
			for i := range tokens {
				tokens[i] = forge(t, e.claims(), "key_"+rand.Text())
			}
			status := make([]int, len(tokens))
			var wg sync.WaitGroup
			for i, tok := range tokens {
				post := func() { status[i] = e.post(t, form(tok)).StatusCode }
				if together {
					wg.Go(post)
				} else {
					post()
				}
			}
			wg.Wait()
			got := fetches.n.Load() - startup
			if got > 1 {
				t.Errorf("key fetches for 50 forged tokens with unknown kids: got %d, want at most 1", got)
			}
			t.Logf("50 forged tokens with unknown kids: %d key fetches (plus %d at start-up)", got, startup)
			for i, s := range status {
				if s != http.StatusBadRequest && s != http.StatusServiceUnavailable {
					t.Errorf("token %d: status %d, want 400 or 503", i, s)
				}
			}
			if !together && (status[0] != http.StatusBadRequest || status[1] != http.StatusServiceUnavailable) {
				// The first fetch shows its kid unknown; the rest cannot fetch yet.
				t.Errorf("first two statuses %v, want [400 503]", status[:2])
			}
			if !e.allAlive(t) {
				t.Error("a forged token ended a session")
			}
		})
	}
}

// A genuine token signed with a key the provider published after the last
// fetch, while no fetch is allowed yet, gets 503 so that the provider
// retries; the retry after the interval fetches the keys and is accepted.
func TestBackChannelNewKeyDuringRefetchInterval(t *testing.T) {
	e := newBCEnv(t, false)
	fetches, startup, clock := e.watch(t)
	checkRefused(t, e.post(t, form(forge(t, e.claims(), "key_"+rand.Text())))) // spends the fetch
	e.fake.RotateKey()
	tok := e.sign(t, e.claims())
	for _, wait := range []time.Duration{0, logout.KeyRefetchInterval - time.Second} {
		clock.Advance(wait)
		resp := e.post(t, form(tok))
		checkUnavailable(t, resp)
		if !e.allAlive(t) {
			t.Fatal("a session ended before its token was verified")
		}
	}
	if got := fetches.n.Load() - startup; got != 1 {
		t.Errorf("key fetches within the interval: got %d, want 1", got)
	}
	clock.Advance(time.Second)
	if resp := e.post(t, form(tok)); resp.StatusCode != http.StatusOK {
		t.Fatalf("retry after the interval: status %d, want 200", resp.StatusCode)
	}
	if got := fetches.n.Load() - startup; got != 2 {
		t.Errorf("key fetches after the interval: got %d, want 2", got)
	}
	if e.alive(t, "alice1") || !e.alive(t, "alice2") {
		t.Error("the retried token did not end alice1 alone")
	}
}

func checkUnavailable(t *testing.T, resp *http.Response) {
	t.Helper()
	var body map[string]string
	json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusServiceUnavailable || body["error"] != "temporarily_unavailable" {
		t.Errorf("status %d, body %v; want 503 temporarily_unavailable", resp.StatusCode, body)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", resp.Header.Get("Cache-Control"))
	}
}

// Claims are matched as Back-Channel Logout 1.0 spells them. Each token here
// is signed by the provider's own key and was accepted by a loose reader.
func TestBackChannelClaimsMatchedExactly(t *testing.T) {
	event := scalekittest.BackChannelLogoutEvent
	tests := []struct {
		name   string
		typ    string
		change func(c map[string]any)
	}{
		{"EVENTS instead of events", "logout+jwt", func(c map[string]any) { c["EVENTS"] = c["events"]; delete(c, "events") }},
		{"SID instead of sid", "logout+jwt", func(c map[string]any) { c["SID"] = c["sid"]; delete(c, "sid"); delete(c, "sub") }},
		{"Sub instead of sub", "logout+jwt", func(c map[string]any) { c["Sub"] = c["sub"]; delete(c, "sub"); delete(c, "sid") }},
		{"event member name upper-cased", "logout+jwt", func(c map[string]any) { c["events"] = map[string]any{strings.ToUpper(event): map[string]any{}} }},
		{"event value null", "logout+jwt", func(c map[string]any) { c["events"] = map[string]any{event: nil} }},
		{"event value a string", "logout+jwt", func(c map[string]any) { c["events"] = map[string]any{event: "logout"} }},
		{"event value an array", "logout+jwt", func(c map[string]any) { c["events"] = map[string]any{event: []any{}} }},
		{"events an array", "logout+jwt", func(c map[string]any) { c["events"] = []any{event} }},
		{"events null", "logout+jwt", func(c map[string]any) { c["events"] = nil }},
		{"typ at+jwt", "at+jwt", nil},
		{"typ id_token+jwt", "id_token+jwt", nil},
		{"typ application/at+jwt", "application/at+jwt", nil},
		{"typ secevent+jwt", "secevent+jwt", nil},
		{"typ text/jwt", "text/jwt", nil},
		{"sub a number", "logout+jwt", func(c map[string]any) { c["sub"] = 42 }},
		{"sid null", "logout+jwt", func(c map[string]any) { c["sid"] = nil }},
		{"sid empty", "logout+jwt", func(c map[string]any) { c["sid"] = "" }},
		{"aud a number beside the client", "logout+jwt", func(c map[string]any) { c["aud"] = []any{bcClient, 7} }},
		{"aud an object", "logout+jwt", func(c map[string]any) { c["aud"] = map[string]any{bcClient: true} }},
		{"iss with a trailing slash", "logout+jwt", func(c map[string]any) { c["iss"] = c["iss"].(string) + "/" }},
		{"no exp", "logout+jwt", func(c map[string]any) { delete(c, "exp") }},
		{"exp a string", "logout+jwt", func(c map[string]any) { c["exp"] = fmt.Sprint(c["exp"]) }},
		{"iat null", "logout+jwt", func(c map[string]any) { c["iat"] = nil }},
		{"nbf in the future", "logout+jwt", func(c map[string]any) { c["nbf"] = time.Now().Add(10 * time.Minute).Unix() }},
		{"jti empty", "logout+jwt", func(c map[string]any) { c["jti"] = "" }},
		{"jti a number", "logout+jwt", func(c map[string]any) { c["jti"] = 12345 }},
		{"nonce null", "logout+jwt", func(c map[string]any) { c["nonce"] = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newBCEnv(t, false)
			tok := e.signChanged(t, tt.typ, tt.change)
			checkRefused(t, e.post(t, form(tok)))
			if !e.allAlive(t) {
				t.Error("a refused token ended a session")
			}
		})
	}
}

// Every typ a logout token may carry, and the forms of its claims the
// specification allows, are accepted.
func TestBackChannelAcceptsLogoutTokenForms(t *testing.T) {
	event := scalekittest.BackChannelLogoutEvent
	oneSession := map[string]bool{"alice1": false, "alice2": true, "bob": true}
	allOfAlice := map[string]bool{"alice1": false, "alice2": false, "bob": true}
	tests := []struct {
		name   string
		typ    string
		change func(c map[string]any)
		alive  map[string]bool
	}{
		{"no typ", "", nil, oneSession},
		{"typ JWT", "JWT", nil, oneSession},
		{"typ logout+jwt", "logout+jwt", nil, oneSession},
		{"typ application/logout+jwt", "application/logout+jwt", nil, oneSession},
		{"typ Logout+JWT", "Logout+JWT", nil, oneSession},
		{"typ application/jwt", "application/jwt", nil, oneSession},
		{"aud a string", "logout+jwt", func(c map[string]any) { c["aud"] = bcClient }, oneSession},
		{"aud among others", "logout+jwt", func(c map[string]any) { c["aud"] = []string{"skc_other", bcClient} }, oneSession},
		{"event with members, beside another event", "logout+jwt", func(c map[string]any) {
			c["events"] = map[string]any{event: map[string]any{"k": 1}, event + "/other": 1}
		}, oneSession},
		{"iat with a fraction", "logout+jwt", func(c map[string]any) { c["iat"] = float64(time.Now().UnixMilli()) / 1000 }, oneSession},
		{"SID beside sub is no sid: all of sub's sessions", "logout+jwt", func(c map[string]any) { c["SID"] = c["sid"]; delete(c, "sid") }, allOfAlice},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newBCEnv(t, false)
			tok := e.signChanged(t, tt.typ, tt.change)
			if resp := e.post(t, form(tok)); resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			for name, want := range tt.alive {
				if got := e.alive(t, name); got != want {
					t.Errorf("%s alive = %v, want %v", name, got, want)
				}
			}
		})
	}
}

// A refused token gets the same fixed answer whatever was wrong with it, so
// a forger learns nothing; the operator finds the reason in the log.
func TestBackChannelRefusalSaysNoMore(t *testing.T) {
	want := map[string]string{"error": "invalid_request", "error_description": "invalid logout token"}
	tests := []struct {
		name   string
		token  func(t *testing.T, e *bcEnv) string
		reason string
	}{
		{"wrong iss", func(t *testing.T, e *bcEnv) string { return e.signWith(t, "iss", "https://evil.example") }, "is not the issuer"},
		{"forged with the known kid", func(t *testing.T, e *bcEnv) string { return forge(t, e.claims(), kidOf(e.sign(t, e.claims()))) }, "signature"},
		{"typ at+jwt", func(t *testing.T, e *bcEnv) string { tok, _ := e.fake.Sign(e.claims(), "at+jwt"); return tok }, "typ"},
		{"expired", func(t *testing.T, e *bcEnv) string {
			c := e.claims()
			c["iat"], c["exp"] = time.Now().Add(-10*time.Minute).Unix(), time.Now().Add(-5*time.Minute).Unix()
			return e.sign(t, c)
		}, "expired"},
		{"event value a string", func(t *testing.T, e *bcEnv) string {
			return e.signWith(t, "events", map[string]any{scalekittest.BackChannelLogoutEvent: "x"})
		}, "not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newBCEnv(t, false)
			resp := e.post(t, form(tt.token(t, e)))
			var got map[string]string
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusBadRequest || !maps.Equal(got, want) {
				t.Errorf("got %d %v, want 400 %v", resp.StatusCode, got, want)
			}
			if logs := e.logSink.String(); !strings.Contains(logs, "back-channel token refused") || !strings.Contains(logs, tt.reason) {
				t.Errorf("log %q does not give the reason %q", logs, tt.reason)
			}
		})
	}
}

// The keys decide which tokens end sessions: a discovery document that names
// none, or names them over plain http to another host, is refused at start-up.
func TestBackChannelKeysURIChecked(t *testing.T) {
	for name, jwksURI := range map[string]string{"missing": "", "plain http": "http://idp.example/keys", "relative": "/keys"} {
		t.Run(name, func(t *testing.T) {
			var srv *httptest.Server
			srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				json.NewEncoder(w).Encode(map[string]string{"issuer": srv.URL, "jwks_uri": jwksURI})
			}))
			defer srv.Close()
			_, err := logout.NewBackChannelHandler(context.Background(), logout.BackChannelConfig{Issuer: srv.URL, ClientID: bcClient, Store: newMiniStore(t)})
			if err == nil || !strings.HasPrefix(err.Error(), "logout: back-channel: jwks_uri") {
				t.Errorf("got %v, want a logout: back-channel: jwks_uri error", err)
			}
		})
	}
}

// Keys the receiver cannot use (another type, another use, a kind the JOSE
// library does not know, garbage) may sit beside the signing keys in the
// provider's key set: they are skipped, not a reason to refuse the set.
func TestBackChannelSkipsOtherKeys(t *testing.T) {
	e := newBCEnv(t, false)
	var front *httptest.Server
	front = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/keys" {
			json.NewEncoder(w).Encode(map[string]string{"issuer": front.URL, "jwks_uri": front.URL + "/keys"})
			return
		}
		resp, err := http.Get(e.fake.URL + "/keys")
		if err != nil {
			t.Error(err)
			return
		}
		defer resp.Body.Close()
		var set struct{ Keys []json.RawMessage }
		json.NewDecoder(resp.Body).Decode(&set)
		other := []string{
			`{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uE9l5c8c","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"ec"}`,
			`{"kty":"oct","k":"c2VjcmV0","kid":"hmac"}`, `{"kty":"AKP","alg":"ML-DSA-44","pub":"AAAA","kid":"pq"}`, `"not a key"`, `null`,
		}
		for _, k := range other {
			set.Keys = append(set.Keys, json.RawMessage(k))
		}
		json.NewEncoder(w).Encode(set)
	}))
	defer front.Close()
	bc, err := logout.NewBackChannelHandler(context.Background(), logout.BackChannelConfig{Issuer: front.URL, ClientID: bcClient, Store: e.store, Logger: newLogger(e.logSink)})
	if err != nil {
		t.Fatal(err)
	}
	e.bc = bc
	s := testSession()
	s.Issuer, s.Subject, s.SessionID = front.URL, "usr_alice", "ses_1"
	if e.tokens["front"], err = e.store.Save(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	c := e.claims()
	c["iss"] = front.URL
	if resp := e.post(t, form(e.sign(t, c))); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	if e.alive(t, "front") {
		t.Error("the session is alive after its logout token")
	}
}

// BenchmarkBackChannelForgedToken is what a forged token with a known kid
// costs the receiver: parsing, the claim checks and one RSA verification,
// with no request to the provider.
func BenchmarkBackChannelForgedToken(b *testing.B) {
	e := newBCEnv(b, false)
	fetches := &keyFetches{}
	bc, err := logout.NewBackChannelHandler(context.Background(), logout.BackChannelConfig{
		Issuer: e.fake.Issuer(), ClientID: bcClient, Store: e.store, Logger: slog.New(slog.DiscardHandler),
		HTTPClient: &http.Client{Transport: fetches},
	})
	if err != nil {
		b.Fatal(err)
	}
	body := form(forge(b, e.claims(), kidOf(e.sign(b, e.claims()))))
	startup := fetches.n.Load()
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "/backchannel-logout", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		bc.ServeHTTP(rec, r)
		if rec.Code != http.StatusBadRequest {
			b.Fatalf("status %d, want 400", rec.Code)
		}
	}
	if got := fetches.n.Load() - startup; got != 0 {
		b.Errorf("key fetches: got %d, want 0", got)
	}
}

// signChanged signs alice's first session's logout token with the typ
// header given, after change (if any) edits its claims.
func (e *bcEnv) signChanged(t *testing.T, typ string, change func(map[string]any)) string {
	t.Helper()
	c := e.claims()
	if change != nil {
		change(c)
	}
	tok, err := e.fake.Sign(c, typ)
	if err != nil {
		t.Fatal(err)
	}
	noteSecret(tok)
	return tok
}
