// SPDX-License-Identifier: Apache-2.0

package logout_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/endsession/logout"
	"github.com/endsession/logout/scalekittest"
)

// The durable backstop's tests run instances of an app as separate
// processes: the test binary itself, started again with backstopChildEnv
// naming a file that says what to do. TestMain hands such a process to
// runBackstopChild before any test runs.
const backstopChildEnv = "LOGOUT_TEST_BACKSTOP_CHILD"

// backstopChild is what a child instance is told: where Redis and the
// provider are, how long the grace period is, and whose sessions to log
// out.
type backstopChild struct {
	Redis   string        `json:"redis"`
	Issuer  string        `json:"issuer"`
	Grace   time.Duration `json:"grace"`
	Timeout time.Duration `json:"timeout"` // the Provider's and the store's, when set
	Cookies []string      `json:"cookies"`
}

// runBackstopChild is an instance of the app that takes a logout for each
// cookie, says so on stdout, and then waits to be killed.
func runBackstopChild(path string) int {
	b, err := os.ReadFile(path)
	var cfg backstopChild
	if err == nil {
		err = json.Unmarshal(b, &cfg)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "backstop child:", err)
		return 2
	}
	rdb := redis.NewClient(&redis.Options{Addr: cfg.Redis})
	p, err := logout.NewProvider(logout.ProviderConfig{Issuer: cfg.Issuer, ClientID: provClient, ClientSecret: provSecret, Timeout: cfg.Timeout})
	if err != nil {
		fmt.Fprintln(os.Stderr, "backstop child:", err)
		return 2
	}
	h, err := logout.New(context.Background(), logout.Config{
		Store: logout.NewRedisStore(rdb), EndSessionEndpoint: cfg.Issuer + "/oidc/logout", PostLogoutRedirectURI: testPostLogout,
		Provider: p, BackstopDelay: cfg.Grace, StoreTimeout: cfg.Timeout,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "backstop child:", err)
		return 2
	}
	for _, c := range cfg.Cookies {
		if resp := serve(h, logoutRequest(http.MethodPost, []*http.Cookie{{Name: "__Host-session", Value: c}})); resp.StatusCode != http.StatusSeeOther {
			fmt.Fprintln(os.Stderr, "backstop child: logout answered", resp.StatusCode)
			return 2
		}
	}
	fmt.Printf("scheduled %d\n", len(cfg.Cookies))
	for {
		time.Sleep(time.Hour) // until SIGKILL
		runtime.KeepAlive(h)
	}
}

// providerProxy stands in front of the fake and counts the calls every
// instance makes, whatever process it runs in.
type providerProxy struct {
	URL   string
	mu    sync.Mutex
	calls map[string]int
	hold  string        // a path whose first request is held until its client goes away
	held  chan struct{} // closed when it is
}

func newProviderProxy(t *testing.T, fake *scalekittest.Server) *providerProxy {
	t.Helper()
	target, _ := url.Parse(fake.URL)
	p := &providerProxy{calls: map[string]int{}, held: make(chan struct{})}
	rp := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		key := r.Method + " " + r.URL.Path
		p.calls[key]++
		hold := p.hold != "" && r.URL.Path == p.hold && p.calls[key] == 1
		p.mu.Unlock()
		if hold {
			close(p.held)
			<-r.Context().Done()
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

func (p *providerProxy) count(key string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[key]
}

// durableEnv is a fake Scalekit behind a counting proxy, a throwaway
// redis-server, and instances of the app sharing both.
type durableEnv struct {
	*provEnv
	proxy *providerProxy
	rdb   *redis.Client
	addr  string
}

func newDurableEnv(t *testing.T) *durableEnv {
	t.Helper()
	e := newProvEnv(t, scalekittest.Config{})
	srv := startRedisServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rdb.Close() })
	return &durableEnv{provEnv: e, proxy: newProviderProxy(t, e.fake), rdb: rdb, addr: srv.Addr}
}

// instance is an instance of the app in this process.
func (e *durableEnv) instance(t *testing.T, grace time.Duration) *logout.Handler {
	t.Helper()
	p, err := logout.NewProvider(logout.ProviderConfig{Issuer: e.proxy.URL, ClientID: provClient, ClientSecret: provSecret})
	if err != nil {
		t.Fatal(err)
	}
	h, _ := newHandler(t, logout.NewRedisStore(e.rdb), func(c *logout.Config) {
		c.EndSessionEndpoint = e.proxy.URL + "/oidc/logout"
		c.Provider = p
		c.BackstopDelay = grace
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		h.Close(ctx)
	})
	return h
}

// signIns signs n sessions in at the fake, one device each, and stores
// their app sessions through h; it returns their provider sessions and
// session cookies.
func (e *durableEnv) signIns(t *testing.T, h *logout.Handler, n int) (sids []string, cookies [][]*http.Cookie) {
	t.Helper()
	for i := range n {
		tok := e.signInAtFake(t, newJar(t), fmt.Sprintf("user%d@example.com", i%7))
		sids = append(sids, tok.SessionID)
		cookies = append(cookies, signIn(t, h, e.appSession(tok)))
	}
	return sids, cookies
}

// child starts an instance as a separate process that logs out the
// sessions of cookies, and returns once their jobs are recorded, with the
// process still running.
func (e *durableEnv) child(t *testing.T, grace, timeout time.Duration, cookies [][]*http.Cookie) *exec.Cmd {
	t.Helper()
	cfg := backstopChild{Redis: e.addr, Issuer: e.proxy.URL, Grace: grace, Timeout: timeout}
	for _, c := range cookies {
		cfg.Cookies = append(cfg.Cookies, c[0].Value)
	}
	b, _ := json.Marshal(cfg)
	path := filepath.Join(t.TempDir(), "child.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), backstopChildEnv+"="+path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &syncBuilder{}
	cmd.Stderr = stderr
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the child instance's stderr:\n%s", stderr)
		}
	})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if want := fmt.Sprintf("scheduled %d\n", len(cookies)); err != nil || line != want {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the child instance said %q (%v), want %q", line, err, want)
	}
	go io.Copy(io.Discard, stdout)
	return cmd
}

func sigkill(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
}

// crashBound is how long after its grace period another instance ends the
// provider session of a logout whose instance was killed before the job
// ran: one poll interval (1 s), the session-API calls, and room for a
// loaded machine.
const crashBound = backstopPollInterval + 2*time.Second

const backstopPollInterval = time.Second

// An instance takes a logout, records its backstop job and is killed
// (SIGKILL) inside the grace period; another instance sharing its Redis
// ends the provider session once the grace period is over, within
// crashBound, and not before.
func TestCrashedInstanceBackstopFinishedByAnother(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("needs SIGKILL")
	}
	e := newDurableEnv(t)
	const grace = 2 * time.Second
	other := e.instance(t, grace) // already running, as a fleet is
	sids, cookies := e.signIns(t, other, 1)
	child := e.child(t, grace, 0, cookies)
	scheduled := time.Now()
	sigkill(t, child)
	if got := status(t, e.fake, sids[0]); got != scalekittest.StatusActive {
		t.Fatalf("provider session %s right after the logout, want active (the browser has its grace period)", got)
	}
	if depth, _, err := logout.BackstopStats(context.Background(), other); err != nil || depth != 1 {
		t.Fatalf("jobs in Redis after the kill: %d, %v; want the one the killed instance recorded", depth, err)
	}
	waitFor(t, grace+crashBound, "another instance to end the provider session", func() bool {
		return status(t, e.fake, sids[0]) == scalekittest.StatusRevoked
	})
	took := time.Since(scheduled)
	t.Logf("provider session ended %v after the logout (grace %v), its instance killed at once", took.Round(time.Millisecond), grace)
	if took < grace {
		t.Errorf("ended %v after the logout, inside the %v grace period", took, grace)
	}
	if n := e.proxy.count("POST /api/v1/sessions/" + sids[0] + "/revoke"); n != 1 {
		t.Errorf("%d revoke calls, want 1", n)
	}
}

// Many jobs, recorded by several instances, one of which is killed with
// its jobs still waiting: every job is done, each exactly once at the
// provider, and the queue ends empty.
func TestDurableBackstopManyJobsSeveralInstances(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("needs SIGKILL")
	}
	e := newDurableEnv(t)
	const grace = time.Second
	instances := []*logout.Handler{e.instance(t, grace), e.instance(t, grace), e.instance(t, grace)}
	var sids []string
	var childCookies [][]*http.Cookie
	for i, h := range instances {
		s, c := e.signIns(t, h, 40)
		sids = append(sids, s...)
		if i == 0 {
			childCookies = c[:30] // logged out by the instance that dies
			c = c[30:]
		}
		for _, cookie := range c {
			if resp := serve(h, logoutRequest(http.MethodPost, cookie)); resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("logout: %d", resp.StatusCode)
			}
		}
	}
	sigkill(t, e.child(t, grace, 0, childCookies))

	waitFor(t, 30*time.Second, "every provider session to end", func() bool {
		for _, sid := range sids {
			if status(t, e.fake, sid) != scalekittest.StatusRevoked {
				return false
			}
		}
		return true
	})
	waitFor(t, 10*time.Second, "the queue to empty", func() bool {
		depth, _, err := logout.BackstopStats(context.Background(), instances[0])
		return err == nil && depth == 0
	})
	for _, sid := range sids {
		if n := e.proxy.count("POST /api/v1/sessions/" + sid + "/revoke"); n != 1 {
			t.Errorf("provider session %s: %d revoke calls, want 1", sid, n)
		}
	}
	t.Logf("%d jobs from %d instances, one killed with %d jobs waiting: each done once", len(sids), len(instances)+1, len(childCookies))
}

// An instance dies while it runs a job it claimed: once its claim lapses
// (the longest an attempt may take, a bound of the Provider's and the
// store's timeouts), another instance claims the job and does it.
func TestCrashedClaimerJobRunsAgain(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("needs SIGKILL")
	}
	e := newDurableEnv(t)
	other := e.instance(t, time.Hour)
	sids, cookies := e.signIns(t, other, 1)
	e.proxy.mu.Lock()
	e.proxy.hold = "/api/v1/sessions/" + sids[0]
	e.proxy.mu.Unlock()
	// With a grace period of 1 ms, the child claims its job at once; the provider
	// holds its first call, and the child dies in the middle of it.
	const timeout = 300 * time.Millisecond
	child := e.child(t, time.Millisecond, timeout, cookies)
	select {
	case <-e.proxy.held:
	case <-time.After(10 * time.Second):
		t.Fatal("the child never ran its job")
	}
	killed := time.Now()
	sigkill(t, child)
	// The claim lasts 3 attempts' worth of Provider timeout, plus the
	// store's timeout and a second: 2.2 s here.
	claim := 3*timeout + timeout + time.Second
	waitFor(t, claim+crashBound, "another instance to take the job over", func() bool {
		return status(t, e.fake, sids[0]) == scalekittest.StatusRevoked
	})
	t.Logf("provider session ended %v after its claimer died (claim %v)", time.Since(killed).Round(time.Millisecond), claim)
	if n := e.proxy.count("POST /api/v1/sessions/" + sids[0] + "/revoke"); n != 1 {
		t.Errorf("%d revoke calls, want 1", n)
	}
}

// syncBuilder is a strings.Builder safe for a child's stderr and the test.
type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuilder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// What the durable backstop costs Redis. With an empty queue an instance
// sends one command per poll, the claim, at most one a second. With a busy
// one, each job costs one command to record (on the logout's path), one to
// settle, and its share of the claims that find jobs due. The figures go in
// the README.
func TestDurableBackstopRedisCost(t *testing.T) {
	e := newDurableEnv(t)
	counter := newCommandCounter(t, e.addr)
	instances := []*logout.Handler{e.instance(t, time.Millisecond), e.instance(t, time.Millisecond)}
	// One job first, so that the scripts are loaded, as in a running app.
	_, cookies := e.signIns(t, instances[0], 1)
	serve(instances[0], logoutRequest(http.MethodPost, cookies[0]))
	waitFor(t, 5*time.Second, "the first job", func() bool {
		depth, _, err := logout.BackstopStats(context.Background(), instances[0])
		return err == nil && depth == 0
	})

	counter.Reset(t)
	start := time.Now()
	<-time.After(3 * time.Second) // a window to measure, not a wait for an event
	idle := counter.Count(t)
	elapsed := time.Since(start)
	if total(idle) != idle["evalsha"] {
		t.Errorf("idle instances sent %v, want only their claims (EVALSHA)", idle)
	}
	if limit := len(instances) * (int(elapsed/backstopPollInterval) + 1); total(idle) > limit {
		t.Errorf("%d idle instances sent %d commands in %v, want at most %d (one claim a second each)", len(instances), total(idle), elapsed, limit)
	}
	t.Logf("empty queue: %.2f commands/s per instance (%v from %d instances in %v)",
		float64(total(idle))/elapsed.Seconds()/float64(len(instances)), idle, len(instances), elapsed.Round(time.Millisecond))

	const jobs = 200
	sids, cookies := e.signIns(t, instances[0], jobs)
	counter.Reset(t)
	start = time.Now()
	for i, c := range cookies {
		serve(instances[i%len(instances)], logoutRequest(http.MethodPost, c))
	}
	waitFor(t, 30*time.Second, "every job", func() bool {
		for _, sid := range sids {
			if status(t, e.fake, sid) != scalekittest.StatusRevoked {
				return false
			}
		}
		return true
	})
	checks := 0
	waitFor(t, 5*time.Second, "the queue to empty", func() bool {
		checks++
		depth, _, err := logout.BackstopStats(context.Background(), instances[0])
		return err == nil && depth == 0
	})
	busy := counter.Count(t)
	elapsed = time.Since(start)
	busy["evalsha"] -= checks // the test's own reads of the queue
	delete(busy, "hello")     // new connections of the clients' pools
	backstop := total(busy) - busy["getdel"]
	t.Logf("busy queue: %d jobs from %d instances in %v; %v: %.2f backstop commands a job (1 to record, 1 to settle, %.2f claims), %.0f commands/s per instance",
		jobs, len(instances), elapsed.Round(time.Millisecond), busy, float64(backstop)/jobs, float64(backstop-2*jobs)/jobs,
		float64(total(busy))/elapsed.Seconds()/float64(len(instances)))
	if busy["getdel"] != jobs || backstop < 2*jobs {
		t.Errorf("%d logouts sent %v, want a GETDEL each and at least two backstop commands a job", jobs, busy)
	}
}
