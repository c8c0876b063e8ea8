// SPDX-License-Identifier: Apache-2.0

// Config, CookieConfig and New: everything a Handler is set up with, and
// every check made at start-up.

package logout

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Config configures a [Handler]. The zero value of every optional field is the
// secure choice.
type Config struct {
	// Store keeps the sessions: a [RedisStore], a [RevocableCookieStore] or
	// a [CookieStore] (or a store of your own). Required.
	Store SessionStore

	// Issuer is the provider's issuer URL: for Scalekit, the environment URL,
	// such as https://acme.scalekit.dev. New reads its discovery document
	// once to find the end-session endpoint, unless EndSessionEndpoint is set.
	Issuer string
	// EndSessionEndpoint is the provider's end-session endpoint, such as
	// https://acme.scalekit.dev/oidc/logout. Set it to skip discovery.
	EndSessionEndpoint string
	// HTTPClient fetches the discovery document. Nil means a client with a
	// 10-second timeout.
	HTTPClient *http.Client

	// ClientID is the app's OAuth client ID. It is sent as client_id only
	// when a logout has no ID token to send and PostLogoutWithClientID says
	// the provider accepts that.
	ClientID string
	// PostLogoutWithClientID says the provider honours
	// post_logout_redirect_uri on a logout that carries client_id but no
	// id_token_hint (OpenID Connect allows it; Scalekit does not document
	// it). Without it, a logout with no ID token (no session, a store
	// failure, an ID token too large for a URL) sends the browser to the
	// bare end-session endpoint: the provider still ends its session, and
	// the user stays on the provider's own signed-out page.
	PostLogoutWithClientID bool

	// PostLogoutRedirectURI is where the provider sends the browser after
	// logout: an absolute URL registered with the provider (in Scalekit's
	// dashboard, under the app's post-logout URLs). Required.
	PostLogoutRedirectURI string
	// AllowedPostLogoutRedirectURIs are further URIs a logout request may
	// choose with its return_to parameter. Matching is exact; anything else
	// is refused with 400.
	AllowedPostLogoutRedirectURIs []string
	// SkipScalekitURIRules turns off the checks, at start-up, of the rules
	// Scalekit sets for post-logout redirect URIs (at most 256 characters, no
	// query string, no fragment), for providers that allow more. A URI
	// Scalekit would refuse fails every logout at its end-session page, so
	// New refuses it first.
	SkipScalekitURIRules bool

	// Cookie sets the session cookie's attributes.
	Cookie CookieConfig

	// ClearCookies are further cookies the app sets and logout must expire,
	// such as accessToken, refreshToken and idToken. Give each the Name,
	// Path, Domain, Secure, SameSite and Partitioned it was set with.
	ClearCookies []http.Cookie
	// IDTokenCookie names a plain cookie that holds the raw ID token, as
	// apps built the way Scalekit's guide shows keep it ("idToken"): when
	// the store has no session for the request, the handler takes
	// id_token_hint from it, so the provider still sends the user back. It
	// must also be in ClearCookies, so logout expires it. The value is only
	// passed on as a hint (the provider verifies it), and only when it has
	// the shape of a JWT. Moving such an app to sealed sessions removes the
	// need; see docs/upgrading.md.
	IDTokenCookie string

	// StoreTimeout bounds each store call. Zero means 3 seconds.
	StoreTimeout time.Duration

	// AllowGET lets GET requests log out, for links that cannot be forms. A
	// GET that says it comes from another origin (Sec-Fetch-Site, or
	// without it Origin or Referer) is still refused. POST is always
	// accepted.
	AllowGET bool

	// ReauthenticateAfterLogout makes the first sign-in on this browser
	// after a logout ask for credentials again, as "sign out everywhere"
	// always does: the logout response sets a marker cookie (no server-side
	// record, no effect on other browsers), and [Handler.PromptLogin]
	// tells the sign-in route to send prompt=login. Without it a user of
	// enterprise SSO is signed straight back in by their identity provider,
	// whose session a logout does not end: on a shared computer, the next
	// person walks into the previous user's account.
	ReauthenticateAfterLogout bool

	// ClearSiteData adds Clear-Site-Data: "cookies", "storage" to the logout
	// response. Off by default: "cookies" clears every cookie of the whole
	// site, including a provider's on a custom domain under the same site.
	ClearSiteData bool

	// FailOnStoreError answers 503 when the store cannot end the session,
	// and leaves the cookies as they are, so that trying again, once the
	// store is back, ends the session (and, for "sign out everywhere", the
	// user's other sessions, which it ends first). The
	// default expires the cookies, reports the error, and still sends the
	// browser through the provider's logout.
	FailOnStoreError bool

	// SessionLifetime is the absolute timeout: the lifetime StartSession
	// gives a session that has no Expiry, however often it is used. Zero
	// means 12 hours. With a [RevocableCookieStore] it may not exceed the
	// RevocationList's Lifetime.
	SessionLifetime time.Duration
	// IdleTimeout ends a session unused for this long (zero: never). Use is
	// recorded by [Handler.Middleware] (and, with a [RedisStore], by
	// [Handler.Session]) without extra round trips: RedisStore pushes the
	// record's TTL with the same command that reads it; the cookie stores
	// rewrite the cookie at most once per tenth of IdleTimeout, so a session
	// may end up to a tenth early, never late. The store must be a
	// [Renewer].
	IdleTimeout time.Duration
	// SessionFormat is the format sessions are written in: 2, the default,
	// or 1, which every version of this package reads. Set it to 1 while a
	// rolling upgrade from a version that reads only format 1 is under way,
	// then remove it once every instance runs this one. Format 1 has no room
	// for LastSeen, so a cookie store cannot enforce IdleTimeout with it.
	SessionFormat int

	// Provider, when set, gives the Handler the app's client credentials at
	// the provider, and with them a backstop: after each logout it ends the
	// provider session from the server too, in case the browser never gets
	// to the end-session endpoint (a tab closed, the network gone). It waits
	// BackstopDelay first, so as not to race the browser there, then revokes
	// the session only if it is still active. Everywhere also ends, at once,
	// the user's provider sessions on every other device. [Handler.Refresh]
	// needs it too.
	//
	// With a [RedisStore] or a [RevocableCookieStore], the backstop's jobs
	// are recorded in that Redis before the logout answers (one more
	// command, in one more round trip), and every instance sharing it runs
	// them: an instance that crashes, is killed or runs out of memory after
	// a logout loses nothing. Each instance then polls the queue, one Redis
	// command a second when idle. With any other store the jobs wait in the
	// process that took the logout, and die with it.
	Provider *Provider
	// BackstopDelay is how long the backstop waits after a logout before it
	// checks the provider session. Zero means 10 seconds; a browser
	// normally reaches the end-session endpoint within one.
	BackstopDelay time.Duration
	// OnBackstopError, if set, is called with a [*BackstopError] for every
	// provider session the backstop could not end (after its retries), off
	// the request path: the context is not the request's.
	OnBackstopError func(ctx context.Context, err error)

	// OnSessionEnd, if set, is called once for every app session this
	// Handler sees end, whichever way ([SessionEnd] lists them, and the
	// one exception: a lapse a cookie store sees); give the
	// same function to BackChannelConfig and WebhookConfig, and it hears of
	// every ending. It never gets a token.
	OnSessionEnd func(ctx context.Context, e SessionEnd)
	// SessionsPage is where [Handler.SignOutSession] and
	// [Handler.SignOutOtherDevices] send the browser back: a path of this
	// app, such as /account/sessions. Empty means "/".
	SessionsPage string

	// OnLogout, if set, is called after a logout request ended a session,
	// with what the session held (to revoke a refresh token, say).
	OnLogout func(r *http.Request, ended Session)
	// OnError, if set, is called with every store failure.
	OnError func(r *http.Request, err error)
	// Logger receives one line per logout and per failure; never a token.
	// Nil means slog.Default().
	Logger *slog.Logger

	// MeterProvider receives the Handler's metrics. Nil means
	// OpenTelemetry's global provider (otel.GetMeterProvider), read once
	// by New: install the SDK before or after New, either works, and until
	// one is installed nothing is measured, at no cost. With
	// [BackChannelConfig], [WebhookConfig] and [ProviderConfig] given the
	// same provider, these are every instrument the package reports, under
	// the instrumentation scope github.com/endsession/logout (no
	// attribute ever holds a token, a session handle, an email or a user
	// ID):
	//
	//	instrument                            unit        attributes and their values
	//	logout.requests                       {logout}    logout.outcome: ended, no_session, store_error, refused;
	//	  (counter)                                       logout.refused.reason (refused only): method, cross_origin, bad_request;
	//	                                                  logout.everywhere: true for Everywhere, else false
	//	logout.sessions.ended                 {session}   logout.end.reason: the EndReason, one of logout, everywhere,
	//	  (counter)                                       other-devices, ended-by-user, back-channel, webhook,
	//	                                                  refresh-refused, idle, expired, replaced (one per SessionEnd)
	//	logout.store.duration                 s           logout.store.operation: end, load, renew, save, update, end_sid,
	//	  (histogram)                                     end_subject, seen, remember, list, end_handle, end_others;
	//	                                                  logout.store.outcome: ok, no_session, not_confirmed, timeout, error
	//	logout.backstop.jobs                  {job}       logout.backstop.event: scheduled, then one of ended (it ended
	//	  (counter)                                       provider sessions), done (nothing left to end), failed (after its
	//	                                                  retries), dropped (never tried: queue full, or the handler closed)
	//	logout.backstop.queue.depth           {job}       none: jobs waiting or running
	//	  (gauge)
	//	logout.backstop.queue.oldest_due_age  s           none: how long the oldest job past its grace period has waited
	//	  (gauge)
	//	logout.deliveries                     {delivery}  logout.delivery.kind: webhook, back_channel;
	//	  (counter)                                       logout.delivery.outcome: verified, ignored, replayed, refused,
	//	                                                  store_unavailable, key_unavailable;
	//	                                                  logout.delivery.refused.reason (refused only): method, headers,
	//	                                                  timestamp, signature, too_large, malformed, token_type, claims
	//	logout.refreshes                      {refresh}   logout.refresh.outcome: rotated, joined (another refresh had
	//	  (counter)                                       done it), refused (the session ended), failed, no_session
	//	logout.provider.duration              s           logout.provider.operation: get_session, revoke_session,
	//	  (histogram)                                     list_user_sessions, token_client_credentials, token_refresh;
	//	                                                  logout.provider.outcome: ok, not_found, refused, unavailable, error
	//
	// docs/production.md says what to alert on.
	MeterProvider metric.MeterProvider
	// TracerProvider receives a span per logout (logout), per store call
	// (logout.store.OPERATION), per provider call
	// (logout.provider.OPERATION, a client span), per refresh
	// (logout.refresh) and per backstop job (logout.backstop.job), each
	// under the span of the request it serves when there is one, such as
	// otelhttp's. Nil means the global provider, read as MeterProvider is.
	TracerProvider trace.TracerProvider
}

// CookieConfig names the session cookie and sets its attributes.
type CookieConfig struct {
	// Name is the cookie's name. Empty means "__Host-session", or "session"
	// when InsecureHTTP is set.
	Name string
	// Path is the cookie's path. Empty means "/".
	Path string
	// Domain shares the cookie with subdomains. Empty means host-only, which
	// is safer; it must stay empty for a "__Host-" name.
	Domain string
	// SameSite defaults to Lax, which the provider's redirects back to the
	// app need.
	SameSite http.SameSite
	// Partitioned sets the Partitioned attribute (CHIPS), for apps embedded
	// in another site.
	Partitioned bool
	// InsecureHTTP drops the Secure attribute (and the default name's
	// __Host- prefix, which needs it), for plain-http development only.
	// Chrome and Firefox keep Secure cookies on http://localhost, so there
	// it matters only to other browsers; on any other plain-http host it is
	// needed. Never in production.
	InsecureHTTP bool
}

// New checks cfg and returns a Handler.
//
// With no EndSessionEndpoint it fetches the issuer's discovery document,
// once, and that is all the I/O it does: the fetch is bounded by ctx and by
// 10 seconds, whichever ends first. With EndSessionEndpoint set it does no
// I/O. With a Provider and a store in Redis it starts the backstop's poller,
// which runs in the background until [Handler.Close] (see Config.Provider).
func New(ctx context.Context, cfg Config) (*Handler, error) {
	if cfg.Store == nil {
		return nil, errors.New("logout: Config.Store is required")
	}
	h := &Handler{
		store:         cfg.Store,
		timeout:       cmp.Or(cfg.StoreTimeout, 3*time.Second),
		allowGET:      cfg.AllowGET,
		clearSiteData: cfg.ClearSiteData,
		reauth:        cfg.ReauthenticateAfterLogout,
		failClosed:    cfg.FailOnStoreError,
		lifetime:      cmp.Or(cfg.SessionLifetime, 12*time.Hour),
		idle:          cfg.IdleTimeout,
		onLogout:      cfg.OnLogout,
		sessionsPage:  cmp.Or(cfg.SessionsPage, "/"),
		onError:       cfg.OnError,
		log:           cfg.Logger,
		csrf:          http.NewCrossOriginProtection(),
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	h.tel = newTelemetry(cfg.MeterProvider, cfg.TracerProvider)
	h.onEnd = endHook{cfg.OnSessionEnd, h.tel}
	if cfg.Provider != nil {
		h.provider = cfg.Provider
		var q *durableQueue
		if host, ok := cfg.Store.(backstopHost); ok {
			q = host.backstopQueue(cfg.Provider, h.timeout)
		}
		h.backstop = newBackstop(cfg.Provider, cmp.Or(cfg.BackstopDelay, 10*time.Second), h.log, cfg.OnBackstopError, h.tel, q)
		if q != nil {
			// A Handler dropped without Close stops polling once it is
			// collected and the jobs it recorded are done.
			runtime.AddCleanup(h, func(b *backstop) { b.queue.orphan() }, h.backstop)
		}
	}

	endpoint := cfg.EndSessionEndpoint
	if endpoint == "" {
		if _, err := checkURL("Config.Issuer", cfg.Issuer); err != nil {
			return nil, fmt.Errorf("%w (or set Config.EndSessionEndpoint)", err)
		}
		client := cfg.HTTPClient
		if client == nil {
			client = defaultHTTPClient()
		}
		ctx, cancel := context.WithTimeout(ctx, discoveryTimeout)
		defer cancel()
		var err error
		if endpoint, err = discoverEndSession(ctx, client, cfg.Issuer); err != nil {
			return nil, err
		}
	}
	u, err := checkURL("end-session endpoint", endpoint)
	if err != nil {
		return nil, err
	}
	h.endSessionBase = u.RawQuery
	u.RawQuery = ""
	h.endSession = u.String()

	if err := checkPostLogoutURI("Config.PostLogoutRedirectURI", cfg.PostLogoutRedirectURI, cfg.SkipScalekitURIRules); err != nil {
		return nil, err
	}
	h.postLogout = cfg.PostLogoutRedirectURI
	h.allowed = append(h.allowed, cfg.PostLogoutRedirectURI)
	for _, a := range cfg.AllowedPostLogoutRedirectURIs {
		if err := checkPostLogoutURI("Config.AllowedPostLogoutRedirectURIs", a, cfg.SkipScalekitURIRules); err != nil {
			return nil, err
		}
		h.allowed = append(h.allowed, a)
	}
	// Every logout escapes one of these into the end-session URL: once here.
	h.escaped = make(map[string]string, len(h.allowed))
	for _, a := range h.allowed {
		h.escaped[a] = url.QueryEscape(a)
	}

	if h.jar, err = newCookieJar(cfg.Cookie); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(h.sessionsPage, "/") || strings.HasPrefix(h.sessionsPage, "//") || strings.ContainsAny(h.sessionsPage, "\\\r\n") {
		return nil, fmt.Errorf("logout: Config.SessionsPage %q must be a path of this app, such as /account/sessions", cfg.SessionsPage)
	}
	for _, c := range cfg.ClearCookies {
		if err := checkCookie(&c); err != nil {
			return nil, fmt.Errorf("logout: Config.ClearCookies: %w", err)
		}
		h.clear = append(h.clear, expired(&c))
	}
	if cfg.IDTokenCookie != "" {
		if !slices.ContainsFunc(cfg.ClearCookies, func(c http.Cookie) bool { return c.Name == cfg.IDTokenCookie }) {
			return nil, fmt.Errorf("logout: Config.IDTokenCookie %q must be in ClearCookies too, with its attributes, so that logout expires it", cfg.IDTokenCookie)
		}
		h.idTokenCookie = cfg.IDTokenCookie
	}
	if cfg.PostLogoutWithClientID {
		if cfg.ClientID == "" {
			return nil, errors.New("logout: Config.PostLogoutWithClientID needs Config.ClientID")
		}
		h.clientID = cfg.ClientID
	}
	format := cmp.Or(cfg.SessionFormat, latestSessionFormat)
	if format != sessionFormat1 && format != sessionFormat2 {
		return nil, fmt.Errorf("logout: Config.SessionFormat %d: want 1 or 2", cfg.SessionFormat)
	}
	if h.idle < 0 {
		return nil, errors.New("logout: Config.IdleTimeout is negative")
	}
	if _, ok := cfg.Store.(Renewer); h.idle > 0 && !ok {
		return nil, fmt.Errorf("logout: Config.IdleTimeout needs a store that implements Renewer; %T does not", cfg.Store)
	}
	// Only the package's own stores are bound, never a store that embeds
	// one: binding returns a copy of the embedded store, which would drop
	// the wrapper without a word.
	if b, ok := bindableStore(cfg.Store); ok {
		if _, isRedis := cfg.Store.(*RedisStore); h.idle > 0 && format == sessionFormat1 && !isRedis {
			return nil, errors.New("logout: a cookie store records idleness in the session, which Config.SessionFormat 1 has no room for")
		}
		h.store = b.bind(binding{cookie: h.jar.name, idle: h.idle, format: byte(format)})
	}
	if l, ok := cfg.Store.(interface{ maxLifetime() time.Duration }); ok && h.lifetime > l.maxLifetime() {
		return nil, fmt.Errorf("logout: Config.SessionLifetime %v is longer than the RevocationList's Lifetime %v, which must outlive every session", h.lifetime, l.maxLifetime())
	}
	if h.backstop != nil {
		h.tel.observeBackstop(h.backstop.stats)
	}
	return h, nil
}

// checkPostLogoutURI applies checkURL and, unless skipped, the rules Scalekit
// sets for a post-logout redirect URI, each named in its error.
func checkPostLogoutURI(field, raw string, skipScalekit bool) error {
	u, err := checkURL(field, raw)
	if err != nil || skipScalekit {
		return err
	}
	switch {
	case len(raw) > 256:
		return fmt.Errorf("logout: %s is %d characters; Scalekit accepts at most 256 (set SkipScalekitURIRules for other providers)", field, len(raw))
	case u.RawQuery != "" || u.ForceQuery:
		return fmt.Errorf("logout: %s %q has a query string, which Scalekit refuses in a post-logout redirect URI (set SkipScalekitURIRules for other providers)", field, raw)
	}
	return nil
}

func bindableStore(s SessionStore) (bindable, bool) {
	switch s := s.(type) {
	case *RedisStore:
		return s, true
	case *CookieStore:
		return s, true
	case *RevocableCookieStore:
		return s, true
	}
	return nil, false
}
