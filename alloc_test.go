// SPDX-License-Identifier: Apache-2.0

package logout_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/endsession/logout"
)

// Allocations per logout and per signed-in page, each store, as ceilings: a
// change that allocates more on either path fails here, on every machine
// alike, where a timing would need a quiet one. Each count is the whole
// request through the handler, httptest's recorder included; the Redis
// stores run on the real Redis, so that nothing else in the process
// allocates meanwhile (miniredis would). Lower a ceiling when a change saves
// allocations; raise one only for a reason the commit gives.
func TestAllocationCeilings(t *testing.T) {
	if raceDetector {
		t.Skip("the race detector allocates of its own; CI runs this test without it too")
	}
	tests := []struct {
		name         string
		store        func(t *testing.T) logout.SessionStore
		logout, page float64
	}{
		{"CookieStore", func(t *testing.T) logout.SessionStore { return newCookieStore(t) }, 21, 12},
		{"RevocableCookieStore", func(t *testing.T) logout.SessionStore { return benchRevocableStore(t, true) }, 42, 29},
		{"RedisStore", func(t *testing.T) logout.SessionStore { return benchRedisStore(t, true) }, 32, 23},
		{"RedisStore, client without ContextTimeoutEnabled", func(t *testing.T) logout.SessionStore { return benchRedisStore(t, false) }, 36, 27},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := tt.store(t)
			if got := logoutAllocs(t, store); got > tt.logout {
				t.Errorf("logout: %v allocations, ceiling %v", got, tt.logout)
			} else if got < tt.logout {
				t.Logf("logout: %v allocations, under the ceiling of %v: lower it", got, tt.logout)
			}
			if got := pageAllocs(t, store); got > tt.page {
				t.Errorf("signed-in page: %v allocations, ceiling %v", got, tt.page)
			} else if got < tt.page {
				t.Logf("signed-in page: %v allocations, under the ceiling of %v: lower it", got, tt.page)
			}
		})
	}
}

// allocRuns is how many requests each count averages: enough that the
// rare allocation of a background goroutine (go-redis's pool, a timer)
// rounds away.
const allocRuns = 200

// logoutAllocs is the allocations of one logout through ServeHTTP, each of
// a session of its own, signed in beforehand.
func logoutAllocs(t *testing.T, store logout.SessionStore) float64 {
	h := allocHandler(t, store)
	reqs := make([]*http.Request, allocRuns+1) // AllocsPerRun runs once more to warm up
	for i := range reqs {
		reqs[i] = logoutRequest(http.MethodPost, benchSignIn(t, h))
	}
	i := 0
	return testing.AllocsPerRun(allocRuns, func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, reqs[i])
		i++
		if rec.Code != http.StatusSeeOther || len(rec.Header()["Set-Cookie"]) == 0 {
			t.Fatalf("logout: status %d", rec.Code)
		}
	})
}

// pageAllocs is the allocations of one signed-in page: the middleware loads
// and renews the session (idle timeout on, in its steady state: no cookie
// written), and the page reads it.
func pageAllocs(t *testing.T, store logout.SessionStore) float64 {
	h := allocHandler(t, store)
	page := h.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := logout.SessionFromContext(r.Context()); err != nil {
			http.Error(w, "signed out", http.StatusUnauthorized)
		}
	}))
	r := httptest.NewRequest(http.MethodGet, testAppOrigin+"/account", nil)
	for _, c := range benchSignIn(t, h) {
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	return testing.AllocsPerRun(allocRuns, func() {
		rec := httptest.NewRecorder()
		page.ServeHTTP(rec, r)
		if rec.Code != http.StatusOK || len(rec.Header()["Set-Cookie"]) != 0 {
			t.Fatalf("page: status %d, Set-Cookie %q", rec.Code, rec.Header()["Set-Cookie"])
		}
	})
}

func allocHandler(t *testing.T, store logout.SessionStore) *logout.Handler {
	return benchHandler(t, store, func(c *logout.Config) { c.IdleTimeout = 30 * time.Minute })
}
