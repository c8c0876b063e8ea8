package scalekittest_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/endsession/logout/scalekittest"
)

// receiver records what the server delivers to it. A path listed in fail
// answers 503 that many times before it answers 200.
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	got  []received
	fail map[string]int
}

type received struct {
	path   string
	header http.Header
	body   []byte
	form   url.Values
}

func newReceiver(t testing.TB) *receiver {
	rc := &receiver{fail: map[string]int{}}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(b))
		rc.mu.Lock()
		rc.got = append(rc.got, received{path: r.URL.Path, header: r.Header.Clone(), body: b, form: form})
		failing := rc.fail[r.URL.Path] > 0
		if failing {
			rc.fail[r.URL.Path]--
		}
		rc.mu.Unlock()
		if failing {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) failNext(path string, times int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.fail[path] = times
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
		Data struct {
			User        struct{ ID, Email string }
			UserSession struct {
				SessionID string `json:"session_id"`
				Status    string `json:"status"`
				LogoutAt  string `json:"logout_at"`
			} `json:"user_session"`
		}
	}
	if err := json.Unmarshal(r.body, &event); err != nil {
		t.Fatal(err)
	}
	if event.Type != "user.logout" || event.ID != r.header.Get("webhook-id") || !strings.HasPrefix(event.ID, "evt_") ||
		event.Data.User.Email != "ada@example.com" || event.Data.UserSession.SessionID != sid ||
		event.Data.UserSession.Status != "revoked" || event.Data.UserSession.LogoutAt == "" {
		t.Errorf("event %+v", event)
	}
}

// Failed deliveries are retried on their own, a bounded number of times,
// and the revocation that caused them succeeded all the same.
func TestDeliveriesRetryAndGiveUp(t *testing.T) {
	rc := newReceiver(t)
	s := newServer(t, scalekittest.Config{WebhookURLs: []string{rc.URL + "/flaky", rc.URL + "/down"}, DeliveryAttempts: 3, DeliveryRetryDelay: time.Millisecond})
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
}

// Close abandons deliveries still waiting to be retried, without waiting
// for their retries.
func TestCloseAbandonsPendingRetries(t *testing.T) {
	rc := newReceiver(t)
	s, err := scalekittest.New(scalekittest.Config{WebhookURLs: []string{rc.URL + "/down"}, DeliveryRetryDelay: time.Hour,
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
