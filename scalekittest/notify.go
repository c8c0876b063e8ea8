// SPDX-License-Identifier: Apache-2.0

package scalekittest

// How the environment tells apps that a session ended: back-channel logout
// tokens and user.logout webhooks, delivered and retried in the background.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// BackChannelLogoutEvent is the event a back-channel logout token carries.
const BackChannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// DeliveryKind tells a back-channel logout token from a webhook event.
type DeliveryKind string

const (
	// BackChannelDelivery is an OpenID Connect back-channel logout token,
	// POSTed as a form to a client's back-channel logout URI.
	BackChannelDelivery DeliveryKind = "back-channel"
	// WebhookDelivery is a Standard Webhooks event, POSTed as JSON to a
	// webhook URL.
	WebhookDelivery DeliveryKind = "webhook"
)

// WebhookLogoutEvent is the type of the webhook event sent when a session
// ends.
const WebhookLogoutEvent = "user.logout"

// Delivery is one notification the server sent, or is still trying to send,
// when a session ended.
type Delivery struct {
	Kind      DeliveryKind
	URL       string
	ClientID  string // the client notified, for a back-channel delivery
	SessionID string
	UserID    string
	// Body is what each attempt posts: the form with the logout token, or
	// the webhook's JSON event.
	Body string
	// Attempts made so far, and how the last one went: the HTTP status it
	// got (0 if none) or the error. History has every attempt, in order.
	Attempts   int
	LastStatus int
	LastError  string
	History    []DeliveryAttempt
	Delivered  bool
	Done       bool // delivered, or out of attempts
}

// DeliveryAttempt is one attempt at a delivery: when it was made, and the
// receiver's answer (its HTTP status, or the error that stood for one, such
// as no answer within [Config.DeliveryTimeout]).
type DeliveryAttempt struct {
	At     time.Time
	Status int
	Error  string
}

// Deliveries returns every delivery so far, in the order they were queued.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Delivery, len(s.deliveries))
	for i, d := range s.deliveries {
		out[i] = *d
		out[i].History = slices.Clone(d.History)
	}
	return out
}

// WaitDeliveries waits until every delivery queued so far is delivered or
// out of attempts, or ctx ends.
func (s *Server) WaitDeliveries(ctx context.Context) error {
	for {
		s.mu.Lock()
		if s.inflight == 0 {
			s.mu.Unlock()
			return nil
		}
		settled := s.settled
		s.mu.Unlock()
		select {
		case <-settled:
		case <-ctx.Done():
			return fmt.Errorf("scalekittest: deliveries still pending: %w", ctx.Err())
		}
	}
}

// LogoutToken returns a signed back-channel logout token for the client,
// naming the user and (when not empty) the session. It is dated by the wall
// clock, not [Config.Now]: receivers check it against theirs as it arrives.
func (s *Server) LogoutToken(clientID, userID, sessionID string) (string, error) {
	now := time.Now()
	claims := map[string]any{
		"iss": s.URL, "aud": []string{clientID}, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
		"jti": "jti_" + randomText(), "events": map[string]any{BackChannelLogoutEvent: map[string]any{}},
	}
	if userID != "" {
		claims["sub"] = userID
	}
	if sessionID != "" {
		claims["sid"] = sessionID
	}
	return s.Sign(claims, "logout+jwt")
}

// SendLogoutToken POSTs a logout token to a back-channel logout URI once and
// expects 200 or 204.
func (s *Server) SendLogoutToken(ctx context.Context, uri, token string) error {
	d := &Delivery{Kind: BackChannelDelivery, URL: uri, Body: url.Values{"logout_token": {token}}.Encode()}
	status, err := s.post(ctx, d)
	if err != nil {
		return err
	}
	if status != http.StatusOK && status != http.StatusNoContent {
		return fmt.Errorf("scalekittest: back-channel logout to %s: status %d", uri, status)
	}
	return nil
}

// notifyLocked queues the notifications of an ended session: a logout token
// to each back-channel URI of each client it signed into, and a user.logout
// event to each webhook URL. The client whose logout at /oidc/logout ended
// the session is notified like the others: the back-channel logout URL is
// called "regardless of how the logout was initiated", the user's own
// logout included (developer-docs src/content/docs/guides/dashboard/
// redirects.mdx, "Back channel logout URL"), and no source leaves the
// initiating app out. The caller holds s.mu.
func (s *Server) notifyLocked(ses Session) {
	if s.closed {
		return
	}
	var queue []*Delivery
	for _, id := range ses.Clients {
		c := s.clients[id]
		if c == nil {
			continue
		}
		for _, uri := range c.BackChannelLogoutURIs {
			queue = append(queue, &Delivery{Kind: BackChannelDelivery, URL: uri, ClientID: id, SessionID: ses.ID, UserID: ses.UserID})
		}
	}
	if len(s.cfg.WebhookURLs) > 0 {
		event := s.logoutEvent(ses)
		for _, u := range s.cfg.WebhookURLs {
			queue = append(queue, &Delivery{Kind: WebhookDelivery, URL: u, SessionID: ses.ID, UserID: ses.UserID, Body: event})
		}
	}
	for _, d := range queue {
		if s.inflight == 0 {
			s.settled = make(chan struct{})
		}
		s.inflight++
		s.deliveries = append(s.deliveries, d)
		s.bg.Add(1)
		go s.deliver(d)
	}
}

// delivered reports whether a receiver's answer counts as delivered: for a
// webhook, 200, 201 or 202, the answers the webhook guide lists as success
// (developer-docs src/content/docs/authenticate/implement-workflows/
// implement-webhooks.mdx, "Return success responses"), or any 2xx with
// [Config.WebhookAny2xx]; for a back-channel logout token, 200, or 204,
// which OpenID Connect Back-Channel Logout 1.0 (section 2.8) asks providers
// to accept too.
func (s *Server) delivered(kind DeliveryKind, status int) bool {
	if kind == WebhookDelivery {
		if s.cfg.WebhookAny2xx {
			return status >= 200 && status <= 299
		}
		return status == http.StatusOK || status == http.StatusCreated || status == http.StatusAccepted
	}
	return status == http.StatusOK || status == http.StatusNoContent
}

// deliver makes the attempts at one delivery, off the path of whatever ended
// the session, waiting [Config.DeliveryRetryDelays] between them.
func (s *Server) deliver(d *Delivery) {
	defer s.bg.Done()
	defer func() {
		s.mu.Lock()
		d.Done = true
		if s.inflight--; s.inflight == 0 {
			close(s.settled)
		}
		s.mu.Unlock()
	}()
	if d.Kind == BackChannelDelivery {
		token, err := s.LogoutToken(d.ClientID, d.UserID, d.SessionID)
		if err != nil {
			s.mu.Lock()
			d.LastError = err.Error()
			s.mu.Unlock()
			return
		}
		s.mu.Lock()
		d.Body = url.Values{"logout_token": {token}}.Encode()
		s.mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for attempt := 1; ; attempt++ {
		at := time.Now()
		attemptCtx, done := context.WithTimeout(ctx, s.cfg.DeliveryTimeout)
		status, err := s.post(attemptCtx, d)
		done()
		ok := err == nil && s.delivered(d.Kind, status)
		s.mu.Lock()
		d.Attempts, d.LastStatus, d.LastError, d.Delivered = attempt, status, "", ok
		if err != nil {
			d.LastError = err.Error()
		}
		d.History = append(d.History, DeliveryAttempt{At: at, Status: status, Error: d.LastError})
		s.mu.Unlock()
		if ok || attempt > len(s.cfg.DeliveryRetryDelays) {
			return
		}
		t := time.NewTimer(s.cfg.DeliveryRetryDelays[attempt-1])
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// post makes one attempt at a delivery. Webhooks are signed afresh each
// time, as Standard Webhooks asks: same id, the attempt's timestamp.
func (s *Server) post(ctx context.Context, d *Delivery) (int, error) {
	s.mu.Lock()
	body := d.Body
	s.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	if d.Kind == WebhookDelivery {
		var event struct{ ID string }
		json.Unmarshal([]byte(body), &event)
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("webhook-id", event.ID)
		req.Header.Set("webhook-timestamp", ts)
		req.Header.Set("webhook-signature", "v1,"+s.webhookSignature(event.ID, ts, []byte(body)))
	} else {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// webhookSignature is the Standard Webhooks v1 signature: HMAC-SHA256 over
// "id.timestamp.body", base64.
func (s *Server) webhookSignature(id, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, s.secret)
	mac.Write([]byte(id + "." + timestamp + "."))
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// logoutEvent is the user.logout event for an ended session, as the API
// reference's example of it shows one (developer-docs openapi/scalekit.yaml,
// webhooks user.logout, and the UserLogoutEvent and UserAuthEventData
// schemas): the envelope with its display_name, data.user_session with the
// session's timestamps, status and device, data.user with the user's
// profile. Its status is upper case unless [Config.WebhookLowerCaseStatus].
// The caller holds s.mu.
func (s *Server) logoutEvent(ses Session) string {
	u := s.userByID[ses.UserID]
	d := revokedOf(ses)
	status := strings.ToUpper(ses.Status)
	if s.cfg.WebhookLowerCaseStatus {
		status = strings.ToLower(ses.Status)
	}
	dev := deviceOf(ses.UserAgent, ses.IPAddress)
	connType, connProvider := connectionKind(s, ses.ConnectionID)
	event := map[string]any{
		"spec_version":    "1",
		"id":              newID("evt_"),
		"type":            WebhookLogoutEvent,
		"object":          "User",
		"occurred_at":     ses.EndedAt.UTC().Format(time.RFC3339Nano),
		"environment_id":  s.envID,
		"organization_id": ses.OrganizationID,
		"display_name":    "User Logout",
		"data": map[string]any{
			"user": map[string]any{
				"id": u.ID, "email": u.Email, "external_id": u.ExternalID, "metadata": u.Metadata,
				"create_time": rfc3339(u.CreatedAt), "update_time": rfc3339(u.CreatedAt), "last_login_time": rfc3339(u.LastLoginAt),
				"user_profile": map[string]any{
					"id": u.ProfileID, "given_name": u.GivenName, "family_name": u.FamilyName, "name": u.Name(),
					"email_verified": true, "metadata": map[string]string{}, "custom_attributes": nil,
					"external_identities": []map[string]any{{
						"connection_id": ses.ConnectionID, "connection_type": connType, "connection_provider": connProvider,
						"connection_user_id": u.Email, "is_social": false,
						// The fake reads the profile from the connection at
						// each sign-in: last synced then.
						"created_time": rfc3339(u.CreatedAt), "last_login_time": rfc3339(u.LastLoginAt),
						"last_synced_time": rfc3339(u.LastLoginAt),
					}},
					"gender": "", "groups": nil, "locale": "", "phone_number": "", "phone_number_verified": false,
					"picture": "", "preferred_username": "",
				},
			},
			"user_session": map[string]any{
				"session_id": ses.ID, "user_id": ses.UserID, "organization_id": ses.OrganizationID, "status": status,
				"created_at": d.CreatedAt, "updated_at": d.UpdatedAt, "last_active_at": d.LastActiveAt,
				"idle_expires_at": d.IdleExpiresAt, "absolute_expires_at": d.AbsoluteExpiresAt,
				"expired_at": d.ExpiredAt, "logout_at": d.LogoutAt,
				"authenticated_organizations": []string{ses.OrganizationID},
				// The example spells the device type as a title ("Desktop").
				"device": map[string]any{
					"browser": dev.Browser, "browser_version": dev.BrowserVersion, "device_type": titleCase(dev.DeviceType),
					"ip": dev.IP, "location": dev.Location, "os": dev.OS, "os_version": dev.OSVersion, "user_agent": dev.UserAgent,
				},
			},
		},
	}
	var b bytes.Buffer
	json.NewEncoder(&b).Encode(event)
	return strings.TrimSpace(b.String())
}

// connectionKind is how the webhook's external_identities name the
// connection that signed the user in, by its type and its provider, two
// values of the API reference's enums (developer-docs
// openapi/scalekit.yaml, connectionsConnectionType and
// commonsIdentityProviderType): an upstream's is an OIDC connection to a
// provider of the organization's own (CUSTOM), the environment's email
// form a PASSWORDLESS connection of Scalekit's (SCALEKIT).
func connectionKind(s *Server, conn string) (typ, provider string) {
	if s.upByConn[conn] != nil {
		return "OIDC", "CUSTOM"
	}
	return "PASSWORDLESS", "SCALEKIT"
}

// rfc3339 formats t, or gives null for the zero time.
func rfc3339(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
