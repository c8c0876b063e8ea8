// SPDX-License-Identifier: Apache-2.0

// What the telemetry reports: every instrument's and span's name, their
// attributes and the few values each takes, and how a flow's result maps to
// them.

package logout

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// instrumentationScope names the meter and the tracer: the module path, as
// OpenTelemetry asks of a library that instruments itself.
const instrumentationScope = "github.com/endsession/logout"

// The instruments' names. Config.MeterProvider's documentation lists them
// with their units and attributes, as docs/production.md does.
const (
	metricLogouts       = "logout.requests"
	metricSessionsEnded = "logout.sessions.ended"
	metricStoreDuration = "logout.store.duration"
	metricBackstopJobs  = "logout.backstop.jobs"
	metricBackstopDepth = "logout.backstop.queue.depth"
	metricBackstopAge   = "logout.backstop.queue.oldest_due_age"
	metricDeliveries    = "logout.deliveries"
	metricRefreshes     = "logout.refreshes"
	metricProviderCalls = "logout.provider.duration"
)

// The attributes' names. Each has a few fixed values, named below.
const (
	attrLogoutOutcome   = "logout.outcome"
	attrLogoutReason    = "logout.refused.reason"
	attrEverywhere      = "logout.everywhere"
	attrEndReason       = "logout.end.reason"
	attrStoreOp         = "logout.store.operation"
	attrStoreOutcome    = "logout.store.outcome"
	attrBackstopEvent   = "logout.backstop.event"
	attrDeliveryKind    = "logout.delivery.kind"
	attrDeliveryOutcome = "logout.delivery.outcome"
	attrDeliveryReason  = "logout.delivery.refused.reason"
	attrRefreshOutcome  = "logout.refresh.outcome"
	attrProviderOp      = "logout.provider.operation"
	attrProviderOutcome = "logout.provider.outcome"
)

// durationBuckets are the histograms' bucket bounds, in seconds: those
// OpenTelemetry advises for HTTP durations, up to ten seconds (a provider
// call's default timeout), with finer ones below 5 ms, where a Redis call on
// the same network lands.
var durationBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// logoutOutcome is how a logout request ended, refusals by their reason.
type logoutOutcome uint8

const (
	logoutEnded logoutOutcome = iota
	logoutNoSession
	logoutStoreError
	logoutRefusedMethod
	logoutRefusedCrossOrigin
	logoutRefusedBadRequest
	numLogoutOutcomes
)

// logoutOutcomeNames gives each outcome's logout.outcome and, for a
// refusal, its logout.refused.reason.
var logoutOutcomeNames = [numLogoutOutcomes][2]string{
	logoutEnded:              {"ended", ""},
	logoutNoSession:          {"no_session", ""},
	logoutStoreError:         {"store_error", ""},
	logoutRefusedMethod:      {"refused", "method"},
	logoutRefusedCrossOrigin: {"refused", "cross_origin"},
	logoutRefusedBadRequest:  {"refused", "bad_request"},
}

// refusedLogout names checkRequest's refusal for the metrics.
func refusedLogout(err error) logoutOutcome {
	if err == errMethodNotAllowed {
		return logoutRefusedMethod
	}
	return logoutRefusedCrossOrigin
}

// logoutOutcomeOf names a logout that got past the checks for the metrics.
func logoutOutcomeOf(storeErr error, acknowledged bool) logoutOutcome {
	switch {
	case storeErr != nil:
		return logoutStoreError
	case acknowledged:
		return logoutEnded
	}
	return logoutNoSession
}

// storeOp is a kind of store call the package times.
type storeOp uint8

const (
	storeEnd storeOp = iota
	storeLoad
	storeRenew
	storeSave
	storeUpdate
	storeEndSID
	storeEndSubject
	storeSeen
	storeRemember
	storeList
	storeEndHandle
	storeEndOthers
	numStoreOps
)

var storeOpNames = [numStoreOps]string{
	storeEnd: "end", storeLoad: "load", storeRenew: "renew", storeSave: "save", storeUpdate: "update",
	storeEndSID: "end_sid", storeEndSubject: "end_subject", storeSeen: "seen", storeRemember: "remember",
	storeList: "list", storeEndHandle: "end_handle", storeEndOthers: "end_others",
}

// revokeOp is the store call revokeAndReport makes: by sid, or by user.
func revokeOp(sid string) storeOp {
	if sid != "" {
		return storeEndSID
	}
	return storeEndSubject
}

type storeOutcome uint8

const (
	storeOK storeOutcome = iota
	storeNoSession
	storeNotConfirmed
	storeTimeout
	storeError
	numStoreOutcomes
)

var storeOutcomeNames = [numStoreOutcomes]string{"ok", "no_session", "not_confirmed", "timeout", "error"}

// storeOutcomeOf sorts a store call's error. Missing, expired and tampered
// sessions are all no_session: for the store that is an answer, not a
// failure.
func storeOutcomeOf(err error) storeOutcome {
	switch {
	case err == nil:
		return storeOK
	case errors.Is(err, ErrNoSession):
		return storeNoSession
	case errors.Is(err, ErrNotConfirmed):
		return storeNotConfirmed
	case errors.Is(err, context.DeadlineExceeded):
		return storeTimeout
	}
	return storeError
}

// backstopEvent is what happened to a backstop job. A job counts once as
// scheduled and once more as ended, done, failed or dropped.
type backstopEvent uint8

const (
	backstopScheduled backstopEvent = iota
	backstopEnded                   // finished, having ended provider sessions
	backstopDone                    // finished with nothing to end: the browser got there first
	backstopFailed                  // tried, and given up after its retries
	backstopDropped                 // never tried: the queue was full, or the handler closed
	numBackstopEvents
)

var backstopEventNames = [numBackstopEvents]string{"scheduled", "ended", "done", "failed", "dropped"}

// jobFinished is the event of a job that succeeded.
func jobFinished(ended bool) backstopEvent {
	if ended {
		return backstopEnded
	}
	return backstopDone
}

// deliveryKind is which receiver a delivery came to.
type deliveryKind uint8

const (
	deliveryWebhook deliveryKind = iota
	deliveryBackChannel
	numDeliveryKinds
)

var deliveryKindNames = [numDeliveryKinds]string{"webhook", "back_channel"}

// deliveryOutcome is how a delivery was answered, refusals by their reason.
type deliveryOutcome uint8

const (
	deliveryVerified         deliveryOutcome = iota // verified, and its sessions ended
	deliveryIgnored                                 // verified, of a type that ends nothing
	deliveryReplayed                                // verified, and handled before
	deliveryStoreUnavailable                        // verified; the store failed, the sender retries
	deliveryKeyUnavailable                          // the signing key could not be fetched; the sender retries
	deliveryRefusedMethod
	deliveryRefusedHeaders
	deliveryRefusedTimestamp
	deliveryRefusedSignature
	deliveryRefusedTooLarge
	deliveryRefusedMalformed
	deliveryRefusedTokenType
	deliveryRefusedClaims
	numDeliveryOutcomes
)

// deliveryOutcomeNames gives each outcome's logout.delivery.outcome and, for
// a refusal, its logout.delivery.refused.reason.
var deliveryOutcomeNames = [numDeliveryOutcomes][2]string{
	deliveryVerified:         {"verified", ""},
	deliveryIgnored:          {"ignored", ""},
	deliveryReplayed:         {"replayed", ""},
	deliveryStoreUnavailable: {"store_unavailable", ""},
	deliveryKeyUnavailable:   {"key_unavailable", ""},
	deliveryRefusedMethod:    {"refused", "method"},
	deliveryRefusedHeaders:   {"refused", "headers"},
	deliveryRefusedTimestamp: {"refused", "timestamp"},
	deliveryRefusedSignature: {"refused", "signature"},
	deliveryRefusedTooLarge:  {"refused", "too_large"},
	deliveryRefusedMalformed: {"refused", "malformed"},
	deliveryRefusedTokenType: {"refused", "token_type"},
	deliveryRefusedClaims:    {"refused", "claims"},
}

// refusal tags err with the reason a receiver's metrics give its refusal.
func refusal(o deliveryOutcome, err error) error { return &refusedError{o, err} }

type refusedError struct {
	outcome deliveryOutcome
	err     error
}

func (e *refusedError) Error() string { return e.err.Error() }
func (e *refusedError) Unwrap() error { return e.err }

// refusalOf is the outcome err was tagged with, or def.
func refusalOf(err error, def deliveryOutcome) deliveryOutcome {
	var r *refusedError
	if errors.As(err, &r) {
		return r.outcome
	}
	return def
}

// refreshOutcome is how a refresh this instance attempted ended.
type refreshOutcome uint8

const (
	refreshFailed    refreshOutcome = iota // the zero value: an error, unless marked otherwise
	refreshRotated                         // this refresh redeemed the token and stored the new ones
	refreshJoined                          // another refresh, on this instance or another, had done it
	refreshRefused                         // the provider refused the token; the session ended
	refreshNoSession                       // the session was gone before anything was asked
	numRefreshOutcomes
)

var refreshOutcomeNames = [numRefreshOutcomes]string{"failed", "rotated", "joined", "refused", "no_session"}

// refreshOutcomeOf sorts a refresh's result: refresh marks the rotations
// and refusals it makes; any other success took another refresh's tokens.
func refreshOutcomeOf(res refreshResult) refreshOutcome {
	switch {
	case res.outcome != refreshFailed:
		return res.outcome
	case res.err == nil:
		return refreshJoined
	case errors.Is(res.err, ErrNoSession):
		return refreshNoSession
	}
	return refreshFailed
}

// providerOp is a call to the provider's API or token endpoint.
type providerOp uint8

const (
	providerGetSession providerOp = iota
	providerRevokeSession
	providerListSessions
	providerTokenClient
	providerTokenRefresh
	numProviderOps
)

var providerOpNames = [numProviderOps]string{"get_session", "revoke_session", "list_user_sessions", "token_client_credentials", "token_refresh"}

// providerRoutes are the paths of the calls, their IDs left out.
var providerRoutes = [numProviderOps]string{
	"/api/v1/sessions/{session_id}", "/api/v1/sessions/{session_id}/revoke", "/api/v1/users/{user_id}/sessions", "/oauth/token", "/oauth/token",
}

// apiOp names a session-API call by its method and path.
func apiOp(method, path string) providerOp {
	switch {
	case strings.HasPrefix(path, "/api/v1/users/"):
		return providerListSessions
	case method == http.MethodPost:
		return providerRevokeSession
	}
	return providerGetSession
}

// grantOp names a token endpoint call by its grant.
func grantOp(form url.Values) providerOp {
	if form.Get("grant_type") == "refresh_token" {
		return providerTokenRefresh
	}
	return providerTokenClient
}

type providerOutcome uint8

const (
	providerOK providerOutcome = iota
	providerNotFound
	providerRefused     // a 4xx answer: the request or the credentials were refused
	providerUnavailable // a 5xx answer, or 429
	providerFailed      // no answer: network, timeout, or an answer that could not be read
	numProviderOutcomes
)

var providerOutcomeNames = [numProviderOutcomes]string{"ok", "not_found", "refused", "unavailable", "error"}

func providerOutcomeOf(status int, err error) providerOutcome {
	switch {
	case status == 0 || (err != nil && status < 300):
		return providerFailed
	case status < 300:
		return providerOK
	case status == http.StatusNotFound:
		return providerNotFound
	case status == http.StatusTooManyRequests || status >= 500:
		return providerUnavailable
	}
	return providerRefused
}

// The span names, which are few, as OpenTelemetry asks.
const (
	spanLogout      = "logout"
	spanWebhook     = "logout.webhook"
	spanBackChannel = "logout.back_channel"
	spanRefresh     = "logout.refresh"
	spanBackstopJob = "logout.backstop.job"
)

var storeSpanNames, providerSpanNames = func() (s [numStoreOps]string, p [numProviderOps]string) {
	for i, n := range storeOpNames {
		s[i] = "logout.store." + n
	}
	for i, n := range providerOpNames {
		p[i] = "logout.provider." + n
	}
	return
}()

var (
	internalSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal)}
	clientSpan   = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}
	// noSpan is what a flow holds when no span was started: it records
	// nothing and costs nothing to call.
	noSpan trace.Span = tracenoop.Span{}
)
