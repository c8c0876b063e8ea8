// SPDX-License-Identifier: Apache-2.0

// The back-channel logout receiver: logout tokens the provider posts when a
// session ends elsewhere.

package logout

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// BackChannelConfig configures a [BackChannelHandler].
type BackChannelConfig struct {
	// Issuer is the provider's issuer URL (the Scalekit environment URL).
	// Its discovery document gives the keys that sign logout tokens.
	Issuer string
	// ClientID is the app's client ID; a logout token's aud must hold it.
	ClientID string
	// Store ends the sessions and remembers which tokens it has seen: a
	// [RedisStore] or a [RevocableCookieStore]. The same store the
	// [Handler] uses.
	Store SessionStore
	// ClockSkew is how far the provider's clock may be from ours when
	// checking iat and exp. Zero means one minute.
	ClockSkew time.Duration
	// StoreTimeout bounds the store calls. Zero means 3 seconds.
	StoreTimeout time.Duration
	// HTTPClient fetches discovery and keys. Nil means a client with a
	// 10-second timeout.
	HTTPClient *http.Client
	// Logger gets one line per logout token, never the token. Nil means
	// slog.Default().
	Logger *slog.Logger
	// OnSessionEnd, if set, is called for every app session a logout token
	// ends (see [SessionEnd]): give it the Handler's Config.OnSessionEnd.
	OnSessionEnd func(ctx context.Context, e SessionEnd)
	// MeterProvider and TracerProvider receive the deliveries' metrics
	// (logout.deliveries with logout.delivery.kind back_channel, and the
	// store calls'; see [Config.MeterProvider]) and a span per delivery
	// (logout.back_channel). Nil means OpenTelemetry's global providers,
	// read by NewBackChannelHandler.
	MeterProvider  metric.MeterProvider
	TracerProvider trace.TracerProvider
}

// BackChannelHandler receives OpenID Connect Back-Channel Logout requests: the
// provider POSTs a signed logout token whenever a user's session ends there
// (the user signed out of another app, an admin revoked them, a policy timed
// them out), and the handler ends the matching app sessions on every
// instance. Mount it at the back-channel logout URL registered with the
// provider (in Scalekit's dashboard).
//
// A token is accepted only when it is signed with RS256 by one of the
// issuer's keys and its claims are exactly those Back-Channel Logout 1.0
// spells, with the case it spells them: iss the issuer; aud this client (a
// string or an array of strings); iat and exp present and fresh within
// ClockSkew; a non-empty jti; an events object whose back-channel logout
// member is an object; a sub or a sid, each a string; no nonce. Its typ
// header, when present, must say JWT or logout+jwt, so that an ID token or
// an access token signed by the same keys is never taken for a logout
// token. Its jti is remembered in the shared store until it expires, so a
// replay is refused on every instance.
//
// The issuer's keys are fetched when the handler is built and again only
// when a token names a key ID the handler does not hold, at most once per
// 30 seconds: a known key ID costs no network I/O, and forged tokens cannot
// turn into a stream of requests to the provider.
//
// It answers 200 when the sessions are ended and 400 with a fixed JSON
// error for any token it refuses; the reason goes to the log. It answers 503,
// so the provider retries, when the store failed or when the token names a
// key it cannot fetch right now (fetched too recently, or the provider's
// keys endpoint failed). Every answer carries Cache-Control: no-store.
type BackChannelHandler struct {
	keys     *keySet
	issuer   string
	clientID string
	revoker  Revoker
	onEnd    endHook
	tel      *telemetry
	guard    replayGuard
	skew     time.Duration
	timeout  time.Duration
	log      *slog.Logger
	now      func() time.Time
}

// replayGuard remembers, across every instance, which notifications were
// handled: a key is looked up before the work and written only after it.
type replayGuard interface {
	seen(ctx context.Context, key string) (bool, error)
	remember(ctx context.Context, key string, ttl time.Duration) error
}

// NewBackChannelHandler fetches the issuer's discovery document and its keys
// and returns the handler: that is all the I/O it does, each fetch bounded by
// ctx and by 10 seconds, whichever ends first. Keys that cannot be fetched
// now are logged, not fatal: the first logout token fetches them again.
func NewBackChannelHandler(ctx context.Context, cfg BackChannelConfig) (*BackChannelHandler, error) {
	if _, err := checkURL("BackChannelConfig.Issuer", cfg.Issuer); err != nil {
		return nil, err
	}
	if cfg.ClientID == "" {
		return nil, errors.New("logout: BackChannelConfig.ClientID is required: a logout token's audience is checked against it")
	}
	revoker, ok1 := cfg.Store.(Revoker)
	guard, ok2 := cfg.Store.(replayGuard)
	if !ok1 || !ok2 {
		return nil, errors.New("logout: BackChannelConfig.Store must be a RedisStore or a RevocableCookieStore: a bare CookieStore keeps no state to end sessions in")
	}
	client := cfg.HTTPClient
	if client == nil {
		client = defaultHTTPClient()
	}
	discoveryCtx, cancel := context.WithTimeout(ctx, discoveryTimeout)
	defer cancel()
	provider, err := oidc.NewProvider(oidc.ClientContext(discoveryCtx, client), cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("logout: back-channel: %w", err)
	}
	var doc struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := provider.Claims(&doc); err != nil {
		return nil, fmt.Errorf("logout: back-channel: discovery: %w", err)
	}
	// The keys decide which tokens end sessions: they must not travel over
	// plain http any more than the discovery document did.
	if _, err := checkURL("back-channel: jwks_uri in the issuer's discovery document", doc.JWKSURI); err != nil {
		return nil, err
	}
	tel := newTelemetry(cfg.MeterProvider, cfg.TracerProvider)
	b := &BackChannelHandler{
		keys:     &keySet{uri: doc.JWKSURI, client: client},
		issuer:   cfg.Issuer,
		clientID: cfg.ClientID,
		revoker:  revoker,
		onEnd:    endHook{cfg.OnSessionEnd, tel},
		tel:      tel,
		guard:    guard,
		skew:     cmp.Or(cfg.ClockSkew, time.Minute),
		timeout:  cmp.Or(cfg.StoreTimeout, 3*time.Second),
		log:      cmp.Or(cfg.Logger, slog.Default()),
		now:      time.Now,
	}
	if err := b.keys.load(ctx); err != nil {
		b.log.LogAttrs(ctx, slog.LevelWarn, "logout: back-channel: the issuer's keys could not be fetched; the first logout token will fetch them", slog.Any("error", err))
	}
	return b, nil
}

// ServeHTTP handles one back-channel logout request.
func (b *BackChannelHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r, span := b.tel.request(r, spanBackChannel)
	defer span.End()
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		b.tel.delivery(r.Context(), span, deliveryBackChannel, deliveryRefusedMethod)
		backChannelError(w, http.StatusMethodNotAllowed, "POST only")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		b.tel.delivery(r.Context(), span, deliveryBackChannel, deliveryRefusedMalformed)
		backChannelError(w, http.StatusBadRequest, "malformed request")
		return
	}
	raw := r.PostForm["logout_token"]
	if len(raw) != 1 || raw[0] == "" {
		b.tel.delivery(r.Context(), span, deliveryBackChannel, deliveryRefusedMalformed)
		backChannelError(w, http.StatusBadRequest, "exactly one logout_token is required")
		return
	}
	tok, err := b.verify(r.Context(), raw[0])
	if err != nil {
		b.refuse(w, r, span, err)
		return
	}

	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), b.timeout)
	defer cancel()
	jti := "jti\x00" + tok.Issuer + "\x00" + tok.TokenID
	sctx, call := b.tel.store(ctx, storeSeen)
	seen, err := b.guard.seen(sctx, jti)
	call.end(err)
	if err != nil {
		b.fail(w, r, span, err)
		return
	}
	if seen {
		b.tel.delivery(r.Context(), span, deliveryBackChannel, deliveryReplayed)
		backChannelError(w, http.StatusBadRequest, "logout token replayed")
		return
	}
	// End first, remember the jti after. Ending is idempotent and a sub-only
	// token ends only sessions begun before it was issued, so a repeat does
	// no harm; but a jti remembered before its sessions were provably ended
	// (a timeout whose command landed anyway, say) would turn the provider's
	// retry into a "replayed" refusal and the session would live on.
	// iat counts whole seconds: a sub-only token ends the sessions begun
	// within the second it names too.
	sctx, call = b.tel.store(ctx, revokeOp(tok.SessionID))
	n, err := revokeAndReport(sctx, b.revoker, b.onEnd, EndBackChannel, tok.Issuer, tok.Subject, tok.SessionID, tok.IssuedAt.Truncate(time.Second).Add(time.Second-time.Millisecond))
	call.end(err)
	if err != nil {
		b.fail(w, r, span, err)
		return
	}
	sctx, call = b.tel.store(ctx, storeRemember)
	err = b.guard.remember(sctx, jti, tok.Expiry.Add(b.skew).Sub(b.now()))
	call.end(err)
	if err != nil {
		// The sessions are ended; a replay would only end them again.
		b.log.LogAttrs(r.Context(), slog.LevelWarn, "logout: back-channel token not recorded; a replay would be accepted", slog.Any("error", err))
	}
	b.log.LogAttrs(r.Context(), slog.LevelInfo, "logout: back-channel",
		slog.String("sub", tok.Subject), slog.String("sid", tok.SessionID), slog.Int("ended", n))
	b.tel.delivery(r.Context(), span, deliveryBackChannel, deliveryVerified)
	w.WriteHeader(http.StatusOK)
}

// verify checks everything about the token but its jti. The claims are
// checked before the signature, though nothing in them is trusted until the
// signature holds: a token that could never be accepted is then refused
// with 400 even when its key cannot be fetched, and 503 is left to tokens
// that only lack their key.
func (b *BackChannelHandler) verify(ctx context.Context, raw string) (*logoutToken, error) {
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil, refusal(deliveryRefusedMalformed, fmt.Errorf("not a compact RS256 JWS: %w", err))
	}
	header := jws.Signatures[0].Header
	if err := checkType(header.ExtraHeaders); err != nil {
		return nil, refusal(deliveryRefusedTokenType, err)
	}
	now := b.now()
	tok, err := b.checkClaims(jws.UnsafePayloadWithoutVerification(), now)
	if err != nil {
		return nil, refusal(deliveryRefusedClaims, err)
	}
	key, err := b.keys.key(ctx, header.KeyID, now)
	if err != nil {
		return nil, err // unknown (a signature no key of the issuer's made), or unavailable
	}
	if _, err := jws.Verify(key); err != nil {
		return nil, refusal(deliveryRefusedSignature, fmt.Errorf("signature with kid %.64q: %w", header.KeyID, err))
	}
	return tok, nil
}

// refuse answers a token that failed verification. The description is fixed:
// the reason would tell a forger which check to work on next, so it goes to
// the log only.
func (b *BackChannelHandler) refuse(w http.ResponseWriter, r *http.Request, span trace.Span, err error) {
	if errors.Is(err, errKeyUnavailable) {
		b.log.LogAttrs(r.Context(), slog.LevelWarn, "logout: back-channel token's key is unavailable; the provider will retry", slog.String("reason", err.Error()))
		b.tel.delivery(r.Context(), span, deliveryBackChannel, deliveryKeyUnavailable)
		backChannelError(w, http.StatusServiceUnavailable, "signing key unavailable")
		return
	}
	b.log.LogAttrs(r.Context(), slog.LevelWarn, "logout: back-channel token refused", slog.String("reason", err.Error()))
	b.tel.delivery(r.Context(), span, deliveryBackChannel, refusalOf(err, deliveryRefusedSignature))
	backChannelError(w, http.StatusBadRequest, "invalid logout token")
}

// backChannelLogoutEvent is the member a logout token's events claim must
// have.
const backChannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// latestNumericDate is the end of year 9999: later dates are not dates.
const latestNumericDate = 253402300799

// logoutToken is what a verified logout token says.
type logoutToken struct {
	Issuer    string
	Subject   string // "" when the token names only a sid
	SessionID string // "" when the token names only a sub
	TokenID   string
	IssuedAt  time.Time
	Expiry    time.Time
}

// checkType accepts a typ header that is absent, JWT or logout+jwt. RFC 7515
// makes typ a media type: compared without regard to case, with
// "application/" implied when it has no slash.
func checkType(header map[jose.HeaderKey]any) error {
	v, ok := header[jose.HeaderType]
	if !ok {
		return nil
	}
	typ, ok := v.(string)
	if !ok {
		return errors.New("typ header is not a string")
	}
	mediaType := strings.ToLower(typ)
	if !strings.Contains(mediaType, "/") {
		mediaType = "application/" + mediaType
	}
	if mediaType != "application/jwt" && mediaType != "application/logout+jwt" {
		return fmt.Errorf("typ %.64q is not a logout token's", typ)
	}
	return nil
}

// checkClaims reads the claims by their exact names: a claim spelled in
// another case is another claim, and a claim of the wrong JSON type is
// refused rather than read as absent.
func (b *BackChannelHandler) checkClaims(payload []byte, now time.Time) (*logoutToken, error) {
	var c map[string]json.RawMessage
	if err := json.Unmarshal(payload, &c); err != nil || c == nil {
		return nil, errors.New("claims are not a JSON object")
	}
	tok := &logoutToken{}
	var err error
	if tok.Issuer, err = stringClaim(c, "iss", true); err != nil {
		return nil, err
	}
	if tok.Issuer != b.issuer {
		return nil, fmt.Errorf("iss %.64q is not the issuer", tok.Issuer)
	}
	if err := checkAudience(c["aud"], b.clientID); err != nil {
		return nil, err
	}
	if tok.IssuedAt, err = timeClaim(c, "iat", true); err != nil {
		return nil, err
	}
	if tok.Expiry, err = timeClaim(c, "exp", true); err != nil {
		return nil, err
	}
	notBefore, err := timeClaim(c, "nbf", false)
	if err != nil {
		return nil, err
	}
	switch {
	case tok.IssuedAt.After(now.Add(b.skew)):
		return nil, errors.New("logout token issued in the future")
	case !notBefore.IsZero() && notBefore.After(now.Add(b.skew)):
		return nil, errors.New("logout token not valid yet (nbf)")
	case !tok.Expiry.After(now.Add(-b.skew)):
		return nil, errors.New("logout token expired")
	}
	if tok.TokenID, err = stringClaim(c, "jti", true); err != nil {
		return nil, err
	}
	if err := checkEvents(c["events"]); err != nil {
		return nil, err
	}
	if tok.Subject, err = stringClaim(c, "sub", false); err != nil {
		return nil, err
	}
	if tok.SessionID, err = stringClaim(c, "sid", false); err != nil {
		return nil, err
	}
	if tok.Subject == "" && tok.SessionID == "" {
		return nil, errors.New("logout token names neither sub nor sid")
	}
	if _, ok := c["nonce"]; ok {
		return nil, errors.New("logout token has a nonce")
	}
	return tok, nil
}

// stringClaim returns a claim that must be a non-empty string when present,
// and present when required.
func stringClaim(c map[string]json.RawMessage, name string, required bool) (string, error) {
	raw, ok := c[name]
	if !ok {
		if required {
			return "", fmt.Errorf("logout token has no %s", name)
		}
		return "", nil
	}
	var s string
	if jsonKind(raw) != '"' || json.Unmarshal(raw, &s) != nil {
		return "", fmt.Errorf("%s is not a string", name)
	}
	if s == "" {
		return "", fmt.Errorf("%s is empty", name)
	}
	return s, nil
}

// timeClaim returns a NumericDate claim (seconds since 1970, possibly with a
// fraction), or the zero time when it is absent and not required.
func timeClaim(c map[string]json.RawMessage, name string, required bool) (time.Time, error) {
	raw, ok := c[name]
	if !ok {
		if required {
			return time.Time{}, fmt.Errorf("logout token has no %s", name)
		}
		return time.Time{}, nil
	}
	// A null would unmarshal into f without error: only a number is a date.
	var f float64
	isNumber := jsonKind(raw) == '-' || '0' <= jsonKind(raw) && jsonKind(raw) <= '9'
	if !isNumber || json.Unmarshal(raw, &f) != nil {
		return time.Time{}, fmt.Errorf("%s is not a number", name)
	}
	if f < 0 || f > latestNumericDate {
		return time.Time{}, fmt.Errorf("%s %v is out of range", name, f)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), nil
}

// checkAudience accepts aud as a string or an array of strings, holding the
// client ID.
func checkAudience(raw json.RawMessage, clientID string) error {
	var aud []string
	switch jsonKind(raw) {
	case 0:
		return errors.New("logout token has no aud")
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return errors.New("aud is not a string")
		}
		aud = []string{s}
	case '[':
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil {
			return errors.New("aud is not an array")
		}
		for _, item := range items {
			var s string
			if jsonKind(item) != '"' || json.Unmarshal(item, &s) != nil {
				return errors.New("aud holds something other than a string")
			}
			aud = append(aud, s)
		}
	default:
		return errors.New("aud is neither a string nor an array of strings")
	}
	if !slices.Contains(aud, clientID) {
		return fmt.Errorf("aud does not hold the client ID (%d audiences)", len(aud))
	}
	return nil
}

// checkEvents accepts an events object whose back-channel logout member is
// an object itself; other members may sit beside it.
func checkEvents(raw json.RawMessage) error {
	if jsonKind(raw) != '{' {
		return errors.New("events is missing or not a JSON object")
	}
	var events map[string]json.RawMessage
	if json.Unmarshal(raw, &events) != nil {
		return errors.New("events is not a JSON object")
	}
	event, ok := events[backChannelLogoutEvent]
	if !ok {
		return errors.New("events has no back-channel logout member")
	}
	if jsonKind(event) != '{' {
		return errors.New("the back-channel logout event is not a JSON object")
	}
	return nil
}

// jsonKind is the first byte of a JSON value: '{', '[', '"', a digit or '-',
// 't', 'f', 'n'; 0 when there is none.
func jsonKind(raw json.RawMessage) byte {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

func (b *BackChannelHandler) fail(w http.ResponseWriter, r *http.Request, span trace.Span, err error) {
	b.log.LogAttrs(r.Context(), slog.LevelError, "logout: back-channel logout failed; the provider will retry", slog.Any("error", err))
	b.tel.delivery(r.Context(), span, deliveryBackChannel, deliveryStoreUnavailable)
	backChannelError(w, http.StatusServiceUnavailable, "session store unavailable")
}

func backChannelError(w http.ResponseWriter, status int, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	code := "invalid_request"
	if status >= 500 {
		code = "temporarily_unavailable"
	}
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
}
