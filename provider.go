// SPDX-License-Identifier: Apache-2.0

// Provider: the app's client credentials at the provider, and the session
// API and token endpoint calls made with them.

package logout

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// ProviderConfig configures a [Provider].
type ProviderConfig struct {
	// Issuer is the provider's issuer URL (the Scalekit environment URL).
	// The session API lives under it, at /api/v1.
	Issuer string
	// TokenEndpoint is where client_credentials and refresh_token grants
	// go. Empty means Issuer + "/oauth/token", as Scalekit has it.
	TokenEndpoint string
	// ClientID and ClientSecret are the app's credentials (in Scalekit's
	// dashboard, under API credentials). Required.
	ClientID     string
	ClientSecret string
	// HTTPClient makes the calls. Nil means http.DefaultClient; every call
	// is bounded by Timeout either way.
	HTTPClient *http.Client
	// Timeout bounds each call, the token it may need included. Zero means
	// 10 seconds.
	Timeout time.Duration
	// MeterProvider and TracerProvider receive the duration and a client
	// span of each call (logout.provider.duration and
	// logout.provider.OPERATION; see [Config.MeterProvider]). Nil means
	// OpenTelemetry's global providers, read by NewProvider.
	MeterProvider  metric.MeterProvider
	TracerProvider trace.TracerProvider
}

// Provider calls the provider's token endpoint and session API with the
// app's client credentials: it ends provider sessions from the server, which
// a logout cannot rely on the browser to do, and refreshes a session's tokens.
//
// It gets an API token with the client_credentials grant, keeps it until
// shortly before it expires, and fetches a new one once when the API answers
// 401 (a token revoked early). It never logs a token or the secret, and no
// error it returns holds one. It is safe for concurrent use.
type Provider struct {
	issuer    string
	tokenURL  string
	clientID  string
	secret    string
	client    *http.Client
	timeout   time.Duration
	now       func() time.Time
	tel       *telemetry
	apiHost   string // the hosts the calls go to, for spans
	grantHost string

	mu       sync.Mutex
	token    string
	expires  time.Time
	fetching chan struct{} // closed when the token fetch under way ends; nil when none
}

// NewProvider checks cfg and returns a Provider. It does no I/O.
func NewProvider(cfg ProviderConfig) (*Provider, error) {
	u, err := checkURL("ProviderConfig.Issuer", cfg.Issuer)
	if err != nil {
		return nil, err
	}
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("logout: ProviderConfig.ClientID and ClientSecret are required")
	}
	issuer := strings.TrimSuffix(u.String(), "/")
	p := &Provider{
		issuer:   issuer,
		tokenURL: cmp.Or(cfg.TokenEndpoint, issuer+"/oauth/token"),
		clientID: cfg.ClientID,
		secret:   cfg.ClientSecret,
		client:   cmp.Or(cfg.HTTPClient, http.DefaultClient),
		timeout:  cmp.Or(cfg.Timeout, 10*time.Second),
		now:      time.Now,
		tel:      newTelemetry(cfg.MeterProvider, cfg.TracerProvider),
		apiHost:  u.Host,
	}
	t, err := checkURL("ProviderConfig.TokenEndpoint", p.tokenURL)
	if err != nil {
		return nil, err
	}
	p.grantHost = t.Host
	return p, nil
}

// ProviderSession is a session at the provider, as its session API reports
// it.
type ProviderSession struct {
	ID     string // ses_…
	UserID string // usr_…
	// Status is "active", "expired", "revoked" or "logout".
	Status    string
	CreatedAt time.Time
	// LastActiveAt is when the provider last saw the session used.
	LastActiveAt time.Time
	LogoutAt     time.Time
	// UserAgent and IP are the device the session was started on, as far
	// as the provider knows.
	UserAgent string
	IP        string
}

// Active reports whether the provider session is still alive.
func (s ProviderSession) Active() bool { return s.Status == "active" }

// ErrProviderSessionNotFound is returned by [Provider.Session] for a session
// the provider does not know.
var ErrProviderSessionNotFound = errors.New("logout: provider session not found")

// Session returns the provider session sid.
func (p *Provider) Session(ctx context.Context, sid string) (ProviderSession, error) {
	var out apiSession
	err := p.api(ctx, http.MethodGet, "/api/v1/sessions/"+url.PathEscape(sid), &out)
	if err != nil {
		return ProviderSession{}, err
	}
	return out.session(), nil
}

// EndSession ends the provider session sid if it is still active: it reads
// the session, and revokes it only when its status is "active". A session the
// provider does not know, or that already ended, counts as ended: nil.
func (p *Provider) EndSession(ctx context.Context, sid string) error {
	_, err := p.endSession(ctx, sid)
	return err
}

// endSession is EndSession, and reports whether it revoked the session
// itself.
func (p *Provider) endSession(ctx context.Context, sid string) (bool, error) {
	s, err := p.Session(ctx, sid)
	switch {
	case errors.Is(err, ErrProviderSessionNotFound):
		return false, nil
	case err != nil:
		return false, err
	case !s.Active():
		return false, nil
	}
	err = p.api(ctx, http.MethodPost, "/api/v1/sessions/"+url.PathEscape(sid)+"/revoke", nil)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, ErrProviderSessionNotFound) {
		return false, nil
	}
	var refused *providerError
	if errors.As(err, &refused) && refused.status == http.StatusBadRequest {
		// Ended between the read and the revoke (the provider refuses to
		// revoke an ended session): make sure, rather than guess.
		if s, err2 := p.Session(ctx, sid); errors.Is(err2, ErrProviderSessionNotFound) || (err2 == nil && !s.Active()) {
			return false, nil
		}
	}
	return false, err
}

// UserSessions returns the user's active provider sessions, every page of
// them.
func (p *Provider) UserSessions(ctx context.Context, userID string) ([]ProviderSession, error) {
	var all []ProviderSession
	token := ""
	for page := 0; page < 100; page++ {
		q := url.Values{"page_size": {"100"}, "filter.status": {"active"}}
		if token != "" {
			q.Set("page_token", token)
		}
		var out struct {
			Sessions []apiSession `json:"sessions"`
			Next     string       `json:"next_page_token"`
		}
		if err := p.api(ctx, http.MethodGet, "/api/v1/users/"+url.PathEscape(userID)+"/sessions?"+q.Encode(), &out); err != nil {
			return nil, err
		}
		for _, s := range out.Sessions {
			all = append(all, s.session())
		}
		if token = out.Next; token == "" {
			return all, nil
		}
	}
	return all, errors.New("logout: provider: too many pages of sessions")
}

// EndOtherSessions ends every active provider session of the user but keep
// (which may be empty) that began before the call, one revoke each, and
// returns how many it ended.
func (p *Provider) EndOtherSessions(ctx context.Context, userID, keep string) (int, error) {
	return p.endSessionsBefore(ctx, userID, keep, p.now())
}

// endSessionsBefore ends the user's active provider sessions but keep that
// the provider says began at or before before: a sign-in made after the
// user asked, on another device, stays, however late a retry runs. A session
// the provider gives no creation time for is ended, since it cannot be told
// apart from one that began before. The times are compared as the provider
// and this host read their clocks.
func (p *Provider) endSessionsBefore(ctx context.Context, userID, keep string, before time.Time) (int, error) {
	sessions, err := p.UserSessions(ctx, userID)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, s := range sessions {
		if s.ID == keep || !s.Active() || s.CreatedAt.After(before) {
			continue
		}
		if err := p.EndSession(ctx, s.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// Tokens is what a refresh_token grant returns.
type Tokens struct {
	AccessToken  string
	RefreshToken string // the rotated refresh token, or "" if none came
	IDToken      string // "" if none came
	Expiry       time.Time
}

// ErrRefreshRefused is returned by [Provider.Refresh] when the provider
// refuses the refresh token (invalid_grant): it was used already, or the
// provider session behind it ended.
var ErrRefreshRefused = errors.New("logout: provider refused the refresh token")

// Refresh redeems a refresh token for new tokens. The provider rotates the
// refresh token on every use, so the old one must be replaced by the new.
func (p *Provider) Refresh(ctx context.Context, refreshToken string) (Tokens, error) {
	var out struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		IDToken      string `json:"id_token"`
		ExpiresIn    int64  `json:"expires_in"`
		Error        string `json:"error"`
	}
	status, err := p.grant(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}, &out)
	switch {
	case err != nil:
		return Tokens{}, err
	case out.Error == "invalid_grant":
		return Tokens{}, ErrRefreshRefused
	case status != http.StatusOK || out.AccessToken == "":
		return Tokens{}, fmt.Errorf("logout: provider refresh: status %d %s", status, out.Error)
	}
	t := Tokens{AccessToken: out.AccessToken, RefreshToken: out.RefreshToken, IDToken: out.IDToken}
	if out.ExpiresIn > 0 {
		t.Expiry = p.now().Add(time.Duration(out.ExpiresIn) * time.Second)
	}
	return t, nil
}

// api makes one session-API call with the client's API token, fetching a
// new token once if the API answers 401.
func (p *Provider) api(ctx context.Context, method, path string, out any) (err error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	ctx, call := p.tel.provider(ctx, apiOp(method, path), method, p.apiHost)
	status := 0
	defer func() { call.end(status, err) }()
	for attempt := 0; ; attempt++ {
		token, err := p.apiToken(ctx, attempt > 0)
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, method, p.issuer+path, nil)
		if err != nil {
			return fmt.Errorf("logout: provider: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Accept", "application/json")
		resp, err := p.client.Do(req)
		if err != nil {
			return fmt.Errorf("logout: provider %s %s: %w", method, redactPath(path), err)
		}
		status = resp.StatusCode
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		switch {
		case err != nil:
			return fmt.Errorf("logout: provider %s %s: %w", method, redactPath(path), err)
		case resp.StatusCode == http.StatusUnauthorized && attempt == 0:
			continue
		case resp.StatusCode == http.StatusNotFound:
			return ErrProviderSessionNotFound
		case resp.StatusCode != http.StatusOK:
			var e struct {
				Message string `json:"message"`
			}
			json.Unmarshal(body, &e)
			return &providerError{method: method, path: redactPath(path), status: resp.StatusCode, message: e.Message}
		case out == nil:
			return nil
		}
		if err := json.Unmarshal(body, out); err != nil {
			return fmt.Errorf("logout: provider %s %s: %w", method, redactPath(path), err)
		}
		return nil
	}
}

// apiToken returns the cached API token, or a new one when it is missing,
// about to expire, or was refused (renew). Calls that need a new token at the
// same time share one fetch, and each waits for it no longer than its own
// context allows.
func (p *Provider) apiToken(ctx context.Context, renew bool) (string, error) {
	for {
		p.mu.Lock()
		if !renew && p.token != "" && p.now().Before(p.expires) {
			token := p.token
			p.mu.Unlock()
			return token, nil
		}
		if wait := p.fetching; wait != nil {
			p.mu.Unlock()
			select {
			case <-wait:
				renew = false // a fresh token, or a failure to try again after
				continue
			case <-ctx.Done():
				return "", fmt.Errorf("logout: provider: waiting for an API token: %w", ctx.Err())
			}
		}
		done := make(chan struct{})
		p.fetching = done
		p.mu.Unlock()

		token, expires, err := p.fetchToken(ctx)
		p.mu.Lock()
		if err == nil {
			p.token, p.expires = token, expires
		}
		p.fetching = nil
		close(done)
		p.mu.Unlock()
		return token, err
	}
}

// fetchToken gets an API token with the client_credentials grant.
func (p *Provider) fetchToken(ctx context.Context) (string, time.Time, error) {
	var out struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
		Error       string `json:"error"`
	}
	status, err := p.grant(ctx, url.Values{"grant_type": {"client_credentials"}}, &out)
	if err != nil {
		return "", time.Time{}, err
	}
	if status != http.StatusOK || out.AccessToken == "" {
		return "", time.Time{}, fmt.Errorf("logout: provider refused the client credentials: status %d %s", status, out.Error)
	}
	// Renew a little early, so a token never expires on its way.
	life := time.Duration(out.ExpiresIn) * time.Second
	return out.AccessToken, p.now().Add(life - min(life/10, time.Minute)), nil
}

// grant posts to the token endpoint with the client's credentials in Basic
// auth and decodes the JSON answer, whatever its status.
func (p *Provider) grant(ctx context.Context, form url.Values, out any) (status int, err error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	ctx, call := p.tel.provider(ctx, grantOp(form), http.MethodPost, p.grantHost)
	defer func() { call.end(status, err) }()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, fmt.Errorf("logout: provider token endpoint: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(p.clientID), url.QueryEscape(p.secret))
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("logout: provider token endpoint: %w", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out); err != nil {
		return resp.StatusCode, fmt.Errorf("logout: provider token endpoint: status %d, not JSON", resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// providerError is a session-API answer other than 200, 401 (after a retry)
// and 404.
type providerError struct {
	method, path string
	status       int
	message      string
}

func (e *providerError) Error() string {
	return fmt.Sprintf("logout: provider %s %s: status %d: %.200s", e.method, e.path, e.status, e.message)
}

// redactPath drops the query from a path for errors and logs.
func redactPath(path string) string {
	p, _, _ := strings.Cut(path, "?")
	return p
}

// apiSession is a session as the session API writes it.
type apiSession struct {
	SessionID    string     `json:"session_id"`
	UserID       string     `json:"user_id"`
	Status       string     `json:"status"`
	CreatedAt    *time.Time `json:"created_at"`
	LastActiveAt *time.Time `json:"last_active_at"`
	LogoutAt     *time.Time `json:"logout_at"`
	Device       struct {
		UserAgent string `json:"user_agent"`
		IP        string `json:"ip"`
	} `json:"device"`
}

func (a apiSession) session() ProviderSession {
	t := func(p *time.Time) time.Time {
		if p == nil {
			return time.Time{}
		}
		return *p
	}
	return ProviderSession{
		ID: a.SessionID, UserID: a.UserID, Status: a.Status,
		CreatedAt: t(a.CreatedAt), LastActiveAt: t(a.LastActiveAt), LogoutAt: t(a.LogoutAt),
		UserAgent: a.Device.UserAgent, IP: a.Device.IP,
	}
}
