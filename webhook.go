// SPDX-License-Identifier: Apache-2.0

// The webhook receiver: the provider's signed user.logout events.

package logout

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// WebhookConfig configures a [WebhookHandler].
type WebhookConfig struct {
	// Secrets are the endpoint's signing secrets as the provider shows them:
	// "whsec_" followed by a base64 key. A delivery signed with any of them
	// is accepted, so a secret is rotated by listing the new one beside the
	// old, deploying, and removing the old one once the provider signs with
	// the new one only. At least one is required.
	Secrets []string
	// Issuer is the provider's issuer URL (the Scalekit environment URL),
	// spelled exactly as the ID tokens' iss claim spells it. Events name
	// users and sessions by the provider's IDs but not the issuer, and the
	// store keys sessions by issuer too.
	Issuer string
	// Store ends the sessions and remembers which deliveries it has
	// handled: a [RedisStore], or a [RevocableCookieStore]. The same store
	// the [Handler] uses.
	Store SessionStore
	// StoreTimeout bounds the store calls. Zero means 3 seconds.
	StoreTimeout time.Duration
	// Tolerance is how far a delivery's webhook-timestamp may be from our
	// clock, in the past or in the future. Zero means 5 minutes, as
	// Scalekit's own SDKs allow.
	Tolerance time.Duration
	// Logger gets one line per delivery, never its body or a secret. Nil
	// means slog.Default().
	Logger *slog.Logger
	// OnSessionEnd, if set, is called for every app session a delivery ends
	// (see [SessionEnd]): give it the Handler's Config.OnSessionEnd.
	OnSessionEnd func(ctx context.Context, e SessionEnd)
	// MeterProvider and TracerProvider receive the deliveries' metrics
	// (logout.deliveries with logout.delivery.kind webhook, and the store
	// calls'; see [Config.MeterProvider]) and a span per delivery
	// (logout.webhook). Nil means OpenTelemetry's global providers, read by
	// NewWebhookHandler.
	MeterProvider  metric.MeterProvider
	TracerProvider trace.TracerProvider
}

// WebhookLogoutEvent is the type of the event a [WebhookHandler] acts on:
// the provider sends it when a user's session there ends.
const WebhookLogoutEvent = "user.logout"

// WebhookHandler receives the provider's webhooks, signed as Standard
// Webhooks, and ends the app sessions of every user.logout event on every
// instance. Mount it at the webhook URL registered with the provider (in
// Scalekit's dashboard) and give it the endpoint's signing secret. It is
// safe for concurrent use.
//
// A delivery is accepted only when it has the webhook-id, webhook-timestamp
// and webhook-signature headers; its timestamp is within Tolerance of our
// clock, either way, as Scalekit's SDKs check it (too late is a replay; too
// early, a sender's clock too far ahead to date anything by); and one of
// the signature's space-separated "v1," entries is the HMAC-SHA256 of
// "id.timestamp.body" under one of the secrets, compared in constant time.
// The body is read once, up to 64 KB.
//
// A user.logout event that names a session (data.user_session.session_id)
// ends the app sessions opened under it. One that names only the user
// (data.user.id, or user_session.user_id) ends every app session of that
// user that began at or before the logout: user_session.logout_at (set when
// the user logged out), or expired_at (set when an administrator revoked
// the session or it timed out), or without either the event's occurred_at,
// or without that the delivery's webhook-timestamp, and never later than
// now. A user who signed in again after the logout, however late the
// delivery, stays signed in. The event's type decides: user_session.status
// is read in upper or lower case alike (Scalekit's webhook example spells
// it ACTIVE, its session API logout) and logged, and an event whose status
// still says active ends the sessions all the same.
//
// The webhook-id is remembered in the shared store once the sessions are
// ended, never before, until the delivery's signature could no longer pass
// the timestamp check on any instance. A delivery the handler could not
// finish (answered 503, or cut short by a timeout whose command landed
// anyway) is therefore never remembered, and the provider's retry, which
// carries the same id, ends the sessions. A delivery whose id is
// remembered ends nothing and is answered 200, not refused with a 4xx:
// the only honest sender of a handled id is the provider retrying because
// our answer was lost, and a 4xx would make it retry in vain and count the
// endpoint as failing (Standard Webhooks senders disable endpoints that keep
// failing, after which no logout would reach the app), while a replaying
// attacker gains nothing from an answer that ends nothing.
//
// It answers 200 when the sessions are ended, for a handled id, and for
// event types it does not act on (which touch nothing); 401 when a header,
// the timestamp or the signature is wrong; 400 when a signed body is not
// an event it can read; 413 for a body over 64 KB; and 503, so the provider
// retries, when the store failed. Refusals carry a fixed JSON description
// (the reason goes to the log only), and every answer carries
// Cache-Control: no-store.
type WebhookHandler struct {
	keys      [][]byte
	issuer    string
	revoker   Revoker
	onEnd     endHook
	tel       *telemetry
	guard     replayGuard
	timeout   time.Duration
	tolerance time.Duration
	log       *slog.Logger
}

// NewWebhookHandler checks cfg and returns the handler. It does no I/O.
func NewWebhookHandler(cfg WebhookConfig) (*WebhookHandler, error) {
	if _, err := checkURL("WebhookConfig.Issuer", cfg.Issuer); err != nil {
		return nil, err
	}
	if len(cfg.Secrets) == 0 {
		return nil, errors.New("logout: WebhookConfig.Secrets needs at least one signing secret")
	}
	keys := make([][]byte, len(cfg.Secrets))
	for i, secret := range cfg.Secrets {
		key, err := webhookKey(secret)
		if err != nil {
			return nil, fmt.Errorf("logout: WebhookConfig.Secrets[%d]: %w", i, err)
		}
		keys[i] = key
	}
	revoker, ok1 := cfg.Store.(Revoker)
	guard, ok2 := cfg.Store.(replayGuard)
	if !ok1 || !ok2 {
		return nil, errors.New("logout: WebhookConfig.Store must be a RedisStore or a RevocableCookieStore: a bare CookieStore keeps no state to end sessions in")
	}
	if cfg.StoreTimeout < 0 || cfg.Tolerance < 0 {
		return nil, errors.New("logout: WebhookConfig.StoreTimeout and Tolerance cannot be negative")
	}
	tel := newTelemetry(cfg.MeterProvider, cfg.TracerProvider)
	return &WebhookHandler{
		keys:      keys,
		issuer:    cfg.Issuer,
		revoker:   revoker,
		onEnd:     endHook{cfg.OnSessionEnd, tel},
		tel:       tel,
		guard:     guard,
		timeout:   cmp.Or(cfg.StoreTimeout, 3*time.Second),
		tolerance: cmp.Or(cfg.Tolerance, 5*time.Minute),
		log:       cmp.Or(cfg.Logger, slog.Default()),
	}, nil
}

// ServeHTTP handles one webhook delivery.
func (h *WebhookHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r, span := h.tel.request(r, spanWebhook)
	defer span.End()
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		h.tel.delivery(r.Context(), span, deliveryWebhook, deliveryRefusedMethod)
		backChannelError(w, http.StatusMethodNotAllowed, "POST only")
		return
	}
	now := time.Now()
	id := r.Header.Get("webhook-id")
	signatures := strings.Join(r.Header.Values("webhook-signature"), " ")
	sent, err := h.checkHeaders(id, r.Header.Get("webhook-timestamp"), signatures, now)
	if err != nil {
		h.refuse(w, r, span, err)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			h.tel.delivery(r.Context(), span, deliveryWebhook, deliveryRefusedTooLarge)
			backChannelError(w, http.StatusRequestEntityTooLarge, "webhook body too large")
			return
		}
		h.tel.delivery(r.Context(), span, deliveryWebhook, deliveryRefusedMalformed)
		backChannelError(w, http.StatusBadRequest, "malformed request")
		return
	}
	if !h.signed(id, r.Header.Get("webhook-timestamp"), body, signatures) {
		h.refuse(w, r, span, refusal(deliveryRefusedSignature, errors.New("no webhook-signature entry matches a secret")))
		return
	}
	ev, err := parseWebhookEvent(body)
	if err != nil {
		h.log.LogAttrs(r.Context(), slog.LevelWarn, "logout: webhook event unreadable", slog.String("id", id), slog.String("reason", err.Error()))
		h.tel.delivery(r.Context(), span, deliveryWebhook, deliveryRefusedMalformed)
		backChannelError(w, http.StatusBadRequest, "malformed webhook event")
		return
	}
	if ev.Type != WebhookLogoutEvent {
		h.log.LogAttrs(r.Context(), slog.LevelDebug, "logout: webhook event ignored", slog.String("id", id), slog.String("type", fmt.Sprintf("%.64q", ev.Type)))
		h.tel.delivery(r.Context(), span, deliveryWebhook, deliveryIgnored)
		w.WriteHeader(http.StatusOK)
		return
	}

	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), h.timeout)
	defer cancel()
	key := "webhook\x00" + h.issuer + "\x00" + id
	sctx, call := h.tel.store(ctx, storeSeen)
	seen, err := h.guard.seen(sctx, key)
	call.end(err)
	if err != nil {
		h.fail(w, r, span, err)
		return
	}
	if seen {
		h.log.LogAttrs(r.Context(), slog.LevelInfo, "logout: webhook already handled; nothing ended again", slog.String("id", id))
		h.tel.delivery(r.Context(), span, deliveryWebhook, deliveryReplayed)
		w.WriteHeader(http.StatusOK)
		return
	}
	// End first, remember the id after: see the type's doc.
	before := cmp.Or(ev.LoggedOutAt, sent)
	if before.After(now) {
		// The provider's clock is ahead of ours: the logout happened
		// before this request reached us, so no later sign-in of ours
		// can predate it.
		before = now
	}
	sctx, call = h.tel.store(ctx, revokeOp(ev.SessionID))
	n, err := revokeAndReport(sctx, h.revoker, h.onEnd, EndWebhook, h.issuer, ev.Subject, ev.SessionID, before)
	call.end(err)
	if err != nil {
		h.fail(w, r, span, err)
		return
	}
	// The signature passes the timestamp check until sent+tolerance by our
	// clock; another Tolerance covers instances whose clocks run behind.
	sctx, call = h.tel.store(ctx, storeRemember)
	err = h.guard.remember(sctx, key, sent.Add(2*h.tolerance).Sub(now))
	call.end(err)
	if err != nil {
		// The sessions are ended; a replay would only end them again.
		h.log.LogAttrs(r.Context(), slog.LevelWarn, "logout: webhook not recorded; a replay would be handled again", slog.String("id", id), slog.Any("error", err))
	}
	h.log.LogAttrs(r.Context(), slog.LevelInfo, "logout: webhook",
		slog.String("id", id), slog.String("sub", ev.Subject), slog.String("sid", ev.SessionID),
		slog.String("status", fmt.Sprintf("%.32s", ev.Status)), slog.Int("ended", n))
	h.tel.delivery(r.Context(), span, deliveryWebhook, deliveryVerified)
	w.WriteHeader(http.StatusOK)
}

// maxWebhookBody bounds a delivery's body. Scalekit's events are a few
// hundred bytes; Standard Webhooks asks senders to stay under 20 KB.
const maxWebhookBody = 64 << 10

// maxWebhookID bounds the webhook-id, which becomes part of a store key.
const maxWebhookID = 256

// webhookKey decodes a "whsec_" secret. The reason never quotes the secret.
func webhookKey(secret string) ([]byte, error) {
	encoded, ok := strings.CutPrefix(secret, "whsec_")
	if !ok {
		return nil, errors.New(`a signing secret starts with "whsec_"`)
	}
	key, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		// Some tools strip the padding when they copy the secret.
		key, err = base64.RawStdEncoding.DecodeString(encoded)
	}
	switch {
	case err != nil:
		return nil, errors.New(`a signing secret is "whsec_" followed by standard base64`)
	case len(key) < 16:
		// Providers issue 24 bytes or more; a shorter key is a placeholder
		// or a copy cut short, and would make forging cheaper.
		return nil, fmt.Errorf("the signing secret's key is %d bytes; at least 16 are required", len(key))
	}
	return key, nil
}

// checkHeaders checks what can be checked before the body is read, and
// returns when the delivery was sent.
func (h *WebhookHandler) checkHeaders(id, timestamp, signatures string, now time.Time) (time.Time, error) {
	switch {
	case id == "" || timestamp == "" || signatures == "":
		return time.Time{}, refusal(deliveryRefusedHeaders, errors.New("webhook-id, webhook-timestamp or webhook-signature missing"))
	case len(id) > maxWebhookID:
		return time.Time{}, refusal(deliveryRefusedHeaders, fmt.Errorf("webhook-id is %d bytes long", len(id)))
	case strings.Contains(id, "."):
		// The signed text is "id.timestamp.body": a dot in the id would
		// let one signature be read as another split of the same text.
		return time.Time{}, refusal(deliveryRefusedHeaders, errors.New("webhook-id contains a dot"))
	}
	sent, err := webhookTime(timestamp)
	if err != nil {
		return time.Time{}, refusal(deliveryRefusedTimestamp, err)
	}
	switch {
	case sent.Before(now.Add(-h.tolerance)):
		return time.Time{}, refusal(deliveryRefusedTimestamp, fmt.Errorf("webhook-timestamp %s is too old", sent.UTC().Format(time.RFC3339)))
	case sent.After(now.Add(h.tolerance)):
		return time.Time{}, refusal(deliveryRefusedTimestamp, fmt.Errorf("webhook-timestamp %s is in the future", sent.UTC().Format(time.RFC3339)))
	}
	return sent, nil
}

// webhookTime reads a webhook-timestamp: decimal seconds since 1970, digits
// only, as the signature signs it.
func webhookTime(s string) (time.Time, error) {
	if len(s) > 12 || strings.Trim(s, "0123456789") != "" {
		return time.Time{}, errors.New("webhook-timestamp is not a number of seconds")
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, errors.New("webhook-timestamp is not a number of seconds")
	}
	return time.Unix(sec, 0), nil
}

// signed reports whether a "v1," entry of signatures is the signature of the
// delivery under one of the keys.
func (h *WebhookHandler) signed(id, timestamp string, body []byte, signatures string) bool {
	var given [][]byte
	for _, entry := range strings.Fields(signatures) {
		encoded, ok := strings.CutPrefix(entry, "v1,")
		if !ok {
			continue // another scheme (v1a is asymmetric) or a later version
		}
		if sig, err := base64.StdEncoding.DecodeString(encoded); err == nil && len(sig) == sha256.Size {
			given = append(given, sig)
		}
	}
	if len(given) == 0 {
		return false
	}
	for _, key := range h.keys {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id + "." + timestamp + "."))
		mac.Write(body)
		want := mac.Sum(nil)
		for _, sig := range given {
			if hmac.Equal(sig, want) {
				return true
			}
		}
	}
	return false
}

// refuse answers a delivery that failed verification. The description is
// fixed: the reason would tell a forger which check to work on next, so it
// goes to the log only.
func (h *WebhookHandler) refuse(w http.ResponseWriter, r *http.Request, span trace.Span, err error) {
	h.log.LogAttrs(r.Context(), slog.LevelWarn, "logout: webhook refused", slog.String("reason", err.Error()))
	h.tel.delivery(r.Context(), span, deliveryWebhook, refusalOf(err, deliveryRefusedSignature))
	backChannelError(w, http.StatusUnauthorized, "invalid webhook signature")
}

func (h *WebhookHandler) fail(w http.ResponseWriter, r *http.Request, span trace.Span, err error) {
	h.log.LogAttrs(r.Context(), slog.LevelError, "logout: webhook failed; the provider will retry", slog.Any("error", err))
	h.tel.delivery(r.Context(), span, deliveryWebhook, deliveryStoreUnavailable)
	backChannelError(w, http.StatusServiceUnavailable, "session store unavailable")
}

// webhookEvent is what a verified event says. For types other than
// [WebhookLogoutEvent] only Type is read.
type webhookEvent struct {
	Type        string
	SessionID   string    // the provider session that ended, or ""
	Subject     string    // the user; "" only when a session is named
	Status      string    // the session's status, lower case, or ""
	LoggedOutAt time.Time // zero when the event gives no time
}

// parseWebhookEvent reads an event by the exact member names Scalekit
// documents. A member of the wrong JSON type is refused rather than read as
// absent; null reads as absent.
func parseWebhookEvent(body []byte) (webhookEvent, error) {
	var ev webhookEvent
	top, err := jsonObject(body, "the event")
	if err != nil {
		return ev, err
	}
	if ev.Type, err = jsonString(top, "type"); err != nil {
		return ev, err
	}
	if ev.Type == "" {
		return ev, errors.New("the event has no type")
	}
	if ev.Type != WebhookLogoutEvent {
		return ev, nil
	}
	data, err := jsonMember(top, "data")
	if err != nil {
		return ev, err
	}
	if data == nil {
		return ev, errors.New("the event has no data")
	}
	user, err := jsonMember(data, "user")
	if err != nil {
		return ev, err
	}
	session, err := jsonMember(data, "user_session")
	if err != nil {
		return ev, err
	}
	if ev.SessionID, err = jsonString(session, "session_id"); err != nil {
		return ev, err
	}
	if ev.Status, err = jsonString(session, "status"); err != nil {
		return ev, err
	}
	ev.Status = strings.ToLower(ev.Status)
	if ev.Subject, err = jsonString(user, "id"); err != nil {
		return ev, err
	}
	if ev.Subject == "" {
		if ev.Subject, err = jsonString(session, "user_id"); err != nil {
			return ev, err
		}
	}
	switch {
	case ev.SessionID != "":
		return ev, nil
	case ev.Subject == "":
		return ev, errors.New("the event names neither a session nor a user")
	}
	if ev.LoggedOutAt, err = jsonTime(session, "logout_at"); err != nil || !ev.LoggedOutAt.IsZero() {
		return ev, err
	}
	if ev.LoggedOutAt, err = jsonTime(session, "expired_at"); err != nil || !ev.LoggedOutAt.IsZero() {
		return ev, err
	}
	ev.LoggedOutAt, err = jsonTime(top, "occurred_at")
	return ev, err
}

// jsonObject decodes raw as a JSON object.
func jsonObject(raw []byte, what string) (map[string]json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if jsonKind(raw) != '{' || json.Unmarshal(raw, &obj) != nil {
		return nil, fmt.Errorf("%s is not a JSON object", what)
	}
	return obj, nil
}

// jsonMember returns the member name of obj as an object: nil when obj is
// nil or the member is absent or null.
func jsonMember(obj map[string]json.RawMessage, name string) (map[string]json.RawMessage, error) {
	raw, ok := obj[name]
	if !ok || jsonKind(raw) == 'n' {
		return nil, nil
	}
	return jsonObject(raw, name)
}

// jsonString returns the member name of obj as a string: "" when obj is nil
// or the member is absent or null.
func jsonString(obj map[string]json.RawMessage, name string) (string, error) {
	raw, ok := obj[name]
	if !ok || jsonKind(raw) == 'n' {
		return "", nil
	}
	var s string
	if jsonKind(raw) != '"' || json.Unmarshal(raw, &s) != nil {
		return "", fmt.Errorf("%s is not a string", name)
	}
	return s, nil
}

// jsonTime returns the member name of obj as an RFC 3339 time: the zero time
// when it is absent, null or empty.
func jsonTime(obj map[string]json.RawMessage, name string) (time.Time, error) {
	s, err := jsonString(obj, name)
	if err != nil || s == "" {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s is not an RFC 3339 time", name)
	}
	return t, nil
}
