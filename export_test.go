// SPDX-License-Identifier: Apache-2.0

package logout

import (
	"context"
	"encoding/base64"
	"slices"
	"time"
)

// Tests move the stores' clocks with these; nothing outside the tests can.

func SetRedisStoreClock(s *RedisStore, now func() time.Time) { s.now = now }

func SetCookieStoreClock(s SessionStore, now func() time.Time) {
	switch c := s.(type) {
	case *CookieStore:
		c.now = now
	case *RevocableCookieStore:
		c.now = now
	default:
		panic("SetCookieStoreClock: not a cookie store")
	}
}

// SIDPointerKey is the key of the pointer from a provider session to its user.
func SIDPointerKey(s *RedisStore, issuer, sid string) string { return s.sidPointer(issuer, sid) }

// KeyRefetchInterval is the least time between two fetches of the issuer's
// keys that logout tokens cause.
const KeyRefetchInterval = keyRefetchInterval

// SetBackChannelClock makes b read the time from now: for the iat, exp and
// nbf checks, and for the interval between fetches of the issuer's keys. Set
// it before b serves a request.
func SetBackChannelClock(b *BackChannelHandler, now func() time.Time) {
	b.now = now
}

// SessionFormatOf opens a sealed cookie value of store bound to the cookie
// name and returns the format byte of the session inside.
func SessionFormatOf(t interface{ Fatal(...any) }, store *CookieStore, cookie, token string) byte {
	c := store.bind(binding{cookie: cookie}).(*CookieStore)
	sealed, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := c.aeads[0].Open(nil, nil, sealed, c.aad)
	if err != nil {
		t.Fatal(err)
	}
	return plain[handleLen]
}

// SetBackstopRetry sets the wait before a failed backstop job's retry.
func SetBackstopRetry(d time.Duration) (restore func()) {
	old := backstopFirstRetry
	backstopFirstRetry = d
	return func() { backstopFirstRetry = old }
}

// SetProviderClock makes p read the time from now.
func SetProviderClock(p *Provider, now func() time.Time) { p.now = now }

// SetBackstopPoll sets the longest wait between two claims of the
// backstop's queue in Redis.
func SetBackstopPoll(d time.Duration) (restore func()) {
	old := backstopPoll
	backstopPoll = d
	return func() { backstopPoll = old }
}

// BackstopStats is what the backstop reports of its queue.
func BackstopStats(ctx context.Context, h *Handler) (depth int, oldestDue time.Duration, err error) {
	return h.backstop.stats(ctx)
}

// Instrument is one of the package's instruments as telemetry.go names it,
// with each attribute it carries and the attribute's values, for the tests
// that hold the documentation to them.
type Instrument struct {
	Name, Kind, Unit string
	Attributes       map[string][]string
}

// Instruments lists every instrument the package reports.
func Instruments() []Instrument {
	column := func(names [][2]string, i int) []string {
		var out []string
		for _, n := range names {
			if n[i] != "" && !slices.Contains(out, n[i]) {
				out = append(out, n[i])
			}
		}
		return out
	}
	var reasons []string
	for _, r := range endReasons {
		reasons = append(reasons, string(r))
	}
	return []Instrument{
		{metricLogouts, "counter", "{logout}", map[string][]string{
			attrLogoutOutcome: column(logoutOutcomeNames[:], 0), attrLogoutReason: column(logoutOutcomeNames[:], 1),
			attrEverywhere: {"true", "false"},
		}},
		{metricSessionsEnded, "counter", "{session}", map[string][]string{attrEndReason: reasons}},
		{metricStoreDuration, "histogram", "s", map[string][]string{attrStoreOp: storeOpNames[:], attrStoreOutcome: storeOutcomeNames[:]}},
		{metricBackstopJobs, "counter", "{job}", map[string][]string{attrBackstopEvent: backstopEventNames[:]}},
		{metricBackstopDepth, "gauge", "{job}", nil},
		{metricBackstopAge, "gauge", "s", nil},
		{metricDeliveries, "counter", "{delivery}", map[string][]string{
			attrDeliveryKind: deliveryKindNames[:], attrDeliveryOutcome: column(deliveryOutcomeNames[:], 0),
			attrDeliveryReason: column(deliveryOutcomeNames[:], 1),
		}},
		{metricRefreshes, "counter", "{refresh}", map[string][]string{attrRefreshOutcome: refreshOutcomeNames[:]}},
		{metricProviderCalls, "histogram", "s", map[string][]string{attrProviderOp: providerOpNames[:], attrProviderOutcome: providerOutcomeNames[:]}},
	}
}
