// SPDX-License-Identifier: Apache-2.0

// The package documentation: what logout does, how to mount it, and where
// each part lives.

// Package logout signs a user out of a web app that signed them in with
// Scalekit or any other OpenID Connect provider, in all three places their
// session lives.
//
// A signed-in user has an app session (a cookie, and with [RedisStore] a record
// every instance shares), a session at the provider (Scalekit's own HttpOnly
// cookie on its domain), and often one at the upstream identity provider that
// Scalekit federates to (an organization's Okta or Entra ID). Logging out ends
// the first two:
//
//  1. The [Handler] reads the session cookie and ends the app session in the
//     [SessionStore] with one atomic call that also returns what the session
//     held, so the ID token is in hand before anything is gone. With a store
//     that keeps server-side state ([RedisStore], [RevocableCookieStore]) no
//     copy of the cookie works afterwards, on any instance.
//  2. It expires every app cookie with exactly the attributes it was set with.
//  3. It sends the browser, as a top-level navigation, to the provider's
//     end-session endpoint with id_token_hint and an allow-listed
//     post_logout_redirect_uri. Only a navigation carries the provider's own
//     cookie, so only a navigation ends the provider's session; the provider
//     then sends the browser back. With a [Provider] configured, the handler
//     also ends that session from the server a little later, in case the
//     browser never got there.
//
// The upstream identity provider's session lives on: that is single sign-on,
// and nothing Scalekit documents ends it. So after a perfect logout, the next
// "Sign in" on that browser can pass straight through to the previous user's
// account. Config.ReauthenticateAfterLogout (always on for "sign out
// everywhere") makes that next sign-in send prompt=login, through
// [Handler.PromptLogin], which asks for credentials again wherever the
// provider honours it.
//
// Mount the handler like any other:
//
//	h, err := logout.New(ctx, logout.Config{ /* … */ })
//	http.Handle("/logout", h)
//
// The same Handler gives the sign-in side its half ([Handler.StartSession],
// [Handler.Session], [Handler.UpdateSession]), so the cookie is always written
// and deleted with the same name, path, domain and flags.
//
// # A map of the source
//
// Each file holds one idea; read handler.go first, top to bottom.
//
//   - The logout: handler.go (the endpoint and its flow), config.go (what a
//     Handler is set up with, checked by [New]), cookies.go (the cookies
//     written and expired), broadcast.go (telling other tabs).
//   - Signing in and staying signed in: session.go (start, read, update),
//     refresh.go and refresh_sync.go (new tokens from the provider, one
//     refresh at a time).
//   - Stores: store.go ([Session], [SessionStore] and the optional
//     interfaces), store_redis.go and store_redis_sessions.go ([RedisStore]),
//     store_cookie.go ([CookieStore], [RevocableCookieStore]), revocation.go
//     ([RevocationList]), codec.go (the session's bytes). Their Redis
//     plumbing: redis_calls.go, redis_durability.go ([ErrNotConfirmed]),
//     redis_scripts.go (every Lua script).
//   - Endings that start elsewhere: backchannel.go, webhook.go, keyset.go
//     (the provider's signing keys); active_sessions.go (a user's list of
//     sessions, "sign out other devices" and the others of "everywhere");
//     sessionend.go (the one hook that hears every ending).
//   - The provider's side: provider.go ([Provider], its session API),
//     backstop.go (ending the provider session from the server),
//     backstop_redis.go (its jobs kept in Redis, which any instance
//     finishes), discovery.go.
//   - Running it: telemetry.go (the OpenTelemetry metrics and spans every
//     flow reports; [Config.MeterProvider] lists them) and
//     telemetry_names.go (their names, attributes and values).
//
// The package scalekittest runs a fake Scalekit for tests, and
// cmd/fakescalekit serves it to apps in any language; cmd/logoutdemo is a
// complete app built on this package.
package logout
