// SPDX-License-Identifier: Apache-2.0

package logout_test

import (
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/endsession/logout"
	"github.com/endsession/logout/scalekittest"
)

// appSession is what the app stores for a sign-in at the fake.
func (e *provEnv) appSession(tok providerTokens) logout.Session {
	return logout.Session{
		Issuer: e.fake.Issuer(), Subject: tok.UserID, SessionID: tok.SessionID, Email: "ada@example.com",
		IDToken: tok.IDToken, AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken,
		AccessTokenExpiry: time.Now().Add(time.Duration(tok.ExpiresIn) * time.Second),
	}
}

// newBackstopHandler is a Handler on store with the env's Provider and a
// short grace period.
func (e *provEnv) handler(t *testing.T, store logout.SessionStore, delay time.Duration, change func(*logout.Config)) *logout.Handler {
	t.Helper()
	h, _ := newHandler(t, store, func(c *logout.Config) {
		c.EndSessionEndpoint = e.fake.URL + "/oidc/logout"
		c.Provider = e.provider
		c.BackstopDelay = delay
		if change != nil {
			change(c)
		}
	})
	t.Cleanup(func() { // jobs still waiting are abandoned, and reported
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		h.Close(ctx)
	})
	return h
}

// A logout whose browser never reaches the provider still ends the provider
// session, once the grace period is over; and one whose browser does get
// there is left to the browser, not revoked over it.
func TestBackstopEndsAbandonedLogout(t *testing.T) {
	for name, newStore := range sharedStores(t) {
		t.Run(name, func(t *testing.T) {
			e := newProvEnv(t, scalekittest.Config{})
			_, rdb := newMini(t)
			store := newStore(rdb, newKey(t))
			h := e.handler(t, store, 100*time.Millisecond, nil)

			abandoned := e.signInAtFake(t, newJar(t), "ada@example.com")
			start := time.Now()
			resp := serve(h, logoutRequest(http.MethodPost, signIn(t, h, e.appSession(abandoned))))
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("logout: %d", resp.StatusCode)
			}
			// The browser goes away here. Nothing ends the session before
			// the grace period is over.
			if got := status(t, e.fake, abandoned.SessionID); got != scalekittest.StatusActive {
				t.Fatalf("provider session %s right after the logout, want active (the browser has its grace period)", got)
			}
			waitFor(t, 5*time.Second, "the backstop", func() bool { return status(t, e.fake, abandoned.SessionID) == scalekittest.StatusRevoked })
			t.Logf("provider session ended %v after a logout whose browser never came", time.Since(start).Round(time.Millisecond))

			jar := newJar(t)
			followed := e.signInAtFake(t, jar, "bob@example.com")
			resp = serve(h, logoutRequest(http.MethodPost, signIn(t, h, e.appSession(followed))))
			browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			if r, err := browser.Get(resp.Header.Get("Location")); err != nil || r.StatusCode != http.StatusFound {
				t.Fatalf("the browser at the end-session endpoint: %v %v", r.StatusCode, err)
			}
			revokes := e.calls.count("POST /api/v1/sessions/" + followed.SessionID + "/revoke")
			h.Close(context.Background()) // waits out the grace period and the check
			if got := status(t, e.fake, followed.SessionID); got != scalekittest.StatusLogout {
				t.Errorf("provider session %s, want logout (ended by the browser)", got)
			}
			if got := e.calls.count("POST /api/v1/sessions/"+followed.SessionID+"/revoke") - revokes; got != 0 {
				t.Errorf("the backstop revoked a session the browser had ended (%d calls)", got)
			}
		})
	}
}

// The backstop is off the request path: no call to the provider. Without a
// Provider a logout costs one Redis command; with one, the job is recorded
// in Redis before the logout answers, in one more command and round trip.
func TestBackstopCostsTheRequestNothing(t *testing.T) {
	defer logout.SetBackstopPoll(time.Hour)() // no claim among the commands counted
	e := newProvEnv(t, scalekittest.Config{})
	srv := startRedisServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rdb.Close() })
	counter := newCommandCounter(t, srv.Addr)
	for _, withProvider := range []bool{false, true} {
		h := e.handler(t, logout.NewRedisStore(rdb), time.Hour, func(c *logout.Config) {
			if !withProvider {
				c.Provider = nil
			}
		})
		// A first logout loads the scripts, as in a running app.
		serve(h, logoutRequest(http.MethodPost, signIn(t, h, e.appSession(e.signInAtFake(t, newJar(t), "ada@example.com")))))
		cookies := signIn(t, h, e.appSession(e.signInAtFake(t, newJar(t), "ada@example.com")))
		counter.Reset(t)
		before := e.calls.total()
		serve(h, logoutRequest(http.MethodPost, cookies))
		got := counter.Count(t)
		want := map[string]int{"getdel": 1}
		if withProvider {
			want["evalsha"] = 1
		}
		if !maps.Equal(got, want) {
			t.Errorf("Provider %v: logout sent %v to Redis, want %v", withProvider, got, want)
		}
		if got := e.calls.total() - before; got != 0 {
			t.Errorf("logout made %d calls to the provider on the request path, want 0", got)
		}
		if withProvider {
			if depth, _, err := logout.BackstopStats(context.Background(), h); err != nil || depth != 2 {
				t.Errorf("jobs recorded in Redis when the logout answered: %d, %v; want 2", depth, err)
			}
		}
	}
}

// A backstop that keeps failing is retried, then reported to
// OnBackstopError with the session it could not end, and logged.
func TestBackstopReportsFailures(t *testing.T) {
	defer logout.SetBackstopRetry(10 * time.Millisecond)()
	e := newProvEnv(t, scalekittest.Config{})
	var calls sync.Map
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := calls.LoadOrStore(r.URL.Path, new(int))
		*n.(*int)++
		if r.URL.Path == "/oauth/token" {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"access_token":"api-token-for-a-broken-provider","expires_in":300}`))
			return
		}
		http.Error(w, `{"message":"unavailable"}`, http.StatusServiceUnavailable)
	}))
	defer broken.Close()
	p, err := logout.NewProvider(logout.ProviderConfig{Issuer: broken.URL, ClientID: provClient, ClientSecret: provSecret})
	if err != nil {
		t.Fatal(err)
	}
	reported := make(chan error, 1)
	h, logs := newHandler(t, newMiniStore(t), func(c *logout.Config) {
		c.Provider = p
		c.BackstopDelay = time.Millisecond
		c.OnBackstopError = func(ctx context.Context, err error) { reported <- err }
	})
	tok := e.signInAtFake(t, newJar(t), "ada@example.com")
	serve(h, logoutRequest(http.MethodPost, signIn(t, h, e.appSession(tok))))
	var err2 error
	select {
	case err2 = <-reported:
	case <-time.After(5 * time.Second):
		t.Fatal("no failure reported")
	}
	var be *logout.BackstopError
	if !errors.As(err2, &be) || be.SessionID != tok.SessionID || !strings.Contains(err2.Error(), "503") {
		t.Errorf("reported %v, want a BackstopError for %s with the provider's 503", err2, tok.SessionID)
	}
	n, _ := calls.Load("/api/v1/sessions/" + tok.SessionID)
	if n == nil || *n.(*int) != 4 {
		t.Errorf("the session was read %v times, want 4 attempts", n)
	}
	if !strings.Contains(logs.String(), "backstop could not end the provider session") {
		t.Errorf("failure not logged: %s", logs)
	}
}

// Close waits for scheduled jobs, grace periods included. With a deadline,
// it abandons and reports each job waiting in this process; a job recorded
// in Redis stays there, unreported, and another instance finishes it.
func TestHandlerCloseDrainsTheBackstop(t *testing.T) {
	for _, kind := range []string{"in process", "redis"} {
		t.Run(kind, func(t *testing.T) {
			e := newProvEnv(t, scalekittest.Config{})
			_, rdb := newMini(t)
			newStore := func() logout.SessionStore {
				if kind == "redis" {
					return logout.NewRedisStore(rdb)
				}
				return newCookieStore(t)
			}
			h := e.handler(t, newStore(), 200*time.Millisecond, nil)
			tok := e.signInAtFake(t, newJar(t), "ada@example.com")
			serve(h, logoutRequest(http.MethodPost, signIn(t, h, e.appSession(tok))))
			if err := h.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := status(t, e.fake, tok.SessionID); got != scalekittest.StatusRevoked {
				t.Errorf("after Close: %s, want revoked (Close drains)", got)
			}

			var abandoned []error
			var mu sync.Mutex
			store := newStore()
			h = e.handler(t, store, time.Hour, func(c *logout.Config) {
				c.OnBackstopError = func(_ context.Context, err error) { mu.Lock(); abandoned = append(abandoned, err); mu.Unlock() }
			})
			tok = e.signInAtFake(t, newJar(t), "ada@example.com")
			serve(h, logoutRequest(http.MethodPost, signIn(t, h, e.appSession(tok))))
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			if err := h.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Close past its deadline: %v", err)
			}
			mu.Lock()
			switch {
			case kind == "in process" && (len(abandoned) != 1 || !strings.Contains(abandoned[0].Error(), tok.SessionID)):
				t.Errorf("reported %v, want the abandoned session", abandoned)
			case kind == "redis" && len(abandoned) != 0:
				t.Errorf("reported %v, want nothing: the job waits in Redis", abandoned)
			}
			abandoned = nil
			mu.Unlock()
			if kind == "redis" {
				// It waits there for the other instances (the Crash tests
				// show one finishing such a job).
				other := e.handler(t, logout.NewRedisStore(rdb), time.Hour, nil)
				if depth, _, err := logout.BackstopStats(context.Background(), other); err != nil || depth != 1 {
					t.Fatalf("jobs in Redis: %d, %v; want the one left behind, not yet due", depth, err)
				}
			}
			// A closed handler still logs out; the backstop reports it cannot help.
			tok = e.signInAtFake(t, newJar(t), "ada@example.com")
			if resp := serve(h, logoutRequest(http.MethodPost, signIn(t, h, e.appSession(tok)))); resp.StatusCode != http.StatusSeeOther {
				t.Errorf("logout after Close: %d", resp.StatusCode)
			}
			waitFor(t, 5*time.Second, "the refused job's report", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(abandoned) == 1 && strings.Contains(abandoned[0].Error(), "closed")
			})
		})
	}
}

// Sign out everywhere ends the user's provider sessions on the other devices
// at once, and this device's after the grace period.
func TestEverywhereAtTheProvider(t *testing.T) {
	for name, newStore := range sharedStores(t) {
		t.Run(name, func(t *testing.T) {
			e := newProvEnv(t, scalekittest.Config{})
			_, rdb := newMini(t)
			store := newStore(rdb, newKey(t))
			h := e.handler(t, store, time.Hour, nil)
			here := e.signInAtFake(t, newJar(t), "ada@example.com")
			phone := e.signInAtFake(t, newJar(t), "ada@example.com")
			other := e.signInAtFake(t, newJar(t), "bob@example.com")
			cookies := signIn(t, h, e.appSession(here))
			phoneCookies := signIn(t, h, e.appSession(phone))

			serve(h.Everywhere(), logoutRequest(http.MethodPost, cookies))
			waitFor(t, 5*time.Second, "the phone's provider session to end", func() bool {
				return status(t, e.fake, phone.SessionID) == scalekittest.StatusRevoked
			})
			if got := status(t, e.fake, here.SessionID); got != scalekittest.StatusActive {
				t.Errorf("this device's provider session: %s, want active until the browser gets there", got)
			}
			if got := status(t, e.fake, other.SessionID); got != scalekittest.StatusActive {
				t.Errorf("another user's session: %s", got)
			}
			if _, err := currentSession(h, phoneCookies); !errors.Is(err, logout.ErrNoSession) {
				t.Errorf("the phone's app session: %v, want ended", err)
			}
		})
	}
}

// listGate fails a Provider's first listing of a user's sessions with 503,
// and holds the next until the test releases it.
type listGate struct {
	next     http.RoundTripper
	mu       sync.Mutex
	lists    int
	failed   chan struct{}
	released chan struct{}
}

func (g *listGate) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/api/v1/users/") {
		g.mu.Lock()
		g.lists++
		n := g.lists
		g.mu.Unlock()
		if n == 1 {
			close(g.failed)
			return &http.Response{StatusCode: http.StatusServiceUnavailable, Header: http.Header{"Content-Type": {"application/json"}},
				Body: io.NopCloser(strings.NewReader(`{"code":14,"message":"unavailable"}`)), Request: r}, nil
		}
		<-g.released
	}
	return g.next.RoundTrip(r)
}

// "Sign out everywhere" and "sign out other devices" end, at the provider,
// only the sessions begun before the click: a retry after a session-API
// error spares a device the user signed in on while the job waited.
func TestEndOthersRetrySparesLaterSignIns(t *testing.T) {
	defer logout.SetBackstopRetry(10 * time.Millisecond)()
	for _, way := range []string{"everywhere", "other devices"} {
		t.Run(way, func(t *testing.T) {
			e := newProvEnv(t, scalekittest.Config{})
			gate := &listGate{next: e.calls, failed: make(chan struct{}), released: make(chan struct{})}
			p, err := logout.NewProvider(logout.ProviderConfig{
				Issuer: e.fake.Issuer(), ClientID: provClient, ClientSecret: provSecret, HTTPClient: &http.Client{Transport: gate},
			})
			if err != nil {
				t.Fatal(err)
			}
			logs := &logSink{}
			h := e.handler(t, newMiniStore(t), time.Hour, func(c *logout.Config) {
				c.Provider = p
				c.Logger = newLogger(logs)
			})
			here := e.signInAtFake(t, newJar(t), "ada@example.com")
			phone := e.signInAtFake(t, newJar(t), "ada@example.com")
			cookies := signIn(t, h, e.appSession(here))
			signIn(t, h, e.appSession(phone))

			if way == "everywhere" {
				serve(h.Everywhere(), logoutRequest(http.MethodPost, cookies))
			} else if _, err := h.EndOtherSessions(httptest.NewRecorder(), logoutRequest(http.MethodPost, cookies)); err != nil {
				t.Fatal(err)
			}
			<-gate.failed
			// The job waits to try again; meanwhile the user signs in on a
			// new device.
			later := e.signInAtFake(t, newJar(t), "ada@example.com")
			close(gate.released)
			waitFor(t, 5*time.Second, "the retry to finish", func() bool {
				return strings.Contains(logs.String(), "backstop ended the user's provider sessions on other devices") && strings.Contains(logs.String(), here.UserID)
			})
			if got := status(t, e.fake, phone.SessionID); got != scalekittest.StatusRevoked {
				t.Errorf("the phone's provider session (begun before the click): %s, want revoked", got)
			}
			if got := status(t, e.fake, later.SessionID); got != scalekittest.StatusActive {
				t.Errorf("the provider session begun after the click: %s, want active", got)
			}
		})
	}
}
