package scalekittest

// How an environment behaves: its Config, with the options for what Scalekit
// leaves undocumented.

import (
	"net/http"
	"time"
)

// Config describes an environment. The zero value is a strict environment
// with no clients on a free loopback port.
type Config struct {
	// Addr is the address to listen on, such as 127.0.0.1:8081. Empty means
	// a free port on 127.0.0.1.
	Addr string

	// Clients are the applications registered at start; [Server.AddClient]
	// adds more later.
	Clients []Client

	// WebhookURLs receive a `user.logout` event whenever a session ends.
	WebhookURLs []string
	// WebhookSecret signs webhook deliveries: "whsec_" followed by a base64
	// key, as the dashboard shows it. Empty means a random one, which
	// [Server.WebhookSecret] returns.
	WebhookSecret string

	// IdleTimeout ends a session that saw no sign-in or refresh for that
	// long; AbsoluteTimeout ends it that long after it began. Zero turns a
	// timeout off, as it is by default.
	IdleTimeout     time.Duration
	AbsoluteTimeout time.Duration

	// AccessTokenLifetime is how long access tokens live. Zero means five
	// minutes, Scalekit's default.
	AccessTokenLifetime time.Duration

	// HintlessLogout is what /oidc/logout does with a request that names a
	// client_id or a post_logout_redirect_uri but carries no id_token_hint.
	// Scalekit calls the ID token required for logout and documents nothing
	// else; the default refuses such a request.
	HintlessLogout HintlessLogout

	// AcceptEndedSessionHint makes /oidc/logout accept an id_token_hint whose
	// session has already ended (revoked through the API, expired or logged
	// out) as if it were live. By default such a request gets an error page
	// and no redirect: Scalekit does not document this case.
	AcceptEndedSessionHint bool

	// RevokeEndedSessionSucceeds makes revoking a known session that has
	// already ended answer with the session as it stands. By default it is
	// an error (FAILED_PRECONDITION, HTTP 400): Scalekit does not document
	// this case.
	RevokeEndedSessionSucceeds bool

	// RefreshReuseRevokesSession makes a refresh token used a second time
	// revoke the whole session, as some providers do on suspected theft. It
	// is refused with invalid_grant either way.
	RefreshReuseRevokesSession bool

	// DeliveryAttempts bounds the attempts at each back-channel or webhook
	// delivery. Zero means 4: the first and the 3 retries Scalekit documents
	// for webhooks.
	DeliveryAttempts int
	// DeliveryRetryDelay is the wait before the first retry; it doubles for
	// each next one. Zero means 100ms.
	DeliveryRetryDelay time.Duration
	// HTTPClient makes deliveries. Nil means a client with a 5-second
	// timeout.
	HTTPClient *http.Client

	// Upstream runs an upstream identity provider beside the environment,
	// for the users of its domains and the requests that name its
	// organization or connection. Off unless it names one of them.
	Upstream UpstreamConfig

	// Now is the environment's clock, for tests that move time to expire
	// sessions and tokens. It is called from the server's goroutines, so it
	// must be safe for concurrent use. Nil means time.Now.
	Now func() time.Time
}

// HintlessLogout is a reading of what /oidc/logout does without an
// id_token_hint; see [Config.HintlessLogout].
type HintlessLogout int

const (
	// RefuseHintlessLogout answers with a 400 error page, ends nothing and
	// redirects nowhere. A bare request, with neither client_id nor
	// post_logout_redirect_uri, is not hintless in this sense: it always ends
	// the cookie's session and shows the signed-out page.
	RefuseHintlessLogout HintlessLogout = iota
	// EndHintlessLogout ends the cookie's session and shows the signed-out
	// page, ignoring post_logout_redirect_uri.
	EndHintlessLogout
	// RedirectHintlessLogout ends the cookie's session and redirects to
	// post_logout_redirect_uri when it is registered for client_id (or, with
	// no client_id, for any client).
	RedirectHintlessLogout
)
