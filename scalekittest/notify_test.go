// SPDX-License-Identifier: Apache-2.0

package scalekittest_test

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/endsession/logout/scalekittest"
)

// receiver records what the server delivers to it. A path listed in fail
// answers 503 that many times before it answers 200, or the status ok says
// for that path.
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	got  []received
	fail map[string]int
	ok   map[string]int
}

type received struct {
	path   string
	header http.Header
	body   []byte
	form   url.Values
}

func newReceiver(t testing.TB) *receiver {
	rc := &receiver{fail: map[string]int{}, ok: map[string]int{}}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(b))
		rc.mu.Lock()
		rc.got = append(rc.got, received{path: r.URL.Path, header: r.Header.Clone(), body: b, form: form})
		failing := rc.fail[r.URL.Path] > 0
		if failing {
			rc.fail[r.URL.Path]--
		}
		status := cmp.Or(rc.ok[r.URL.Path], http.StatusOK)
		rc.mu.Unlock()
		if failing {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) failNext(path string, times int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.fail[path] = times
}

// answer makes path answer status instead of 200.
func (rc *receiver) answer(path string, status int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.ok[path] = status
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

// paths lists the paths that were called, sorted, once each.
func (rc *receiver) paths() []string {
	var out []string
	for _, r := range rc.requests() {
		out = append(out, r.path)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func settle(t testing.TB, s *scalekittest.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitDeliveries(ctx); err != nil {
		t.Fatal(err)
	}
}

// verifyStandardWebhook checks a delivery the way Standard Webhooks (and
// Scalekit's SDKs) do, written here from the specification.
func verifyStandardWebhook(secret string, h http.Header, body []byte) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(h.Get("webhook-id") + "." + h.Get("webhook-timestamp") + "." + string(body)))
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		if v, s, _ := strings.Cut(sig, ","); v == "v1" && hmac.Equal([]byte(s), []byte(want)) {
			return true
		}
	}
	return false
}

func TestWebhookIsAStandardWebhook(t *testing.T) {
	hooks := newReceiver(t)
	s := newServer(t, scalekittest.Config{WebhookURLs: []string{hooks.URL + "/hook"}, WebhookSecret: "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHM="})
	_, tok := signIn(t, s, "ada@example.com")
	sid := claimsOf(t, tok.IDToken)["sid"].(string)
	if _, err := s.RevokeSession(sid); err != nil {
		t.Fatal(err)
	}
	settle(t, s)
	reqs := hooks.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d webhook requests, want 1", len(reqs))
	}
	r := reqs[0]
	if s.WebhookSecret() != "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHM=" || !verifyStandardWebhook(s.WebhookSecret(), r.header, r.body) {
		t.Fatalf("signature %q does not verify with the secret", r.header.Get("webhook-signature"))
	}
	if verifyStandardWebhook("whsec_b3RoZXI=", r.header, r.body) {
		t.Fatal("the signature verifies with another secret too")
	}
	var event struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	}
	if err := json.Unmarshal(r.body, &event); err != nil {
		t.Fatal(err)
	}
	if event.Type != "user.logout" || event.ID != r.header.Get("webhook-id") || !strings.HasPrefix(event.ID, "evt_") {
		t.Errorf("event %+v", event)
	}
}

// The user.logout event has every member of the API reference's example
// (developer-docs openapi/scalekit.yaml, webhooks user.logout), for each way
// a session ends: an administrator's revocation and a timeout set
// expired_at, the user's logout sets logout_at, and the status is upper case
// as in the example, or lower case as the session API spells it.
func TestWebhookPayloadIsTheReferenceExample(t *testing.T) {
	for _, lower := range []bool{false, true} {
		hooks := newReceiver(t)
		s := newServer(t, scalekittest.Config{WebhookURLs: []string{hooks.URL + "/hook"}, WebhookLowerCaseStatus: lower,
			Users: []scalekittest.User{{Email: "ada@example.com", ExternalID: "ext_42", Metadata: map[string]string{"plan": "pro"}}}})
		app := newApp(t, s, "skc_app")
		ends := map[string]string{}
		for _, how := range []string{"revoked", "expired", "logout"} {
			browser := scalekittest.NewBrowser()
			sid := signInBody(t, s, browser, app.URL+"/login", "ada@example.com")
			var err error
			switch how {
			case "revoked":
				_, err = s.RevokeSession(sid)
			case "expired":
				_, err = s.ExpireSession(sid)
			case "logout":
				var resp *http.Response
				if resp, err = browser.Get(s.URL + "/oidc/logout"); err == nil {
					resp.Body.Close()
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			ends[sid] = how
		}
		settle(t, s)
		if got := len(hooks.requests()); got != 3 {
			t.Fatalf("%d webhooks, want 3", got)
		}
		for _, r := range hooks.requests() {
			var ev map[string]any
			if err := json.Unmarshal(r.body, &ev); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"spec_version", "id", "type", "object", "occurred_at", "environment_id", "organization_id", "data", "display_name"} {
				if _, ok := ev[k]; !ok {
					t.Errorf("event has no %s: %s", k, r.body)
				}
			}
			data := ev["data"].(map[string]any)
			us, u := data["user_session"].(map[string]any), data["user"].(map[string]any)
			for _, k := range []string{"session_id", "user_id", "organization_id", "status", "created_at", "updated_at", "last_active_at",
				"idle_expires_at", "absolute_expires_at", "expired_at", "logout_at", "authenticated_organizations", "device"} {
				if _, ok := us[k]; !ok {
					t.Errorf("user_session has no %s: %s", k, r.body)
				}
			}
			for _, k := range []string{"id", "email", "create_time", "update_time", "last_login_time", "external_id", "metadata", "user_profile"} {
				if _, ok := u[k]; !ok {
					t.Errorf("user has no %s: %s", k, r.body)
				}
			}
			how := ends[us["session_id"].(string)]
			want := strings.ToUpper(how)
			if lower {
				want = how
			}
			profile, _ := u["user_profile"].(map[string]any)
			profileID, _ := profile["id"].(string)
			// Only expired_at and logout_at may be null (UserAuthEventData);
			// the example's device.location is an object, and its
			// external identity has a provider and a sync time.
			for _, k := range []string{"created_at", "updated_at", "last_active_at", "idle_expires_at", "absolute_expires_at"} {
				if _, ok := us[k].(string); !ok {
					t.Errorf("%s: user_session.%s is %v, want a time", how, k, us[k])
				}
			}
			loc, _ := us["device"].(map[string]any)["location"].(map[string]any)
			for _, k := range []string{"city", "latitude", "longitude", "region", "region_subdivision"} {
				if _, ok := loc[k].(string); !ok {
					t.Errorf("device.location.%s is %v, want a string, in %v", k, loc[k], us["device"])
				}
			}
			ids, _ := profile["external_identities"].([]any)
			if len(ids) != 1 {
				t.Fatalf("external_identities %v, want one", profile["external_identities"])
			}
			id := ids[0].(map[string]any)
			for _, k := range []string{"connection_id", "connection_type", "connection_provider", "connection_user_id", "created_time", "last_login_time", "last_synced_time"} {
				if v, ok := id[k].(string); !ok || v == "" {
					t.Errorf("external identity's %s is %v, want a string", k, id[k])
				}
			}
			switch {
			case ev["display_name"] != "User Logout" || ev["object"] != "User" || ev["spec_version"] != "1":
				t.Errorf("envelope %v", ev)
			case us["status"] != want:
				t.Errorf("%s: status %v, want %s", how, us["status"], want)
			case (how == "logout") != (us["logout_at"] != nil) || (how == "logout") == (us["expired_at"] != nil):
				t.Errorf("%s: expired_at %v, logout_at %v; want logout_at only for a logout, expired_at otherwise", how, us["expired_at"], us["logout_at"])
			case u["external_id"] != "ext_42" || u["metadata"].(map[string]any)["plan"] != "pro" || u["last_login_time"] == nil:
				t.Errorf("user %v", u)
			case !regexp.MustCompile(`^usp_[0-9]+$`).MatchString(profileID) || profile["given_name"] != "Ada":
				t.Errorf("user_profile %v", profile)
			}
		}
	}
}

// Failed deliveries are retried on their own, a bounded number of times,
// and the revocation that caused them succeeded all the same.
func TestDeliveriesRetryAndGiveUp(t *testing.T) {
	rc := newReceiver(t)
	s := newServer(t, scalekittest.Config{WebhookURLs: []string{rc.URL + "/flaky", rc.URL + "/down"}, DeliveryRetryDelays: []time.Duration{time.Millisecond, time.Millisecond}})
	if err := s.AddClient(scalekittest.Client{ID: "skc_1", Secret: "secret", RedirectURIs: []string{callback}, BackChannelLogoutURIs: []string{rc.URL + "/bc"}}); err != nil {
		t.Fatal(err)
	}
	rc.failNext("/flaky", 2)
	rc.failNext("/bc", 1)
	rc.failNext("/down", 100)
	_, tok := signIn(t, s, "ada@example.com")
	ses, err := s.RevokeSession(claimsOf(t, tok.IDToken)["sid"].(string))
	if err != nil || ses.Status != scalekittest.StatusRevoked {
		t.Fatalf("revoke: %v, %v", ses.Status, err)
	}
	settle(t, s)
	got := map[string]scalekittest.Delivery{}
	for _, d := range s.Deliveries() {
		got[strings.TrimPrefix(d.URL, rc.URL)] = d
	}
	tests := []struct {
		path      string
		attempts  int
		delivered bool
	}{
		{"/bc", 2, true},
		{"/flaky", 3, true},
		{"/down", 3, false},
	}
	for _, tt := range tests {
		d := got[tt.path]
		if d.Attempts != tt.attempts || d.Delivered != tt.delivered || !d.Done {
			t.Errorf("%s: %d attempts, delivered %v, done %v; want %d, %v, true", tt.path, d.Attempts, d.Delivered, d.Done, tt.attempts, tt.delivered)
		}
	}
	if d := got["/down"]; d.LastStatus != http.StatusServiceUnavailable {
		t.Errorf("last status %d, want 503", d.LastStatus)
	}
	if h := got["/flaky"].History; len(h) != 3 || h[0].Status != 503 || h[1].Status != 503 || h[2].Status != 200 || h[2].At.Before(h[0].At) {
		t.Errorf("history of /flaky %+v, want 503, 503, 200 in order", h)
	}
}

// Scalekit's webhook guide counts 200, 201 and 202 as delivered, its log
// guide any 2xx (WebhookAny2xx); a back-channel logout token is delivered
// by 200, or 204, which OpenID Connect Back-Channel Logout asks providers
// to accept. Any other answer is retried.
func TestDeliveredAnswers(t *testing.T) {
	tests := []struct {
		status                         int
		webhook, webhookAny, backChann bool
	}{
		{http.StatusOK, true, true, true},
		{http.StatusCreated, true, true, false},
		{http.StatusAccepted, true, true, false},
		{http.StatusNoContent, false, true, true},
		{http.StatusResetContent, false, true, false},
		{http.StatusFound, false, false, false},
		{http.StatusServiceUnavailable, false, false, false},
	}
	for _, tt := range tests {
		for _, any2xx := range []bool{false, true} {
			rc := newReceiver(t)
			rc.answer("/hook", tt.status)
			rc.answer("/bc", tt.status)
			s := newServer(t, scalekittest.Config{WebhookURLs: []string{rc.URL + "/hook"}, WebhookAny2xx: any2xx, DeliveryRetryDelays: []time.Duration{time.Millisecond}})
			if err := s.AddClient(scalekittest.Client{ID: "skc_1", Secret: "secret", RedirectURIs: []string{callback}, BackChannelLogoutURIs: []string{rc.URL + "/bc"}}); err != nil {
				t.Fatal(err)
			}
			_, tok := signIn(t, s, "ada@example.com")
			if _, err := s.RevokeSession(claimsOf(t, tok.IDToken)["sid"].(string)); err != nil {
				t.Fatal(err)
			}
			settle(t, s)
			webhook := tt.webhook
			if any2xx {
				webhook = tt.webhookAny
			}
			for _, d := range s.Deliveries() {
				want := map[scalekittest.DeliveryKind]bool{scalekittest.WebhookDelivery: webhook, scalekittest.BackChannelDelivery: tt.backChann}[d.Kind]
				attempts := map[bool]int{true: 1, false: 2}[want]
				if d.Delivered != want || d.Attempts != attempts || d.LastStatus != tt.status {
					t.Errorf("%d to a %s (WebhookAny2xx %v): delivered %v after %d attempts (last %d); want %v after %d",
						tt.status, d.Kind, any2xx, d.Delivered, d.Attempts, d.LastStatus, want, attempts)
				}
			}
		}
	}
}

// An attempt the receiver does not answer within the delivery timeout
// (10 seconds by default, the webhook guide's window) fails.
func TestDeliveryTimeout(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	s := newServer(t, scalekittest.Config{WebhookURLs: []string{slow.URL}, DeliveryTimeout: 50 * time.Millisecond, DeliveryRetryDelays: []time.Duration{}})
	_, tok := signIn(t, s, "ada@example.com")
	if _, err := s.RevokeSession(claimsOf(t, tok.IDToken)["sid"].(string)); err != nil {
		t.Fatal(err)
	}
	settle(t, s)
	ds := s.Deliveries()
	if len(ds) != 1 || ds[0].Delivered || ds[0].Attempts != 1 || !strings.Contains(ds[0].LastError, "deadline") {
		t.Errorf("deliveries %+v, want one attempt that timed out", ds)
	}
}

// Close abandons deliveries still waiting to be retried, without waiting
// for their retries.
func TestCloseAbandonsPendingRetries(t *testing.T) {
	rc := newReceiver(t)
	s, err := scalekittest.New(scalekittest.Config{WebhookURLs: []string{rc.URL + "/down"}, DeliveryRetryDelays: []time.Duration{time.Hour},
		Clients: []scalekittest.Client{{ID: "skc_1", Secret: "secret", RedirectURIs: []string{callback}}}})
	if err != nil {
		t.Fatal(err)
	}
	rc.failNext("/down", 100)
	_, tok := signIn(t, s, "ada@example.com")
	s.RevokeSession(claimsOf(t, tok.IDToken)["sid"].(string))
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for an hour-long retry")
	}
	if ds := s.Deliveries(); len(ds) != 1 || !ds[0].Done || ds[0].Delivered {
		t.Errorf("deliveries after Close: %+v", ds)
	}
}
