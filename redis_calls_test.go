// SPDX-License-Identifier: Apache-2.0

package logout_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/endsession/logout"
)

// The store timeout holds on both paths a store's Redis calls take: direct,
// on a client that bounds its own I/O by the context (ContextTimeoutEnabled),
// and a goroutine per call on one that does not. Each client waits 30
// seconds for a reply by its own settings, so only the store timeout can
// answer the requests in time. The probe checks that each path is the one
// taken.
func TestStoreTimeoutBothPaths(t *testing.T) {
	t.Parallel() // its own Redis servers: it runs beside the other slow ones
	for _, direct := range []bool{true, false} {
		path := map[bool]string{true: "direct", false: "goroutine"}[direct]
		client := func(addr string) *redis.Client {
			return redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, ReadTimeout: 30 * time.Second, ContextTimeoutEnabled: direct})
		}
		t.Run(path+"/hung Redis", func(t *testing.T) {
			srv := startRedisServer(t)
			rdb := client(srv.Addr)
			probe := probePath(rdb)
			t.Cleanup(func() { srv.Resume(); rdb.Close() })
			for _, store := range timeoutStores(t, rdb) {
				env := newTimeoutEnv(t, store)
				probe.reset()
				srv.Pause()
				env.checkBounded(t, 1)
				srv.Resume()
				probe.check(t, direct)
			}
		})
		t.Run(path+"/slow Redis", func(t *testing.T) {
			srv := startRedisServer(t)
			proxy := startSlowProxy(t, srv.Addr, 3*time.Second)
			rdb := client(proxy.l.Addr().String())
			probe := probePath(rdb)
			t.Cleanup(func() { rdb.Close() })
			for _, store := range timeoutStores(t, rdb) {
				env := newTimeoutEnv(t, store)
				probe.reset()
				proxy.slow.Store(true)
				env.checkBounded(t, 1)
				proxy.slow.Store(false)
				probe.check(t, direct)
			}
		})
		t.Run(path+"/hung Cluster node", func(t *testing.T) {
			_, nodes := redisClusterNodes(t, "--cluster-require-full-coverage", "no")
			rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{nodes[0].Addr, nodes[1].Addr, nodes[2].Addr},
				MaxRetries: -1, ReadTimeout: 30 * time.Second, ContextTimeoutEnabled: direct})
			probe := probePath(rdb)
			t.Cleanup(func() { nodes[0].Resume(); rdb.Close() })
			// A dozen users: the keys their requests touch are spread
			// over the slots (by names fixed here, so always the same
			// way), and some live on the node that hangs.
			for _, store := range timeoutStores(t, rdb) {
				var envs []*timeoutEnv
				for range 12 {
					envs = append(envs, newTimeoutEnv(t, store))
				}
				// A call answered takes a ClusterClient to the direct
				// path (a cookie store's sign-in makes none).
				if err := envs[0].page(t); err != nil {
					t.Fatal(err)
				}
				probe.reset()
				nodes[0].Pause()
				failed := 0
				for _, env := range envs {
					failed += env.checkBounded(t, 0)
				}
				nodes[0].Resume()
				if failed == 0 {
					t.Errorf("%T: no request touched the hung node", store)
				}
				probe.check(t, direct)
			}
		})
	}
}

// A ClusterClient that bounds its I/O by the context still starts on the
// goroutine path: go-redis loads the cluster's command table on its first
// command under a 5-second bound of its own. Here every node hangs before
// that first command, so only the goroutine path answers in time; once a
// call is answered, the next ones go direct.
func TestClusterClientColdCommandTable(t *testing.T) {
	other, nodes := redisClusterNodes(t)
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{nodes[0].Addr, nodes[1].Addr, nodes[2].Addr},
		MaxRetries: -1, ReadTimeout: 30 * time.Second, ContextTimeoutEnabled: true})
	t.Cleanup(func() {
		for _, n := range nodes {
			n.Resume()
		}
		rdb.Close()
	})
	// The cluster's layout is loaded through the nodes' own clients, which
	// leaves the command table unloaded.
	if err := rdb.ForEachShard(t.Context(), func(ctx context.Context, c *redis.Client) error { return c.Ping(ctx).Err() }); err != nil {
		t.Fatal(err)
	}
	// The session is saved through another client, which leaves this one's
	// command table unloaded.
	token := timeoutSession(t, logout.NewRedisStore(other))
	probe := probePath(rdb)
	h, _ := timeoutHandler(t, logout.NewRedisStore(rdb))
	for _, n := range nodes {
		n.Pause()
	}
	start := time.Now()
	_, err := h.Session(requestWithToken(t, h, token))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > timeoutBound {
		t.Errorf("first call with every node hung: %v after %v, want a deadline error within %v", err, time.Since(start), timeoutBound)
	}
	for _, n := range nodes {
		n.Resume()
	}
	probe.check(t, false)
	// Answered in time: the next call goes direct.
	probe.reset()
	if _, err := h.Session(requestWithToken(t, h, token)); err != nil {
		t.Fatal(err)
	}
	probe.check(t, false)
	probe.reset()
	if _, err := h.Session(requestWithToken(t, h, token)); err != nil {
		t.Fatal(err)
	}
	probe.check(t, true)
}

// timeoutBound is how long a request may take when the store times out
// after timeoutStoreTimeout: well under the clients' own 30 seconds and
// go-redis's 5-second command-table lookup.
const (
	timeoutStoreTimeout = 200 * time.Millisecond
	timeoutBound        = 2 * time.Second
)

// timeoutStores are the two Redis-backed stores on rdb, with the default key
// prefixes (the servers are the test's own), so that which keys a user's
// requests touch depends on the user's name only.
func timeoutStores(t *testing.T, rdb redis.UniversalClient) []logout.SessionStore {
	return []logout.SessionStore{logout.NewRedisStore(rdb), newRevocableStore(t, rdb)}
}

// timeoutEnv is one signed-in user of a handler whose store calls time out
// after timeoutStoreTimeout.
type timeoutEnv struct {
	h       *logout.Handler
	cookies []*http.Cookie
	errs    *reportedErrors
}

var timeoutUsers atomic.Int64

func newTimeoutEnv(t *testing.T, store logout.SessionStore) *timeoutEnv {
	t.Helper()
	h, errs := timeoutHandler(t, store)
	s := testSession()
	n := timeoutUsers.Add(1)
	s.Subject, s.SessionID = fmt.Sprintf("usr_timeout_%d", n%12), fmt.Sprintf("ses_timeout_%d", n%12)
	return &timeoutEnv{h: h, cookies: signIn(t, h, s), errs: errs}
}

// reportedErrors collects what a Handler reports to OnError.
type reportedErrors struct {
	mu   sync.Mutex
	errs []error
}

func (r *reportedErrors) take() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	errs := r.errs
	r.errs = nil
	return errs
}

func timeoutHandler(t *testing.T, store logout.SessionStore) (*logout.Handler, *reportedErrors) {
	t.Helper()
	rep := &reportedErrors{}
	h, _ := newHandler(t, store, func(c *logout.Config) {
		c.StoreTimeout = timeoutStoreTimeout
		c.IdleTimeout = time.Hour
		c.OnError = func(_ *http.Request, err error) { rep.mu.Lock(); rep.errs = append(rep.errs, err); rep.mu.Unlock() }
	})
	return h, rep
}

// checkBounded loads the user's page and logs the user out, each within
// timeoutBound, and returns how many of the two failed on the store's
// deadline, failing the test if fewer than want did. Any other store error
// fails the test too.
func (e *timeoutEnv) checkBounded(t *testing.T, want int) int {
	t.Helper()
	failed := 0
	switch err := e.page(t); {
	case errors.Is(err, context.DeadlineExceeded):
		failed++
	case err != nil:
		t.Errorf("page: %v, want the session or a deadline error", err)
	}
	e.errs.take()
	resp := serveBounded(t, e.h, logoutRequest(http.MethodPost, e.cookies), timeoutBound)
	if resp.StatusCode != http.StatusSeeOther || setCookies(resp)["__Host-session"]["max-age"] != "0" {
		t.Errorf("logout: status %d, cookies %v; want 303 with the cookie expired", resp.StatusCode, resp.Header.Values("Set-Cookie"))
	}
	errs := e.errs.take()
	for _, err := range errs {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("logout reported %v, want a deadline error", err)
		}
	}
	if len(errs) > 0 {
		failed++
	}
	if want > 0 && failed < 2*want {
		t.Errorf("%d of the page and the logout failed on the deadline, want both", failed)
	}
	return failed
}

// page loads the user's page within timeoutBound and returns the error the
// middleware left in its context.
func (e *timeoutEnv) page(t *testing.T) error {
	t.Helper()
	var err error
	page := e.h.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err = logout.SessionFromContext(r.Context())
	}))
	serveBounded(t, page, logoutRequest(http.MethodGet, e.cookies), timeoutBound)
	return err
}

// timeoutSession saves a session in store and returns its token.
func timeoutSession(t *testing.T, store logout.SessionStore) string {
	t.Helper()
	s := testSession()
	token, err := store.Save(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	noteSecret(token)
	return token
}

// requestWithToken is a request carrying token in h's session cookie.
func requestWithToken(t *testing.T, h *logout.Handler, token string) *http.Request {
	t.Helper()
	return logoutRequest(http.MethodGet, []*http.Cookie{{Name: "__Host-session", Value: token}})
}

// pathTaken is a go-redis hook that sees, for each command or pipeline a
// store sends, whether it runs on the goroutine of the Handler method that
// asked for it (the direct path) or on a goroutine of its own.
type pathTaken struct {
	direct, detached atomic.Int32
	mu               sync.Mutex
	names            []string // of the commands that ran detached
}

func probePath(rdb redis.UniversalClient) *pathTaken {
	p := &pathTaken{}
	rdb.AddHook(p)
	return p
}

func (p *pathTaken) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (p *pathTaken) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		p.note(cmd)
		return next(ctx, cmd)
	}
}

func (p *pathTaken) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 {
			p.note(cmds[0])
		}
		return next(ctx, cmds)
	}
}

// clientOwn are the commands go-redis sends of its own accord, on its own
// goroutines: setting up a connection, learning a cluster's layout and
// command table.
var clientOwn = map[string]bool{"hello": true, "client": true, "select": true, "auth": true, "ping": true, "readonly": true, "cluster": true, "command": true}

func (p *pathTaken) note(cmd redis.Cmder) {
	if clientOwn[cmd.Name()] {
		return
	}
	pcs := make([]uintptr, 100)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs)])
	for {
		f, more := frames.Next()
		if strings.Contains(f.Function, "(*Handler).") { // inlined closures take their caller's name first
			p.direct.Add(1)
			return
		}
		if !more {
			break
		}
	}
	p.detached.Add(1)
	p.mu.Lock()
	p.names = append(p.names, cmd.Name())
	p.mu.Unlock()
}

func (p *pathTaken) detachedNames() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.names
}

func (p *pathTaken) reset() {
	p.direct.Store(0)
	p.detached.Store(0)
	p.mu.Lock()
	p.names = nil
	p.mu.Unlock()
}

// check fails the test unless every call since the last reset took the
// direct path (or, with direct false, none did), and there was one.
func (p *pathTaken) check(t *testing.T, direct bool) {
	t.Helper()
	d, g := p.direct.Load(), p.detached.Load()
	switch {
	case d+g == 0:
		t.Error("no Redis call seen")
	case direct && g > 0:
		t.Errorf("%d calls ran in a goroutine of their own (%v), %d directly; want all direct", g, p.detachedNames(), d)
	case !direct && d > 0:
		t.Errorf("%d calls ran directly, %d in a goroutine of their own; want none direct", d, g)
	}
}
