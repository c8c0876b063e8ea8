// SPDX-License-Identifier: Apache-2.0

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
	// long; AbsoluteTimeout ends it that long after it began. Zero means
	// 7 days and 30 days. Scalekit documents no default session policy:
	// these are the timeouts the API reference's user.logout example
	// shows, idle_expires_at 7 days after last_active_at and
	// absolute_expires_at 30 days after created_at (developer-docs
	// openapi/scalekit.yaml, webhooks user.logout). A session always has
	// both expiry times, as the example and UserAuthEventData, where only
	// expired_at and logout_at may be null, have them.
	IdleTimeout     time.Duration
	AbsoluteTimeout time.Duration
	// NoIdleTimeout turns the idle timeout off, as the dashboard's switch
	// does (idle_session_timeout_enabled, developer-docs
	// openapi/scalekit.yaml, organizationsOrganizationSessionPolicySettings):
	// a session then ends only at its absolute timeout, and its
	// idle_expires_at, which the reference never shows null, reports that
	// moment (undocumented: strictest reading, the earliest the session
	// can end).
	NoIdleTimeout bool

	// AccessTokenLifetime is how long the access tokens of a sign-in or a
	// refresh live. Zero means five minutes, the default the guides give
	// (developer-docs src/content/docs/authenticate/fsa/multiapp/web-app.mdx,
	// "Token roles").
	AccessTokenLifetime time.Duration

	// ClientCredentialsLifetime is how long a client_credentials access
	// token, the session API's key, lives. Zero means 86,399 seconds, the
	// expires_in of every documented example of that grant's reply
	// (developer-docs src/content/docs/guides/authenticate-scalekit-api.mdx).
	ClientCredentialsLifetime time.Duration

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

	// WebhookLowerCaseStatus spells the status of a user.logout webhook's
	// user_session in lower case (logout, revoked, expired), as the session
	// API does (sessions.pb.go in scalekit-inc/scalekit-sdk-go;
	// sessionsSessionDetails in developer-docs openapi/scalekit.yaml). By
	// default it is upper case (LOGOUT, REVOKED, EXPIRED), as the webhook's
	// own example in that reference shows it (ACTIVE). Undocumented which
	// one Scalekit sends: a receiver should compare without regard to case,
	// and a test can run under both.
	WebhookLowerCaseStatus bool

	// WebhookAny2xx counts any 2xx answer to a webhook as delivered, as the
	// dashboard's log guide describes success ("a 2xx status code":
	// developer-docs src/content/docs/guides/dashboard/auth-logs.mdx,
	// "Webhook delivery statuses"). By default only 200, 201 and 202 do,
	// the answers the webhook guide lists (implement-webhooks.mdx, "Return
	// success responses"), and a 204 is a failure that is retried: the
	// sources disagree, and the default is the stricter of the two.
	WebhookAny2xx bool

	// DeliveryRetryDelays are the waits before each retry of a webhook or
	// back-channel delivery, in order: one attempt, then one more after each
	// wait, until one is delivered. Nil means the schedule Scalekit's
	// webhook guide details: 5 seconds, 30 seconds, 2 minutes, 5 minutes
	// and 15 minutes, six attempts over about 22 minutes
	// (developer-docs src/content/docs/authenticate/implement-workflows/
	// implement-webhooks.mdx, "Retry schedule"). The guides also say "up
	// to 3 times" (same page, above) and "after 1, 5 and 15 minutes"
	// (guides/dashboard/auth-logs.mdx); the detailed schedule is the one
	// taken. An empty, non-nil slice means no retry. Tests pass short
	// waits, such as a millisecond each.
	DeliveryRetryDelays []time.Duration
	// DeliveryTimeout is how long each attempt waits for the receiver's
	// answer. Zero means 10 seconds, the window the webhook guide gives
	// (implement-webhooks.mdx, "Webhook response requirements").
	DeliveryTimeout time.Duration
	// HTTPClient makes deliveries. Nil means a plain client; every attempt
	// is bounded by DeliveryTimeout either way.
	HTTPClient *http.Client

	// Users and Organizations are created at start, before any sign-in:
	// a test names its users' IDs, roles and metadata instead of taking
	// the ones a first sign-in makes up. [Server.AddUser] and
	// [Server.AddOrganization] add more later.
	Users         []User
	Organizations []Organization

	// Upstreams are the upstream identity providers, each behind an
	// enterprise SSO connection of its own, as an organization's Okta or
	// Entra ID sits behind Scalekit. Each runs beside the environment on
	// an origin of its own, for the users of its domains and the requests
	// that name its organization or connection.
	Upstreams []UpstreamConfig

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
