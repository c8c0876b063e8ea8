// SPDX-License-Identifier: Apache-2.0

package logout_test

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"

	"github.com/endsession/logout"
	"github.com/endsession/logout/scalekittest"
)

const whIssuer = "https://acme.scalekit.dev"

// whEnv is a webhook receiver in front of a store on miniredis, with three
// sessions: alice's first (ses_1, begun two minutes ago), alice's second
// (ses_2, begun 30 seconds ago) and bob's (ses_3, two minutes ago).
type whEnv struct {
	mini    *miniredis.Miniredis
	cookie  bool
	key     []byte // the cookie store's sealing key
	store   logout.SessionStore
	ends    *endCounter
	wh      *logout.WebhookHandler
	secret  string
	tokens  map[string]string
	logSink *logSink
}

func newWHEnv(t testing.TB, cookie bool) *whEnv {
	t.Helper()
	m, rdb := newMini(t)
	e := &whEnv{mini: m, cookie: cookie, key: newKey(t), ends: &endCounter{}, secret: newWebhookSecret(), tokens: map[string]string{}, logSink: &logSink{}}
	e.store = countedStore(t, rdb, cookie, e.key, e.ends)
	e.wh = newWebhookHandler(t, e.store, e.logSink, e.secret)
	now := time.Now()
	for name, s := range map[string]struct {
		sub, sid string
		began    time.Time
	}{
		"alice1": {"usr_alice", "ses_1", now.Add(-2 * time.Minute)},
		"alice2": {"usr_alice", "ses_2", now.Add(-30 * time.Second)},
		"bob":    {"usr_bob", "ses_3", now.Add(-2 * time.Minute)},
	} {
		e.tokens[name] = e.save(t, s.sub, s.sid, s.began)
	}
	return e
}

// instance is another app instance's store: its own client to the same
// Redis, the same kind of store, the same sealing key.
func (e *whEnv) instance(t testing.TB) (logout.SessionStore, *endCounter) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: e.mini.Addr()})
	t.Cleanup(func() { rdb.Close() })
	c := &endCounter{}
	return countedStore(t, rdb, e.cookie, e.key, c), c
}

func newWebhookHandler(t testing.TB, store logout.SessionStore, sink *logSink, secrets ...string) *logout.WebhookHandler {
	t.Helper()
	wh, err := logout.NewWebhookHandler(logout.WebhookConfig{Secrets: secrets, Issuer: whIssuer, Store: store, Logger: newLogger(sink)})
	if err != nil {
		t.Fatal(err)
	}
	return wh
}

func (e *whEnv) save(t testing.TB, sub, sid string, began time.Time) string {
	t.Helper()
	s := testSession()
	s.Issuer, s.Subject, s.SessionID, s.IssuedAt = whIssuer, sub, sid, began
	tok, err := e.store.Save(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (e *whEnv) alive(t *testing.T, name string) bool {
	t.Helper()
	return aliveIn(t, e.store, e.tokens[name])
}

func aliveIn(t *testing.T, store logout.SessionStore, token string) bool {
	t.Helper()
	_, err := store.Load(context.Background(), token)
	if err != nil && !errors.Is(err, logout.ErrNoSession) {
		t.Fatal(err)
	}
	return err == nil
}

func (e *whEnv) allAlive(t *testing.T) bool {
	t.Helper()
	return e.alive(t, "alice1") && e.alive(t, "alice2") && e.alive(t, "bob")
}

// endCounter counts the calls that end sessions. With loseReply set, the
// next call ends them and then reports a timeout, as when Redis ran the
// command but the reply came too late.
type endCounter struct {
	calls     atomic.Int32
	loseReply atomic.Bool
}

func (c *endCounter) count(n int, err error) (int, error) {
	c.calls.Add(1)
	if err == nil && c.loseReply.CompareAndSwap(true, false) {
		return 0, context.DeadlineExceeded
	}
	return n, err
}

// countedRedisStore and countedCookieStore are the real stores with their
// ending calls counted; every other method, the replay guard's included, is
// the real store's.
type countedRedisStore struct {
	*logout.RedisStore
	c *endCounter
}

func (s countedRedisStore) EndSID(ctx context.Context, issuer, sid string) (int, error) {
	return s.c.count(s.RedisStore.EndSID(ctx, issuer, sid))
}

func (s countedRedisStore) EndSubject(ctx context.Context, issuer, sub string, before time.Time) (int, error) {
	return s.c.count(s.RedisStore.EndSubject(ctx, issuer, sub, before))
}

type countedCookieStore struct {
	*logout.RevocableCookieStore
	c *endCounter
}

func (s countedCookieStore) EndSID(ctx context.Context, issuer, sid string) (int, error) {
	return s.c.count(s.RevocableCookieStore.EndSID(ctx, issuer, sid))
}

func (s countedCookieStore) EndSubject(ctx context.Context, issuer, sub string, before time.Time) (int, error) {
	return s.c.count(s.RevocableCookieStore.EndSubject(ctx, issuer, sub, before))
}

// countedStore is one app instance's store on rdb: a RedisStore, or a
// RevocableCookieStore sealing with key.
func countedStore(t testing.TB, rdb redis.UniversalClient, cookie bool, key []byte, c *endCounter) logout.SessionStore {
	t.Helper()
	if !cookie {
		return countedRedisStore{logout.NewRedisStore(rdb), c}
	}
	s, err := logout.NewRevocableCookieStore(logout.NewRevocationList(rdb), key)
	if err != nil {
		t.Fatal(err)
	}
	return countedCookieStore{s, c}
}

func newWebhookSecret() string {
	key := make([]byte, 24)
	rand.Read(key)
	secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
	noteSecret(secret)
	noteSecret(secret[len("whsec_"):])
	return secret
}

// delivery is one POST as a Standard Webhooks sender makes it.
type delivery struct {
	id, timestamp, signature string
	body                     []byte
}

// newDelivery signs body with secret as sent at the given time.
func newDelivery(secret, body string, sent time.Time) delivery {
	d := delivery{id: "evt_" + rand.Text(), body: []byte(body)}
	d.resign(secret, sent)
	return d
}

// resign dates d at sent and signs it again with secret, as a retry is.
func (d *delivery) resign(secret string, sent time.Time) {
	d.timestamp = strconv.FormatInt(sent.Unix(), 10)
	d.signature = "v1," + webhookSignature(secret, d.id, d.timestamp, d.body)
}

// webhookSignature is the Standard Webhooks v1 signature, computed here
// independently of the package.
func webhookSignature(secret, id, timestamp string, body []byte) string {
	sig := unnotedSignature(secret, id, timestamp, body)
	noteSecret(sig)
	return sig
}

// unnotedSignature is webhookSignature for the fuzzer, which makes too many
// to note each one.
func unnotedSignature(secret, id, timestamp string, body []byte) string {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		panic(err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + timestamp + "."))
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func postWebhook(h http.Handler, d delivery) *http.Response {
	r := httptest.NewRequest(http.MethodPost, "/webhooks/scalekit", strings.NewReader(string(d.body)))
	r.Header.Set("Content-Type", "application/json")
	for k, v := range map[string]string{"webhook-id": d.id, "webhook-timestamp": d.timestamp, "webhook-signature": d.signature} {
		if v != "" {
			r.Header.Set(k, v)
		}
	}
	return serve(h, r)
}

func (e *whEnv) post(d delivery) *http.Response { return postWebhook(e.wh, d) }

// logoutEvent is a user.logout event as Scalekit documents it; change
// edits it before it is encoded.
func logoutEvent(sub, sid string, change func(event, data, session map[string]any)) string {
	session := map[string]any{"session_id": sid, "user_id": sub, "status": "revoked", "logout_at": time.Now().UTC().Format(time.RFC3339Nano)}
	data := map[string]any{"user": map[string]any{"id": sub, "email": "ada@example.com"}, "user_session": session}
	event := map[string]any{"spec_version": "1", "id": "evt_1", "type": "user.logout", "object": "UserLogoutEvent",
		"occurred_at": time.Now().UTC().Format(time.RFC3339Nano), "environment_id": "env_1", "data": data}
	if change != nil {
		change(event, data, session)
	}
	b, err := json.Marshal(event)
	if err != nil {
		panic(err)
	}
	noteSecret(string(b))
	return string(b)
}

// checkAnswer checks the status, no-store, and for a refusal the fixed JSON
// error.
func checkAnswer(t *testing.T, resp *http.Response, status int, description string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status %d, want %d", resp.StatusCode, status)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	if status < 400 {
		return
	}
	var body struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	code := "invalid_request"
	if status >= 500 {
		code = "temporarily_unavailable"
	}
	if body.Error != code || body.ErrorDescription != description {
		t.Errorf("body %+v, want %s %q", body, code, description)
	}
}

// Every way a delivery can fail verification is answered 401 with one fixed
// description, and ends nothing.
func TestWebhookRefusesUnverifiedDeliveries(t *testing.T) {
	now := time.Now()
	stranger := newWebhookSecret()
	tests := []struct {
		name   string
		change func(e *whEnv, d *delivery)
	}{
		{"bad signature (body changed)", func(e *whEnv, d *delivery) { d.body = []byte(logoutEvent("usr_bob", "ses_3", nil)) }},
		{"wrong secret", func(e *whEnv, d *delivery) { d.resign(stranger, now) }},
		{"signed for another id", func(e *whEnv, d *delivery) { d.id += "0" }},
		{"signed for another timestamp", func(e *whEnv, d *delivery) { d.timestamp = strconv.FormatInt(now.Unix()-1, 10) }},
		{"stale timestamp", func(e *whEnv, d *delivery) { d.resign(e.secret, now.Add(-6*time.Minute)) }},
		{"future timestamp", func(e *whEnv, d *delivery) { d.resign(e.secret, now.Add(6*time.Minute)) }},
		{"timestamp in milliseconds", func(e *whEnv, d *delivery) {
			d.timestamp = strconv.FormatInt(now.UnixMilli(), 10)
			d.resignKeepTime(e.secret)
		}},
		{"timestamp with a sign", func(e *whEnv, d *delivery) { d.timestamp = "+" + d.timestamp; d.resignKeepTime(e.secret) }},
		{"timestamp not a number", func(e *whEnv, d *delivery) { d.timestamp = "yesterday"; d.resignKeepTime(e.secret) }},
		{"missing webhook-id", func(e *whEnv, d *delivery) { d.id = "" }},
		{"missing webhook-timestamp", func(e *whEnv, d *delivery) { d.timestamp = "" }},
		{"missing webhook-signature", func(e *whEnv, d *delivery) { d.signature = "" }},
		{"webhook-id with a dot", func(e *whEnv, d *delivery) { d.id = "evt.1"; d.resignKeepTime(e.secret) }},
		{"webhook-id too long", func(e *whEnv, d *delivery) { d.id = strings.Repeat("e", 257); d.resignKeepTime(e.secret) }},
		{"signature without v1", func(e *whEnv, d *delivery) { d.signature = strings.TrimPrefix(d.signature, "v1,") }},
		{"signature as v1a", func(e *whEnv, d *delivery) { d.signature = "v1a," + strings.TrimPrefix(d.signature, "v1,") }},
		{"signature cut short", func(e *whEnv, d *delivery) { d.signature = d.signature[:len(d.signature)-8] }},
		{"signature not base64", func(e *whEnv, d *delivery) { d.signature = "v1,!!" + d.signature[5:] }},
		{"empty v1 entry", func(e *whEnv, d *delivery) { d.signature = "v1," }},
	}
	for _, cookie := range []bool{false, true} {
		for _, tt := range tests {
			t.Run(storeName(cookie)+"/"+tt.name, func(t *testing.T) {
				e := newWHEnv(t, cookie)
				d := newDelivery(e.secret, logoutEvent("usr_alice", "ses_1", nil), now)
				tt.change(e, &d)
				checkAnswer(t, e.post(d), http.StatusUnauthorized, "invalid webhook signature")
				if !e.allAlive(t) || e.ends.calls.Load() != 0 {
					t.Errorf("a refused delivery ended sessions (%d calls)", e.ends.calls.Load())
				}
			})
		}
	}
}

// resignKeepTime signs d again over its current id and timestamp, so that
// only the changed header is wrong.
func (d *delivery) resignKeepTime(secret string) {
	d.signature = "v1," + webhookSignature(secret, d.id, d.timestamp, d.body)
}

// A correctly signed body that is not an event the handler can read is
// answered 400 with a fixed description, and ends nothing.
func TestWebhookMalformedBody(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{"empty", ""},
		{"not JSON", "user.logout ses_1"},
		{"an array", `[{"type":"user.logout"}]`},
		{"null", "null"},
		{"no type", logoutEvent("usr_alice", "ses_1", func(e, _, _ map[string]any) { delete(e, "type") })},
		{"empty type", logoutEvent("usr_alice", "ses_1", func(e, _, _ map[string]any) { e["type"] = "" })},
		{"type a number", logoutEvent("usr_alice", "ses_1", func(e, _, _ map[string]any) { e["type"] = 1 })},
		{"no data", logoutEvent("usr_alice", "ses_1", func(e, _, _ map[string]any) { delete(e, "data") })},
		{"data a string", logoutEvent("usr_alice", "ses_1", func(e, _, _ map[string]any) { e["data"] = "ses_1" })},
		{"user_session a string", logoutEvent("usr_alice", "ses_1", func(_, d, _ map[string]any) { d["user_session"] = "ses_1" })},
		{"session_id a number", logoutEvent("usr_alice", "ses_1", func(_, _, s map[string]any) { s["session_id"] = 1 })},
		{"user id a number", logoutEvent("usr_alice", "ses_1", func(_, d, _ map[string]any) { d["user"] = map[string]any{"id": 7} })},
		{"neither session nor user", logoutEvent("usr_alice", "ses_1", func(_, d, _ map[string]any) { delete(d, "user_session"); delete(d, "user") })},
		{"logout_at not a time", logoutEvent("usr_alice", "", func(_, _, s map[string]any) { s["logout_at"] = "yesterday" })},
		{"logout_at a number", logoutEvent("usr_alice", "", func(_, _, s map[string]any) { s["logout_at"] = 1700000000 })},
		{"expired_at not a time", logoutEvent("usr_alice", "", func(_, _, s map[string]any) { delete(s, "logout_at"); s["expired_at"] = "soon" })},
		{"status a number", logoutEvent("usr_alice", "ses_1", func(_, _, s map[string]any) { s["status"] = 3 })},
		{"occurred_at not a time", logoutEvent("usr_alice", "", func(e, d, _ map[string]any) { delete(d, "user_session"); e["occurred_at"] = "now" })},
		{"SESSION_ID in another case", logoutEvent("usr_alice", "ses_1", func(_, d, _ map[string]any) {
			d["user_session"] = map[string]any{"SESSION_ID": "ses_1"}
			delete(d, "user")
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newWHEnv(t, false)
			checkAnswer(t, e.post(newDelivery(e.secret, tt.body, time.Now())), http.StatusBadRequest, "malformed webhook event")
			if !e.allAlive(t) || e.ends.calls.Load() != 0 {
				t.Errorf("a malformed event ended sessions (%d calls)", e.ends.calls.Load())
			}
		})
	}
	t.Run("over 64 KB", func(t *testing.T) {
		e := newWHEnv(t, false)
		body := logoutEvent("usr_alice", "ses_1", func(e, _, _ map[string]any) { e["padding"] = strings.Repeat("x", 64<<10) })
		checkAnswer(t, e.post(newDelivery(e.secret, body, time.Now())), http.StatusRequestEntityTooLarge, "webhook body too large")
		if !e.allAlive(t) {
			t.Error("an oversized delivery ended a session")
		}
	})
	t.Run("GET", func(t *testing.T) {
		e := newWHEnv(t, false)
		resp := serve(e.wh, httptest.NewRequest(http.MethodGet, "/webhooks/scalekit", nil))
		checkAnswer(t, resp, http.StatusMethodNotAllowed, "POST only")
		if resp.Header.Get("Allow") != "POST" {
			t.Errorf("Allow %q, want POST", resp.Header.Get("Allow"))
		}
	})
}

// The timestamp may be off by up to Tolerance either way: 5 minutes unless
// configured.
func TestWebhookTolerance(t *testing.T) {
	tests := []struct {
		name      string
		tolerance time.Duration
		offset    time.Duration
		want      int
	}{
		{"4 minutes late", 0, -4 * time.Minute, http.StatusOK},
		{"4 minutes early", 0, 4 * time.Minute, http.StatusOK},
		{"6 minutes late", 0, -6 * time.Minute, http.StatusUnauthorized},
		{"6 minutes early", 0, 6 * time.Minute, http.StatusUnauthorized},
		{"2 minutes late, 1 tolerated", time.Minute, -2 * time.Minute, http.StatusUnauthorized},
		{"2 minutes early, 1 tolerated", time.Minute, 2 * time.Minute, http.StatusUnauthorized},
		{"30 seconds late, 1 tolerated", time.Minute, -30 * time.Second, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newWHEnv(t, false)
			wh, err := logout.NewWebhookHandler(logout.WebhookConfig{Secrets: []string{e.secret}, Issuer: whIssuer, Store: e.store, Tolerance: tt.tolerance, Logger: newLogger(e.logSink)})
			if err != nil {
				t.Fatal(err)
			}
			resp := postWebhook(wh, newDelivery(e.secret, logoutEvent("usr_alice", "ses_1", nil), time.Now().Add(tt.offset)))
			if resp.StatusCode != tt.want {
				t.Errorf("got %d, want %d", resp.StatusCode, tt.want)
			}
			if ended := !e.alive(t, "alice1"); ended != (tt.want == http.StatusOK) {
				t.Errorf("session ended = %v, want %v", ended, tt.want == http.StatusOK)
			}
		})
	}
}

// An event naming a session ends that session; one naming only the user
// ends the user's sessions begun before the logout, never a later sign-in.
func TestWebhookEndsSessions(t *testing.T) {
	at := func(d time.Duration) string { return time.Now().Add(d).UTC().Format(time.RFC3339Nano) }
	tests := []struct {
		name  string
		event func() string
		sent  time.Duration // when the delivery was signed, from now
		alive map[string]bool
	}{
		{"session named", func() string { return logoutEvent("usr_alice", "ses_1", nil) }, 0,
			map[string]bool{"alice1": false, "alice2": true, "bob": true}},
		{"session named, no user", func() string {
			return logoutEvent("usr_alice", "ses_1", func(_, d, _ map[string]any) { delete(d, "user") })
		}, 0, map[string]bool{"alice1": false, "alice2": true, "bob": true}},
		{"no user_session: sessions begun before occurred_at", func() string {
			return logoutEvent("usr_alice", "", func(e, d, _ map[string]any) { delete(d, "user_session"); e["occurred_at"] = at(-time.Minute) })
		}, 0, map[string]bool{"alice1": false, "alice2": true, "bob": true}},
		{"user_session without session_id: its logout_at over occurred_at", func() string {
			return logoutEvent("usr_alice", "", func(e, _, s map[string]any) {
				delete(s, "session_id")
				s["logout_at"] = at(-time.Minute)
				e["occurred_at"] = at(0)
			})
		}, 0, map[string]bool{"alice1": false, "alice2": true, "bob": true}},
		{"status in upper case, as the reference's example spells it", func() string {
			return logoutEvent("usr_alice", "ses_1", func(_, _, s map[string]any) { s["status"] = "LOGOUT" })
		}, 0, map[string]bool{"alice1": false, "alice2": true, "bob": true}},
		{"status in lower case, as the session API spells it", func() string {
			return logoutEvent("usr_alice", "ses_1", func(_, _, s map[string]any) { s["status"] = "logout" })
		}, 0, map[string]bool{"alice1": false, "alice2": true, "bob": true}},
		{"status still ACTIVE, as in the reference's example of user.logout", func() string {
			return logoutEvent("usr_alice", "ses_1", func(_, _, s map[string]any) { s["status"] = "ACTIVE"; s["logout_at"] = nil })
		}, 0, map[string]bool{"alice1": false, "alice2": true, "bob": true}},
		{"an administrator's revocation: expired_at, no logout_at", func() string {
			return logoutEvent("usr_alice", "", func(e, _, s map[string]any) {
				delete(s, "session_id")
				s["status"], s["logout_at"], s["expired_at"] = "REVOKED", nil, at(-time.Minute)
				e["occurred_at"] = at(0)
			})
		}, 0, map[string]bool{"alice1": false, "alice2": true, "bob": true}},
		{"user only in user_session", func() string {
			return logoutEvent("usr_alice", "", func(_, d, s map[string]any) {
				delete(d, "user")
				s["session_id"] = nil
				s["logout_at"] = at(-time.Minute)
			})
		}, 0, map[string]bool{"alice1": false, "alice2": true, "bob": true}},
		{"no time in the event: the webhook-timestamp", func() string {
			return logoutEvent("usr_alice", "", func(e, d, _ map[string]any) { delete(d, "user_session"); delete(e, "occurred_at") })
		}, -time.Minute, map[string]bool{"alice1": false, "alice2": true, "bob": true}},
		{"logout_at ahead of our clock: now", func() string {
			return logoutEvent("usr_alice", "", func(_, _, s map[string]any) { s["session_id"] = ""; s["logout_at"] = at(time.Hour) })
		}, 0, map[string]bool{"alice1": false, "alice2": false, "bob": true}},
		{"unknown session", func() string { return logoutEvent("usr_alice", "ses_404", nil) }, 0,
			map[string]bool{"alice1": true, "alice2": true, "bob": true}},
	}
	for _, cookie := range []bool{false, true} {
		for _, tt := range tests {
			t.Run(storeName(cookie)+"/"+tt.name, func(t *testing.T) {
				e := newWHEnv(t, cookie)
				checkAnswer(t, e.post(newDelivery(e.secret, tt.event(), time.Now().Add(tt.sent))), http.StatusOK, "")
				for name, want := range tt.alive {
					if got := e.alive(t, name); got != want {
						t.Errorf("%s alive = %v, want %v", name, got, want)
					}
				}
				// The user signs in again once the delivery is handled (a
				// millisecond later: sessions are timed to the millisecond,
				// and one begun at the logout's instant is ended with it).
				again := e.save(t, "usr_alice", "ses_4", time.Now().Add(time.Millisecond))
				if !aliveIn(t, e.store, again) {
					t.Error("a sign-in made after the logout was ended")
				}
				if strings.Contains(e.logSink.String(), e.secret[len("whsec_"):]) {
					t.Error("the secret reached the log")
				}
			})
		}
	}
}

// A replayed webhook-id, on another instance sharing the store, ends
// nothing and tells the sender to stop; a new id with the same body is a new
// event.
func TestWebhookReplayOnAnotherInstance(t *testing.T) {
	for _, cookie := range []bool{false, true} {
		t.Run(storeName(cookie), func(t *testing.T) {
			e := newWHEnv(t, cookie)
			otherStore, other := e.instance(t)
			second := newWebhookHandler(t, otherStore, &logSink{}, e.secret)

			body := logoutEvent("usr_alice", "ses_1", nil)
			d := newDelivery(e.secret, body, time.Now())
			checkAnswer(t, e.post(d), http.StatusOK, "")
			if e.alive(t, "alice1") || e.ends.calls.Load() != 1 {
				t.Fatalf("first delivery: alice1 alive %v, %d calls", e.alive(t, "alice1"), e.ends.calls.Load())
			}
			checkAnswer(t, postWebhook(second, d), http.StatusOK, "")
			d.resign(e.secret, time.Now()) // the sender's retry: same id, new timestamp
			checkAnswer(t, postWebhook(second, d), http.StatusOK, "")
			checkAnswer(t, e.post(d), http.StatusOK, "")
			if got := other.calls.Load() + e.ends.calls.Load(); got != 1 {
				t.Errorf("ending calls after replays: %d, want 1", got)
			}
			fresh := newDelivery(e.secret, body, time.Now())
			fresh.id += "b"
			fresh.resignKeepTime(e.secret)
			checkAnswer(t, postWebhook(second, fresh), http.StatusOK, "")
			if got := other.calls.Load(); got != 1 {
				t.Errorf("a new id on the second instance: %d ending calls, want 1", got)
			}
		})
	}
}

// A handled webhook-id is remembered while a replay of its signature could
// pass the timestamp check on some instance (ours, or one whose clock runs a
// Tolerance behind), and then forgotten, so the store does not grow.
func TestWebhookRemembersIDsWhileTheyCouldPass(t *testing.T) {
	for _, cookie := range []bool{false, true} {
		t.Run(storeName(cookie), func(t *testing.T) {
			e := newWHEnv(t, cookie)
			d := newDelivery(e.secret, logoutEvent("usr_alice", "ses_1", nil), time.Now().Add(-4*time.Minute))
			checkAnswer(t, e.post(d), http.StatusOK, "")
			// Our clock passes the signature's window at +1 minute; a
			// clock 5 minutes behind ours, at +6.
			e.mini.FastForward(5*time.Minute + 30*time.Second)
			d.resign(e.secret, time.Now())
			checkAnswer(t, e.post(d), http.StatusOK, "")
			if got := e.ends.calls.Load(); got != 1 {
				t.Errorf("ending calls 5m30s later: %d, want 1 (the id was forgotten too soon)", got)
			}
			e.mini.FastForward(time.Minute)
			checkAnswer(t, e.post(d), http.StatusOK, "")
			if got := e.ends.calls.Load(); got != 2 {
				t.Errorf("ending calls 6m30s later: %d, want 2 (the id was kept too long)", got)
			}
		})
	}
}

// During a rotation every listed secret is accepted, from whichever entry
// of the signature header carries it.
func TestWebhookSecretRotation(t *testing.T) {
	old, current, stranger := newWebhookSecret(), newWebhookSecret(), newWebhookSecret()
	sig := func(secret string, d delivery) string {
		return "v1," + webhookSignature(secret, d.id, d.timestamp, d.body)
	}
	tests := []struct {
		name      string
		signature func(d delivery) string
		want      int
	}{
		{"old secret", func(d delivery) string { return sig(old, d) }, http.StatusOK},
		{"new secret", func(d delivery) string { return sig(current, d) }, http.StatusOK},
		{"both, new first", func(d delivery) string { return sig(current, d) + " " + sig(old, d) }, http.StatusOK},
		{"stranger's, then old", func(d delivery) string { return sig(stranger, d) + " " + sig(old, d) }, http.StatusOK},
		{"v1a and garbage, then new", func(d delivery) string { return "v1a,AAAA v1,AAAA " + sig(current, d) }, http.StatusOK},
		{"two headers", func(d delivery) string { return sig(stranger, d) + "\n" + sig(current, d) }, http.StatusOK},
		{"stranger's only", func(d delivery) string { return sig(stranger, d) }, http.StatusUnauthorized},
		{"stranger's twice", func(d delivery) string { return sig(stranger, d) + " " + sig(stranger, d) }, http.StatusUnauthorized},
	}
	for _, cookie := range []bool{false, true} {
		for _, tt := range tests {
			t.Run(storeName(cookie)+"/"+tt.name, func(t *testing.T) {
				e := newWHEnv(t, cookie)
				wh := newWebhookHandler(t, e.store, e.logSink, current, old)
				d := newDelivery(current, logoutEvent("usr_alice", "ses_1", nil), time.Now())
				r := httptest.NewRequest(http.MethodPost, "/webhooks/scalekit", strings.NewReader(string(d.body)))
				r.Header.Set("webhook-id", d.id)
				r.Header.Set("webhook-timestamp", d.timestamp)
				for _, v := range strings.Split(tt.signature(d), "\n") {
					r.Header.Add("webhook-signature", v)
				}
				resp := serve(wh, r)
				if resp.StatusCode != tt.want {
					t.Errorf("got %d, want %d", resp.StatusCode, tt.want)
				}
				if ended := !e.alive(t, "alice1"); ended != (tt.want == http.StatusOK) {
					t.Errorf("alice1 ended = %v, want %v", ended, tt.want == http.StatusOK)
				}
			})
		}
	}
}

// While the store is down the answer is 503, so the sender retries; the
// retry, with the same id, ends the session once the store is back.
func TestWebhookStoreDown(t *testing.T) {
	for _, cookie := range []bool{false, true} {
		t.Run(storeName(cookie), func(t *testing.T) {
			e := newWHEnv(t, cookie)
			d := newDelivery(e.secret, logoutEvent("usr_alice", "ses_1", nil), time.Now())
			e.mini.SetError("LOADING Redis is loading the dataset in memory")
			checkAnswer(t, e.post(d), http.StatusServiceUnavailable, "session store unavailable")
			e.mini.SetError("")
			d.resign(e.secret, time.Now())
			checkAnswer(t, e.post(d), http.StatusOK, "")
			if e.alive(t, "alice1") {
				t.Error("alice1 alive after the retried delivery")
			}
			if !strings.Contains(e.logSink.String(), "the provider will retry") {
				t.Error("the store failure was not logged")
			}
		})
	}
}

// A delivery whose ending landed but whose reply was lost is answered 503
// and its id is not remembered: the retry ends the sessions again rather
// than being taken for a replay.
func TestWebhookRetryAfterLostReply(t *testing.T) {
	for _, cookie := range []bool{false, true} {
		t.Run(storeName(cookie), func(t *testing.T) {
			e := newWHEnv(t, cookie)
			d := newDelivery(e.secret, logoutEvent("usr_alice", "", func(_, d, _ map[string]any) { delete(d, "user_session") }), time.Now())
			e.ends.loseReply.Store(true)
			checkAnswer(t, e.post(d), http.StatusServiceUnavailable, "session store unavailable")
			d.resign(e.secret, time.Now())
			checkAnswer(t, e.post(d), http.StatusOK, "")
			if got := e.ends.calls.Load(); got != 2 {
				t.Errorf("ending calls: %d, want 2 (the retry was taken for a replay)", got)
			}
			if e.alive(t, "alice1") || e.alive(t, "alice2") || !e.alive(t, "bob") {
				t.Error("the retry did not end exactly alice's sessions")
			}
		})
	}
}

// Event types the handler does not act on are acknowledged and touch
// nothing, whatever their data looks like.
func TestWebhookIgnoresOtherEvents(t *testing.T) {
	for _, body := range []string{
		logoutEvent("usr_alice", "ses_1", func(e, _, _ map[string]any) { e["type"] = "user.login" }),
		`{"type":"organization.created","data":"not an object"}`,
		`{"type":"USER.LOGOUT","data":{"user_session":{"session_id":"ses_1"}}}`,
	} {
		e := newWHEnv(t, true)
		noteSecret(body)
		checkAnswer(t, e.post(newDelivery(e.secret, body, time.Now())), http.StatusOK, "")
		if !e.allAlive(t) || e.ends.calls.Load() != 0 {
			t.Errorf("%.40s…: an ignored event ended sessions", body)
		}
	}
}

func TestWebhookConfig(t *testing.T) {
	secret := newWebhookSecret()
	store := newMiniStore(t)
	short := "whsec_" + base64.StdEncoding.EncodeToString([]byte("fifteen bytes!!"))
	for name, cfg := range map[string]logout.WebhookConfig{
		"no secrets":                {Issuer: whIssuer, Store: store},
		"secret without whsec_":     {Secrets: []string{strings.TrimPrefix(secret, "whsec_")}, Issuer: whIssuer, Store: store},
		"secret not base64":         {Secrets: []string{"whsec_not base64!"}, Issuer: whIssuer, Store: store},
		"secret with a space":       {Secrets: []string{secret[:10] + " " + secret[10:]}, Issuer: whIssuer, Store: store},
		"secret too short":          {Secrets: []string{short}, Issuer: whIssuer, Store: store},
		"one bad secret of two":     {Secrets: []string{secret, "whsec_"}, Issuer: whIssuer, Store: store},
		"no issuer":                 {Secrets: []string{secret}, Store: store},
		"plain http issuer":         {Secrets: []string{secret}, Issuer: "http://acme.scalekit.dev", Store: store},
		"no store":                  {Secrets: []string{secret}, Issuer: whIssuer},
		"cookie store without list": {Secrets: []string{secret}, Issuer: whIssuer, Store: newCookieStore(t)},
		"negative tolerance":        {Secrets: []string{secret}, Issuer: whIssuer, Store: store, Tolerance: -time.Second},
		"negative store timeout":    {Secrets: []string{secret}, Issuer: whIssuer, Store: store, StoreTimeout: -time.Second},
	} {
		_, err := logout.NewWebhookHandler(cfg)
		if err == nil || !strings.HasPrefix(err.Error(), "logout: ") {
			t.Errorf("%s: %v, want a logout: error", name, err)
			continue
		}
		if strings.Contains(err.Error(), secret[len("whsec_"):]) || strings.Contains(err.Error(), short[len("whsec_"):]) {
			t.Errorf("%s: the error quotes the secret", name)
		}
	}
	key := newKey(t) // 32 bytes: base64 with one "=" of padding
	padded, unpadded := "whsec_"+base64.StdEncoding.EncodeToString(key), "whsec_"+base64.RawStdEncoding.EncodeToString(key)
	noteSecret(padded[len("whsec_"):])
	if _, err := logout.NewWebhookHandler(logout.WebhookConfig{Secrets: []string{padded, unpadded}, Issuer: whIssuer, Store: store}); err != nil {
		t.Errorf("padded and unpadded secrets: %v, want accepted", err)
	}
}

// The fake Scalekit itself delivers the webhook, signed with its secret,
// over real HTTP, to one of two app instances sharing a real Redis: a
// session revoked at the provider is gone on both, and the user's session on
// another device stays.
func TestWebhookFromScalekit(t *testing.T) {
	for _, cookie := range []bool{false, true} {
		t.Run(storeName(cookie), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			prefix := keyPrefix(t, realRedis(t))
			key := newKey(t)
			instance := func() (*logout.Handler, logout.SessionStore, *http.ServeMux, *httptest.Server) {
				rdb := realRedis(t) // each instance has its own client
				var store logout.SessionStore
				if cookie {
					list := logout.NewRevocationList(rdb)
					list.KeyPrefix = prefix
					s, err := logout.NewRevocableCookieStore(list, key)
					if err != nil {
						t.Fatal(err)
					}
					store = s
				} else {
					s := logout.NewRedisStore(rdb)
					s.KeyPrefix = prefix
					store = s
				}
				h, _ := newHandler(t, store, func(c *logout.Config) { c.Cookie.InsecureHTTP = true })
				mux := http.NewServeMux()
				app := httptest.NewServer(mux)
				t.Cleanup(app.Close)
				return h, store, mux, app
			}
			hA, storeA, muxA, appA := instance()
			hB, storeB, muxB, appB := instance()

			// The provider delivers to instance B; users sign in on A.
			fake, err := scalekittest.New(scalekittest.Config{WebhookURLs: []string{appB.URL + "/webhooks/scalekit"}})
			if err != nil {
				t.Fatal(err)
			}
			defer fake.Close()
			noteSecret(fake.WebhookSecret())
			for mux, store := range map[*http.ServeMux]logout.SessionStore{muxA: storeA, muxB: storeB} {
				wh, err := logout.NewWebhookHandler(logout.WebhookConfig{Secrets: []string{fake.WebhookSecret()}, Issuer: fake.Issuer(), Store: store, Logger: newLogger(&logSink{})})
				if err != nil {
					t.Fatal(err)
				}
				mux.Handle("POST /webhooks/scalekit", wh)
			}
			signInRoutes(t, ctx, fake, muxA, appA.URL, hA)

			signInAs := func(email string) []*http.Cookie {
				resp, err := fake.SignIn(ctx, scalekittest.NewBrowser(), appA.URL+"/login", email)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				for _, c := range resp.Cookies() {
					noteSecret(c.Value)
				}
				return resp.Cookies()
			}
			laptop, phone := signInAs("ada@example.com"), signInAs("ada@example.com")
			ses, err := currentSession(hB, laptop)
			if err != nil {
				t.Fatalf("the laptop's session on instance B: %v", err)
			}

			revoked := time.Now()
			if _, err := fake.RevokeSession(ses.SessionID); err != nil {
				t.Fatal(err)
			}
			if err := fake.WaitDeliveries(ctx); err != nil {
				t.Fatal(err)
			}
			t.Logf("revoked at the provider to delivered and handled: %v", time.Since(revoked))
			ds := fake.Deliveries()
			if len(ds) != 1 || ds[0].Kind != scalekittest.WebhookDelivery || !ds[0].Delivered || ds[0].LastStatus != http.StatusOK || ds[0].Attempts != 1 {
				t.Fatalf("deliveries %+v, want one webhook delivered at the first attempt with 200", ds)
			}
			for name, h := range map[string]*logout.Handler{"instance A": hA, "instance B": hB} {
				if _, err := currentSession(h, laptop); !errors.Is(err, logout.ErrNoSession) {
					t.Errorf("the revoked session on %s: %v, want ErrNoSession", name, err)
				}
				if _, err := currentSession(h, phone); err != nil {
					t.Errorf("the phone's session on %s: %v, want alive", name, err)
				}
			}
		})
	}
}

// signInRoutes adds the sign-in of an app to mux: /login sends the browser
// to the provider, /callback exchanges the code, verifies the ID token and
// starts the session through h.
func signInRoutes(t *testing.T, ctx context.Context, fake *scalekittest.Server, mux *http.ServeMux, appURL string, h *logout.Handler) {
	t.Helper()
	if err := fake.AddClient(scalekittest.Client{ID: "skc_app", Secret: "app-secret", RedirectURIs: []string{appURL + "/callback"}}); err != nil {
		t.Fatal(err)
	}
	provider, err := oidc.NewProvider(ctx, fake.Issuer())
	if err != nil {
		t.Fatal(err)
	}
	verifier := provider.Verifier(&oidc.Config{ClientID: "skc_app"})
	conf := oauth2.Config{ClientID: "skc_app", ClientSecret: "app-secret", RedirectURL: appURL + "/callback",
		Endpoint: provider.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "email"}}
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, conf.AuthCodeURL("state"), http.StatusFound)
	})
	mux.HandleFunc("GET /callback", func(w http.ResponseWriter, r *http.Request) {
		tok, err := conf.Exchange(r.Context(), r.URL.Query().Get("code"))
		if err != nil {
			http.Error(w, "exchange failed", http.StatusBadGateway)
			return
		}
		raw, _ := tok.Extra("id_token").(string)
		idToken, err := verifier.Verify(r.Context(), raw)
		if err != nil {
			http.Error(w, "bad ID token", http.StatusBadGateway)
			return
		}
		var claims struct {
			Sid   string `json:"sid"`
			Email string `json:"email"`
		}
		idToken.Claims(&claims)
		noteSecret(raw)
		noteSecret(tok.AccessToken)
		s := logout.Session{Issuer: idToken.Issuer, Subject: idToken.Subject, SessionID: claims.Sid, Email: claims.Email,
			IDToken: raw, AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken}
		if err := h.StartSession(w, r, s); err != nil {
			http.Error(w, "session not started", http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "signed in")
	})
}

// Scalekit delivers a user.logout event when a session ends there; the app
// session opened under it ends on every instance sharing the store.
func ExampleNewWebhookHandler() {
	// The app's Redis (an in-process one here) and a fake Scalekit that
	// sends its webhooks to the app.
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		panic(err)
	}
	defer mr.Close()
	store := logout.NewRedisStore(redis.NewClient(&redis.Options{Addr: mr.Addr()}))
	mux := http.NewServeMux()
	app := httptest.NewServer(mux)
	defer app.Close()
	fake, err := scalekittest.New(scalekittest.Config{WebhookURLs: []string{app.URL + "/webhooks/scalekit"}})
	if err != nil {
		panic(err)
	}
	defer fake.Close()

	wh, err := logout.NewWebhookHandler(logout.WebhookConfig{
		Secrets: []string{fake.WebhookSecret()}, // in production: the dashboard's "whsec_…"
		Issuer:  fake.Issuer(),                  // https://acme.scalekit.dev
		Store:   store,
	})
	if err != nil {
		panic(err)
	}
	mux.Handle("POST /webhooks/scalekit", wh)

	// Ada signs in (the login_hint shortcut of the fake skips the form) and
	// the app saves her session, as its sign-in callback would.
	fake.AddClient(scalekittest.Client{ID: "skc_app", Secret: "app-secret", RedirectURIs: []string{app.URL + "/callback"}})
	noRedirects := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirects.Get(fake.URL + "/oauth/authorize?client_id=skc_app&response_type=code&scope=openid" +
		"&redirect_uri=" + app.URL + "/callback&login_hint=ada@example.com")
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	ada := fake.User("ada@example.com")
	ses := fake.Sessions(ada.ID)[0]
	ctx := context.Background()
	token, err := store.Save(ctx, logout.Session{Issuer: fake.Issuer(), Subject: ada.ID, SessionID: ses.ID, Expiry: time.Now().Add(time.Hour)})
	if err != nil {
		panic(err)
	}

	// An admin revokes her Scalekit session; the webhook ends the app's.
	fake.RevokeSession(ses.ID)
	fake.WaitDeliveries(ctx)
	_, err = store.Load(ctx, token)
	fmt.Println(fake.Deliveries()[0].LastStatus, err)
	// Output:
	// 200 logout: no session
}

// TestWebhookCommandCounts counts, on a redis-server of its own, the Redis
// commands one delivery costs: the id's lookup, the ending, the id's record.
func TestWebhookCommandCounts(t *testing.T) {
	srv := startRedisServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rdb.Close() })
	counter := newCommandCounter(t, srv.Addr)
	secret := newWebhookSecret()
	sidEvent := logoutEvent("usr_alice", "ses_1", nil)
	userEvent := logoutEvent("usr_alice", "", func(_, d, _ map[string]any) { delete(d, "user_session") })
	tests := []struct {
		name   string
		cookie bool
		body   string
		want   int
	}{
		{"redis, session named", false, sidEvent, 4}, // EXISTS, GET (the sid's user), EVAL, SET
		{"redis, user named", false, userEvent, 3},   // EXISTS, EVAL, SET
		{"cookie, session named", true, sidEvent, 3}, // EXISTS, EVAL, SET
		{"cookie, user named", true, userEvent, 3},
	}
	for _, tt := range tests {
		store := countedStore(t, rdb, tt.cookie, newKey(t), &endCounter{})
		wh := newWebhookHandler(t, store, &logSink{}, secret)
		s := testSession()
		s.Issuer, s.Subject, s.SessionID = whIssuer, "usr_alice", "ses_1"
		store.Save(context.Background(), s)
		counter.Reset(t)
		d := newDelivery(secret, tt.body, time.Now())
		if resp := postWebhook(wh, d); resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d", tt.name, resp.StatusCode)
		}
		got := counter.Count(t)
		if total(got) != tt.want {
			t.Errorf("%s: %d commands %v, want %d", tt.name, total(got), got, tt.want)
		}
		postWebhook(wh, d)
		if got := counter.Count(t); total(got) != 1 {
			t.Errorf("%s, replayed: %d commands %v, want 1 (EXISTS)", tt.name, total(got), got)
		}
		t.Logf("%s: %v", tt.name, got)
	}
}

// BenchmarkWebhookForgedDelivery is what a forged delivery costs the
// receiver: one HMAC per secret over a typical event, and no store call.
func BenchmarkWebhookForgedDelivery(b *testing.B) {
	e := newWHEnv(b, false)
	wh, err := logout.NewWebhookHandler(logout.WebhookConfig{Secrets: []string{e.secret, newWebhookSecret()}, Issuer: whIssuer, Store: e.store, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	d := newDelivery(newWebhookSecret(), logoutEvent("usr_alice", "ses_1", nil), time.Now())
	b.ReportAllocs()
	for b.Loop() {
		if resp := postWebhook(wh, d); resp.StatusCode != http.StatusUnauthorized {
			b.Fatalf("status %d, want 401", resp.StatusCode)
		}
	}
	if got := e.ends.calls.Load(); got != 0 {
		b.Errorf("ending calls: got %d, want 0", got)
	}
}
