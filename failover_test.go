// SPDX-License-Identifier: Apache-2.0

package logout_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/endsession/logout"
	"github.com/endsession/logout/internal/testenv"
)

// TestSentinelStore runs the store on a Sentinel-managed primary and replica
// through a failover client, as an app would: a saved session loads, a logout
// through the Handler ends it, and the cookie copied before the logout is
// dead. With WaitReplicas a logout costs the primary two commands, GETDEL and
// WAIT, sent together in one round trip. It also logs what the WAIT costs on
// a healthy pair.
func TestSentinelStore(t *testing.T) {
	sen := testenv.StartSentinel(t)
	rdb := sen.Client()
	trips := &tripCounter{}
	rdb.AddHook(trips)
	store := logout.NewRedisStore(rdb)
	store.WaitReplicas = 1
	h, _ := newHandler(t, store, func(c *logout.Config) { c.FailOnStoreError = true })

	s := testSession()
	cookies := signIn(t, h, s)
	if got, err := currentSession(h, cookies); err != nil || got.Subject != s.Subject {
		t.Fatalf("session before logout: %v, %v; want subject %s", got.Subject, err, s.Subject)
	}
	counter := newCommandCounter(t, sen.Primary().Addr)
	counter.Reset(t)
	trips.reset()
	resp := serve(h, logoutRequest(http.MethodPost, cookies))
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: status %d, want %d", resp.StatusCode, http.StatusSeeOther)
	}
	got := counter.Count(t)
	// The sentinels PING the primary, read its INFO and PUBLISH their hello
	// messages on their own schedule; none of that is the logout's.
	for _, c := range []string{"ping", "info", "publish"} {
		delete(got, c)
	}
	if want := map[string]int{"getdel": 1, "wait": 1}; !maps.Equal(got, want) {
		t.Errorf("a logout sent the primary %v, want %v", got, want)
	}
	if got, want := trips.get(), [][]string{{"getdel", "wait"}}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("a logout made round trips %v, want %v", got, want)
	}
	if _, err := currentSession(h, cookies); !errors.Is(err, logout.ErrNoSession) {
		t.Errorf("copied cookie after logout: %v, want %v", err, logout.ErrNoSession)
	}

	// What the WAIT costs: logouts with and without it, alternated on the
	// same pair, so both see the same machine.
	plain := logout.NewRedisStore(rdb)
	hPlain, _ := newHandler(t, plain, func(c *logout.Config) { c.FailOnStoreError = true })
	const n = 300
	var with, without []time.Duration
	for range n {
		for _, x := range []struct {
			h   *logout.Handler
			out *[]time.Duration
		}{{hPlain, &without}, {h, &with}} {
			cookies := signIn(t, x.h, s)
			start := time.Now()
			resp := serve(x.h, logoutRequest(http.MethodPost, cookies))
			*x.out = append(*x.out, time.Since(start))
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("logout: status %d, want %d", resp.StatusCode, http.StatusSeeOther)
			}
		}
	}
	mw, mo := median(with), median(without)
	t.Logf("median logout latency over %d logouts each: %v without WAIT, %v with WaitReplicas=1: the WAIT adds %v", n, mo, mw, mw-mo)
}

// TestSentinelUnconfirmedLogout: a logout that no replica confirmed is never
// acknowledged (OnLogout is not called; OnError gets ErrNotConfirmed), yet the
// session is ended on the primary, stays ended once the replica catches up,
// and the browser still takes its ID token to the provider (or, with
// FailOnStoreError, gets 503).
func TestSentinelUnconfirmedLogout(t *testing.T) {
	sen := testenv.StartSentinel(t)
	rdb := sen.Client()
	store := logout.NewRedisStore(rdb)
	store.WaitReplicas = 1
	store.WaitTimeout = failoverWaitTimeout
	list := logout.NewRevocationList(rdb)
	list.WaitReplicas = 1
	list.WaitTimeout = failoverWaitTimeout
	cookieStore, err := logout.NewRevocableCookieStore(list, newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	type user struct {
		name       string
		failClosed bool
		h          *logout.Handler
		cookies    []*http.Cookie
		ended      []logout.Session
		errs       []error
	}
	var users []*user
	for _, s := range []logout.SessionStore{store, cookieStore} {
		for _, failClosed := range []bool{false, true} {
			u := &user{name: fmt.Sprintf("%T FailOnStoreError=%v", s, failClosed), failClosed: failClosed}
			u.h, _ = newHandler(t, s, func(c *logout.Config) {
				c.FailOnStoreError = failClosed
				c.StoreTimeout = failoverStoreTimeout
				c.OnLogout = func(_ *http.Request, ended logout.Session) { u.ended = append(u.ended, ended) }
				c.OnError = func(_ *http.Request, err error) { u.errs = append(u.errs, err) }
			})
			u.cookies = signIn(t, u.h, testSession())
			users = append(users, u)
		}
	}
	sen.WaitReplicated()

	replica := sen.Replica()
	sen.Isolate(replica)
	for _, u := range users {
		resp := serve(u.h, logoutRequest(http.MethodPost, u.cookies))
		if u.failClosed && resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("%s: status %d, want 503", u.name, resp.StatusCode)
		}
		if !u.failClosed && (resp.StatusCode != http.StatusSeeOther || !location(t, resp).Query().Has("id_token_hint")) {
			t.Errorf("%s: status %d to %s, want 303 with id_token_hint", u.name, resp.StatusCode, resp.Header.Get("Location"))
		}
		if len(u.ended) != 0 {
			t.Errorf("%s: OnLogout called for a logout no replica confirmed", u.name)
		}
		if len(u.errs) != 1 || !errors.Is(u.errs[0], logout.ErrNotConfirmed) {
			t.Errorf("%s: OnError got %v, want ErrNotConfirmed", u.name, u.errs)
		}
		if _, err := currentSession(u.h, u.cookies); !errors.Is(err, logout.ErrNoSession) {
			t.Errorf("%s: session on the primary after the unconfirmed logout: %v, want ended", u.name, err)
		}
	}
	replica.Resume()
	sen.WaitReplicated()
	for _, u := range users {
		if _, err := currentSession(u.h, u.cookies); !errors.Is(err, logout.ErrNoSession) {
			t.Errorf("%s: session once the replica caught up: %v, want ended", u.name, err)
		}
	}
}

// TestFailoverKeepsAcknowledgedLogouts kills the primary while logouts keep
// coming, and lets Sentinel promote the replica, several times. Before each
// kill the replica is cut off, so that a logout the primary acknowledges from
// then on can reach no replica: the lag that asynchronous replication allows,
// made certain. Four Handlers take logouts through the same failovers: a
// RedisStore and a RevocableCookieStore, each with WaitReplicas 0 and 1.
//
// Without WaitReplicas, every logout acknowledged in that window comes back
// as a live session on the new primary: the hazard is real, and the test can
// see it. With WaitReplicas=1 the WAIT fails instead, the Handler answers
// 503 without calling OnLogout, the user's retry ends the session on the new
// primary, and no session whose logout was acknowledged loads afterwards.
func TestFailoverKeepsAcknowledgedLogouts(t *testing.T) {
	t.Parallel() // its own Redis servers: it runs beside the other slow ones
	run := runFailovers(t)
	for _, st := range run.stores {
		t.Run(st.name, func(t *testing.T) {
			if st.replicas == 0 {
				if len(st.lagAcked) == 0 {
					t.Fatal("no logout was acknowledged while the replica was cut off; the run proves nothing")
				}
				lost := 0
				for _, a := range st.lagAcked {
					if !a.resurrected {
						lost++
					}
				}
				if lost != 0 {
					t.Errorf("%d of %d logouts acknowledged while the replica was cut off did not come back; the run proves nothing", lost, len(st.lagAcked))
				}
				return
			}
			if len(st.lagAcked) != 0 {
				t.Errorf("%d logouts acknowledged while no replica could confirm them, want 0", len(st.lagAcked))
			}
			if st.lagRefused == 0 {
				t.Error("no logout was refused while the replica was cut off; the run proves nothing")
			}
			if st.resurrected != 0 {
				t.Errorf("%d acknowledged logouts came back after %d failovers, want 0", st.resurrected, run.failovers)
			}
		})
	}
}

// The failover run's settings: logouts are bounded by failoverStoreTimeout
// and must be answered within failoverAnswerBound; the WAIT gives up after
// failoverWaitTimeout, well inside the store timeout, so that a replica that
// does not confirm is reported as such.
const (
	failovers            = 3
	failoverWorkers      = 2 // per Handler
	failoverPace         = 20 * time.Millisecond
	failoverStoreTimeout = 300 * time.Millisecond
	failoverWaitTimeout  = 100 * time.Millisecond
	failoverAnswerBound  = failoverStoreTimeout + 500*time.Millisecond
	failoverPool         = 60 // signed-in sessions per Handler, topped up after each failover
)

// failoverRun is what runFailovers saw.
type failoverRun struct {
	failovers int
	stores    []*failoverStore
}

// failoverStore is one Handler's share of a run.
type failoverStore struct {
	name        string
	replicas    int
	h           *logout.Handler
	pool        chan []*http.Cookie
	signedIn    int             // sessions put in the pool so far
	attempts    []logoutAttempt // every answer, in order of arrival
	lagAcked    []*logoutAttempt
	lagRefused  int
	resurrected int
}

// logoutAttempt is one logout request and its answer.
type logoutAttempt struct {
	cookies     []*http.Cookie
	start, end  time.Time
	status      int
	acked       bool // OnLogout was called
	resurrected bool // acked, and the session loaded after the last failover
}

// ackKey carries, in a logout request's context, where OnLogout records that
// it was called for that request.
type ackKey struct{}

// runFailovers starts a Sentinel deployment and the four Handlers on it.
// Workers log out signed-in sessions continuously, each session retried after
// a 503 as a user would, while the primary fails over several times. In each
// round the replica is cut off (Isolate), some logouts are answered, and then
// the primary is killed, the replica resumed and promoted, and the old
// primary brought back as the new replica. At the end, every session whose
// logout was acknowledged is loaded from the current primary. Every answer
// must be a 303 or a 503 within failoverAnswerBound.
func runFailovers(t *testing.T) *failoverRun {
	sen := testenv.StartSentinel(t)
	rdb := sen.Client()
	run := &failoverRun{stores: newFailoverStores(t, rdb)}

	var mu sync.Mutex // guards every store's attempts
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range failoverWorkers * len(run.stores) {
		st := run.stores[w%len(run.stores)]
		wg.Go(func() {
			pace := time.NewTicker(failoverPace)
			defer pace.Stop()
			for {
				var cookies []*http.Cookie
				select {
				case <-stop:
					return
				case cookies = <-st.pool:
				}
				for done := false; !done; {
					select {
					case <-stop:
						return
					case <-pace.C:
					}
					a := logoutAttempt{cookies: cookies, start: time.Now()}
					r := logoutRequest(http.MethodPost, cookies)
					r = r.WithContext(context.WithValue(r.Context(), ackKey{}, &a.acked))
					a.status = serve(st.h, r).StatusCode
					a.end = time.Now()
					mu.Lock()
					st.attempts = append(st.attempts, a)
					mu.Unlock()
					done = a.status != http.StatusServiceUnavailable
				}
			}
		})
	}
	stopWorkers := sync.OnceFunc(func() {
		close(stop)
		wg.Wait()
	})
	defer stopWorkers()

	// refill tops up the pools once one runs low, and waits until the
	// replica has the new sessions, so that the workers never starve and
	// every session in a pool is on both nodes. Call it only while the pair
	// is healthy.
	refill := func() {
		t.Helper()
		if !slices.ContainsFunc(run.stores, func(st *failoverStore) bool { return len(st.pool) < cap(st.pool)/2 }) {
			return
		}
		for _, st := range run.stores {
			st.topUp(t)
		}
		sen.WaitReplicated()
	}
	// waitUntil polls cond, which holds mu, until it is true for every
	// store, refilling the pools meanwhile if the pair is healthy.
	waitUntil := func(what string, healthy bool, cond func(st *failoverStore) bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for _, st := range run.stores {
			for {
				mu.Lock()
				ok := cond(st)
				mu.Unlock()
				if ok {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: waited 30s for %s (%d sessions left to log out)", st.name, what, len(st.pool))
				}
				if healthy {
					refill()
				}
				<-time.After(5 * time.Millisecond)
			}
		}
	}
	// atLeast is a condition for waitUntil: n answers that match.
	atLeast := func(n int, match func(a *logoutAttempt) bool) func(st *failoverStore) bool {
		return func(st *failoverStore) bool {
			seen := 0
			for i := range st.attempts {
				if match(&st.attempts[i]) {
					seen++
				}
			}
			return seen >= n
		}
	}

	type window struct{ from, to time.Time }
	var lags []window
	inLag := func(a *logoutAttempt) bool {
		return slices.ContainsFunc(lags, func(w window) bool { return a.start.After(w.from) && a.end.Before(w.to) })
	}
	for _, st := range run.stores {
		st.topUp(t)
	}
	sen.WaitReplicated()
	expected := sen.Primary()
	for round := 1; round <= failovers; round++ {
		healthy := time.Now()
		waitUntil("logouts acknowledged on the healthy pair", true, atLeast(10, func(a *logoutAttempt) bool { return a.acked && a.start.After(healthy) }))

		// Sentinel may fail over on its own when the machine stalls it;
		// the run stays valid, but say so.
		primary, replica := sen.Primary(), sen.Replica()
		if primary != expected {
			t.Logf("before failover %d, the sentinels failed over on their own, to %s", round, primary.Addr)
		}
		sen.Isolate(replica)
		lag := time.Now()
		waitUntil("logouts answered while the replica is cut off", false, atLeast(4, func(a *logoutAttempt) bool { return a.start.After(lag) }))
		primary.Stop()
		killed := time.Now()
		replica.Resume()
		lags = append(lags, window{lag, killed})
		expected = sen.WaitFailover(primary)
		promoted := time.Now()
		sen.Rejoin(primary)
		rejoined := time.Now()
		run.failovers++

		// The pools may have run dry while the old primary was away; only
		// now can new sessions reach a replica before the next round.
		refill()
		waitUntil("logouts acknowledged by the new primary", true, atLeast(1, func(a *logoutAttempt) bool { return a.acked && a.start.After(rejoined) }))
		// When each mode first acknowledged a logout sent after the kill.
		var back [2]time.Time
		mu.Lock()
		for _, st := range run.stores {
			for _, a := range st.attempts {
				if b := &back[st.replicas]; a.acked && a.start.After(killed) && (b.IsZero() || a.end.Before(*b)) {
					*b = a.end
				}
			}
		}
		mu.Unlock()
		t.Logf("failover %d: the replica was promoted %v after the kill; logouts were acknowledged again after %v without WAIT, %v with it; "+
			"the sentinels counted the old primary as a healthy replica after %v",
			run.failovers, promoted.Sub(killed).Round(time.Millisecond), back[0].Sub(killed).Round(time.Millisecond),
			back[1].Sub(killed).Round(time.Millisecond), rejoined.Sub(killed).Round(time.Millisecond))
	}
	// A logout refused while the replica was cut off is the user's to
	// retry, and the retry must end the session.
	waitUntil("retries of the logouts refused while the replica was cut off", true, func(st *failoverStore) bool {
		ended := map[*http.Cookie]bool{}
		for _, a := range st.attempts {
			if a.status == http.StatusSeeOther {
				ended[a.cookies[0]] = true
			}
		}
		return !slices.ContainsFunc(st.attempts, func(a logoutAttempt) bool { return inLag(&a) && !ended[a.cookies[0]] })
	})
	stopWorkers()

	for _, st := range run.stores {
		var acked, refused int
		var slowest time.Duration
		for i := range st.attempts {
			a := &st.attempts[i]
			slowest = max(slowest, a.end.Sub(a.start))
			if d := a.end.Sub(a.start); d > failoverAnswerBound {
				t.Errorf("%s: a logout took %v to answer, want at most %v", st.name, d, failoverAnswerBound)
			}
			switch a.status {
			case http.StatusSeeOther:
				if a.acked {
					acked++
				}
			case http.StatusServiceUnavailable:
				refused++
			default:
				t.Errorf("%s: a logout was answered %d, want %d or %d", st.name, a.status, http.StatusSeeOther, http.StatusServiceUnavailable)
			}
			if inLag(a) {
				switch {
				case a.acked:
					st.lagAcked = append(st.lagAcked, a)
				case a.status == http.StatusServiceUnavailable:
					st.lagRefused++
				}
			}
			if !a.acked {
				continue
			}
			switch _, err := currentSession(st.h, a.cookies); {
			case err == nil:
				a.resurrected = true
				st.resurrected++
			case !errors.Is(err, logout.ErrNoSession):
				t.Fatalf("%s: loading a session after the failovers: %v", st.name, err)
			}
		}
		t.Logf("%s: %d failovers, %d logout requests (%d acknowledged, %d answered 503), slowest answer %v; "+
			"while the replica was cut off %d acknowledged and %d answered 503; %d acknowledged logouts came back",
			st.name, run.failovers, len(st.attempts), acked, refused, slowest.Round(time.Millisecond),
			len(st.lagAcked), st.lagRefused, st.resurrected)
	}
	return run
}

// newFailoverStores builds the four Handlers a failover run drives.
func newFailoverStores(t *testing.T, rdb redis.UniversalClient) []*failoverStore {
	var out []*failoverStore
	for _, replicas := range []int{0, 1} {
		store := logout.NewRedisStore(rdb)
		store.WaitReplicas = replicas
		store.WaitTimeout = failoverWaitTimeout
		list := logout.NewRevocationList(rdb)
		list.WaitReplicas = replicas
		list.WaitTimeout = failoverWaitTimeout
		cookies, err := logout.NewRevocableCookieStore(list, newKey(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []logout.SessionStore{store, cookies} {
			h, _ := newHandler(t, s, func(c *logout.Config) {
				c.FailOnStoreError = true
				c.StoreTimeout = failoverStoreTimeout
				c.OnLogout = func(r *http.Request, _ logout.Session) {
					if p, ok := r.Context().Value(ackKey{}).(*bool); ok {
						*p = true
					}
				}
			})
			out = append(out, &failoverStore{
				name:     fmt.Sprintf("%s/WaitReplicas=%d", strings.TrimPrefix(fmt.Sprintf("%T", s), "*logout."), replicas),
				replicas: replicas,
				h:        h,
				pool:     make(chan []*http.Cookie, failoverPool),
			})
		}
	}
	return out
}

// topUp signs in sessions, each its own user, until the pool is full. Right
// after a failover the client may still fail for a moment (go-redis answers
// with its last dial error until a dial succeeds again), so a failed sign-in
// is tried again, for a while.
func (st *failoverStore) topUp(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(st.pool) < cap(st.pool) {
		st.signedIn++
		s := testSession()
		s.Subject = fmt.Sprintf("usr_failover_%d", st.signedIn)
		s.SessionID = fmt.Sprintf("ses_failover_%d", st.signedIn)
		rec := httptest.NewRecorder()
		err := st.h.StartSession(rec, httptest.NewRequest(http.MethodGet, testAppOrigin+"/callback", nil), s)
		if err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("%s: StartSession: %v", st.name, err)
			}
			<-time.After(20 * time.Millisecond)
			continue
		}
		cookies := rec.Result().Cookies()
		for _, c := range cookies {
			noteSecret(c.Value)
		}
		st.pool <- cookies
	}
}

// tripCounter records the commands of each round trip a client makes: one
// command sent alone, or a pipeline.
type tripCounter struct {
	mu    sync.Mutex
	trips [][]string
}

func (c *tripCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *tripCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.add(cmd)
		return next(ctx, cmd)
	}
}

func (c *tripCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.add(cmds...)
		return next(ctx, cmds)
	}
}

func (c *tripCounter) add(cmds ...redis.Cmder) {
	var names []string
	for _, cmd := range cmds {
		names = append(names, cmd.Name())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.trips = append(c.trips, names)
}

func (c *tripCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.trips = nil
}

func (c *tripCounter) get() [][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.trips)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
