// SPDX-License-Identifier: Apache-2.0

// Package scalekittest runs a Scalekit environment inside a test process, the
// way net/http/httptest runs a web server, or on its own through
// cmd/fakescalekit, for apps written in any language.
//
// It speaks Scalekit's protocols as Scalekit documents them and as its
// official Node SDK calls them: discovery, the authorization-code flow with
// PKCE, refresh tokens that rotate, RS256 ID and access tokens signed by
// /keys, the client_credentials grant, the end-session endpoint, the session
// API over REST and over gRPC (HTTP/2 without TLS, on the same port),
// back-channel logout tokens and Standard Webhooks `user.logout` events, and
// idle and absolute session timeouts.
//
// Its sign-in form takes any email address; an authorization request with a
// login_hint skips the form and signs that address in, a shortcut for tests,
// unless it carries prompt=login, which asks for the form (filled in with
// the hint), or prompt=none, which never shows a form nor signs anyone in. [NewBrowser] and [Server.SignIn] drive the forms as a user
// would, and [Server.Authorizations] tells which forms each sign-in showed.
//
// It keeps its own session in its own HttpOnly cookie, as Scalekit does, so a
// test can see the three-layer logout for real: a second authorization while
// the cookie lives returns at once without the sign-in form, and only a
// browser navigation to /oidc/logout, carrying that cookie, ends it. Several
// registered clients can share one session, as apps do with single sign-on.
//
// With [Config.Upstreams] it also runs upstream identity providers, each on
// an origin of its own, the way an organization's enterprise SSO connection
// puts Okta or Entra ID behind Scalekit: a sign-in that names that
// organization or connection, or is for an address of its email domains,
// goes there and back through the browser. Each upstream keeps its own
// session in its own cookie, so that a user who logged out here is signed
// straight back in through it, without a password, as long as it lives: the
// third layer of logout. A connection with Scalekit's "Enable IDP logout"
// ([UpstreamConfig.IDPLogoutRequired]) takes the browser through the
// upstream's own logout when it logs out here, which ends that session too;
// prompt=login reaches an upstream only when [UpstreamConfig.ForwardPrompt]
// says Scalekit passes it on.
//
// Tests in any language see what the fake saw through its own read-only
// inspection API under [InspectionPath] (JSON, behind a client's
// credentials); Scalekit has no such endpoints.
//
// Where Scalekit's documentation leaves a behaviour open, [Config] names an
// option for it, and the default is the strictest reading: an error page
// that redirects nowhere.
//
// Its files: server.go starts it and routes requests; config.go, clients.go
// and users.go hold what it is configured with; authorize.go, federation.go
// and upstream.go the sign-in, through the environment's form or an
// upstream provider; token.go and keys.go the tokens; endsession.go and
// idplogout.go the logout; sessions.go, api.go and grpc.go the sessions and
// the session API; notify.go the back-channel and webhook deliveries;
// inspect.go the inspection API; browser.go the test browser.
//
// It is not a security boundary and must never face the internet.
package scalekittest
