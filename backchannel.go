package logout

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// BackChannelConfig configures a [BackChannelHandler].
type BackChannelConfig struct {
	// Issuer is the provider's issuer URL (the Scalekit environment URL).
	// Its discovery document gives the keys that sign logout tokens.
	Issuer string
	// ClientID is the app's client ID; a logout token's aud must hold it.
	ClientID string
	// Store ends the sessions and remembers which tokens it has seen: a
	// [RedisStore], or a [CookieStore] with a [RevocationList]. The same
	// store the [Handler] uses.
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
	// Now, if set, replaces time.Now (tests move the clock with it).
	Now func() time.Time
}

// BackChannelHandler receives OpenID Connect Back-Channel Logout requests: the
// provider POSTs a signed logout token whenever a user's session ends there
// (the user signed out of another app, an admin revoked them, a policy timed
// them out), and the handler ends the matching app sessions on every
// instance. Mount it at the back-channel logout URL registered with the
// provider (in Scalekit's dashboard).
//
// A token is accepted only when it is signed by the issuer's keys (RS256;
// keys are fetched again when an unknown key ID appears), names the issuer
// and this client, is fresh (iat and exp within ClockSkew), carries the
// back-channel logout event, names a sub or sid, and has no nonce. Its jti is
// remembered in the shared store until it expires, so a replay is refused on
// every instance.
//
// It answers 200 when the sessions are ended, 400 with a JSON error for any
// token it refuses, and 503 only when the store failed, so the provider
// retries. Every answer carries Cache-Control: no-store.
type BackChannelHandler struct {
	verifier *oidc.IDTokenVerifier
	issuer   string
	revoker  Revoker
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

// NewBackChannelHandler fetches the issuer's discovery document and returns
// the handler. ctx bounds discovery only.
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
	provider, err := oidc.NewProvider(oidc.ClientContext(ctx, client), cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("logout: back-channel: %w", err)
	}
	b := &BackChannelHandler{
		issuer:  cfg.Issuer,
		revoker: revoker,
		guard:   guard,
		skew:    cmp.Or(cfg.ClockSkew, time.Minute),
		timeout: cmp.Or(cfg.StoreTimeout, 3*time.Second),
		log:     cmp.Or(cfg.Logger, slog.Default()),
		now:     cfg.Now,
	}
	if b.now == nil {
		b.now = time.Now
	}
	// Expiry is checked below, with the clock skew go-oidc does not allow.
	b.verifier = provider.VerifierContext(oidc.ClientContext(context.Background(), client), &oidc.Config{
		ClientID:        cfg.ClientID,
		SkipExpiryCheck: true,
		Now:             b.now,
	})
	return b, nil
}

// ServeHTTP handles one back-channel logout request.
func (b *BackChannelHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		backChannelError(w, http.StatusMethodNotAllowed, "POST only")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		backChannelError(w, http.StatusBadRequest, "malformed request")
		return
	}
	raw := r.PostForm["logout_token"]
	if len(raw) != 1 || raw[0] == "" {
		backChannelError(w, http.StatusBadRequest, "exactly one logout_token is required")
		return
	}
	tok, err := b.verify(r.Context(), raw[0])
	if err != nil {
		b.log.LogAttrs(r.Context(), slog.LevelWarn, "logout: back-channel token refused", slog.String("reason", err.Error()))
		backChannelError(w, http.StatusBadRequest, err.Error())
		return
	}

	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), b.timeout)
	defer cancel()
	jti := "jti\x00" + tok.Issuer + "\x00" + tok.TokenID
	seen, err := b.guard.seen(ctx, jti)
	if err != nil {
		b.fail(w, r, err)
		return
	}
	if seen {
		backChannelError(w, http.StatusBadRequest, "logout token replayed")
		return
	}
	// End first, remember the jti after. Ending is idempotent and a sub-only
	// token ends only sessions begun before it was issued, so a repeat does
	// no harm; but a jti remembered before its sessions were provably ended
	// (a timeout whose command landed anyway, say) would turn the provider's
	// retry into a "replayed" refusal and the session would live on.
	var n int
	if tok.SessionID != "" {
		n, err = b.revoker.EndSID(ctx, tok.Issuer, tok.SessionID)
	} else {
		n, err = b.revoker.EndSubject(ctx, tok.Issuer, tok.Subject, tok.IssuedAt)
	}
	if err != nil {
		b.fail(w, r, err)
		return
	}
	if err := b.guard.remember(ctx, jti, tok.Expiry.Add(b.skew).Sub(b.now())); err != nil {
		// The sessions are ended; a replay would only end them again.
		b.log.LogAttrs(r.Context(), slog.LevelWarn, "logout: back-channel token not recorded; a replay would be accepted", slog.Any("error", err))
	}
	b.log.LogAttrs(r.Context(), slog.LevelInfo, "logout: back-channel",
		slog.String("sub", tok.Subject), slog.String("sid", tok.SessionID), slog.Int("ended", n))
	w.WriteHeader(http.StatusOK)
}

// verify checks everything about the token but its jti.
func (b *BackChannelHandler) verify(ctx context.Context, raw string) (*oidc.LogoutToken, error) {
	tok, err := b.verifier.VerifyLogout(ctx, raw)
	if err != nil {
		return nil, err
	}
	now := b.now()
	switch {
	case tok.IssuedAt.IsZero():
		return nil, errors.New("logout token has no iat")
	case tok.IssuedAt.After(now.Add(b.skew)):
		return nil, errors.New("logout token issued in the future")
	case !tok.Expiry.After(now.Add(-b.skew)):
		return nil, errors.New("logout token expired")
	}
	return tok, nil
}

func (b *BackChannelHandler) fail(w http.ResponseWriter, r *http.Request, err error) {
	b.log.LogAttrs(r.Context(), slog.LevelError, "logout: back-channel logout failed; the provider will retry", slog.Any("error", err))
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
