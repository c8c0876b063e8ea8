// SPDX-License-Identifier: Apache-2.0

// Command bench compares package logout with a floor and with the peers most
// Go apps would pick instead, against the same real Redis, in one run on one
// machine, in two tables:
//
//   - the per-request path: a signed-in page that reads its session, through
//     Handler.Middleware with an idle timeout, against scs's LoadAndSave with
//     its go-redis store, gorilla/sessions' cookie store, and the floor of a
//     page that does one GET on the same Redis and nothing else;
//   - logout: against scs, the plain logout with no store, and the floor of
//     one GETDEL and a redirect.
//
// Then it shows that logout costs the same with a thousand or a million
// sessions stored, and what ending all of a user's sessions costs, sets the
// handler-alone and load-run ratios against the package's targets, and shows
// what the OpenTelemetry instrumentation adds to a logout once an SDK is
// installed.
//
//	cd bench && go run . -redis redis://127.0.0.1:6379/9
//
// It writes bench.md and the charts to a new temporary folder, which it
// names at the end; -publish writes them into the checkout's docs folder
// instead, for a full run. -rounds 0 skips the load runs, for a quick look
// at the handler-alone figures. What profiles showed about a run, which no
// run can write, is kept by hand in bench/notes.md and closes every
// bench.md, so that a rerun with -publish keeps it.
//
// Every Redis client it makes sets ContextTimeoutEnabled, as the package
// recommends, so the stores call it directly; one row of each table runs
// RedisStore on a client without it, the other path.
//
// It FLUSHES the Redis database it is given (and the next one, for the scale
// run): point it at spare ones. It is a module of its own so the peers never
// become dependencies of the package.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

const endSession = "https://acme.scalekit.dev/oidc/logout"
const postLogout = "https://app.example.com/logged-out"

// An ID token of a realistic size (a Scalekit ID token with a few claims).
var idToken = "eyJhbGciOiJSUzI1NiIsImtpZCI6InNua18xIiwidHlwIjoiSldUIn0." + strings.Repeat("eyJzdWIiOiJ1c3JfMTIzIn0", 30) + "." + strings.Repeat("c2ln", 86)

var accessToken = "at_" + idToken[:400]

var flagRedis = flag.String("redis", envOr("REDIS_URL", "redis://127.0.0.1:6379/9"), "Redis URL (its database is flushed)")

func main() {
	requests := flag.Int("requests", 10000, "requests per system in each load run")
	conc := flag.Int("concurrency", 32, "concurrent clients in the load runs")
	rounds := flag.Int("rounds", 7, "interleaved load rounds; the best is reported")
	cpuRounds := flag.Int("cpu-rounds", 41, "interleaved rounds of the handler alone; the best is reported")
	cpuRequests := flag.Int("cpu-requests", 500, "requests per system in each round of the handler alone")
	scale := flag.Int("scale", 1_000_000, "sessions stored for the scale run (0 skips it)")
	only := flag.String("only", "", "run one part: requests, logout or scale")
	out := flag.String("out", "", "folder for bench.md, bench.svg and bench-requests.svg (default: a new temporary folder)")
	publish := flag.Bool("publish", false, "write bench.md and the charts into the checkout's docs folder (a full run only)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the bench's own process to this file; the handler-alone rounds carry a pprof label, system=TABLE/NAME")
	serveSpec := flag.String("serve", "", "serve one system (TABLE/INDEX) for a load run; used by the bench itself")
	flag.Parse()
	if *serveSpec != "" {
		serve(*serveSpec)
		return
	}

	dir := outputDir(*out, *publish, *only == "" && *rounds > 0 && *scale > 0)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		check(err)
		check(pprof.StartCPUProfile(f))
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	opts, err := redis.ParseURL(*flagRedis)
	check(err)
	rdb := redisClient(true)
	ctx := context.Background()
	check(rdb.Ping(ctx).Err())
	check(rdb.FlushDB(ctx).Err())
	mon := newMonitor(opts)
	defer mon.close()

	loadStart := loadAverage()
	var report strings.Builder
	fmt.Fprintf(&report, "Go %s, %s/%s, %d CPUs, Redis %s at %s\n\n", runtime.Version()[2:], runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), redisVersion(rdb), opts.Addr)
	if *rounds > 0 {
		fmt.Fprintf(&report, "Load runs: %d requests per system and round from %d concurrent clients over loopback HTTP, each system served by a process of its own; %d rounds, the systems interleaved. Others' work on the machine only ever slows a round down, so each system's figures come from its best round: req/s and latency from the round with the most req/s, the server's CPU time per request (user + system) from the round with the least. Handler alone: %d requests through the handler on one goroutine, no HTTP, in the bench's own process; its CPU time per request is the best of %d interleaved rounds, and allocations are counted there. Redis commands: counted with MONITOR over %d requests of each system. CPU time is the Go process's only: Redis's own is not in it.\n\n", *requests, *conc, *rounds, *cpuRequests, *cpuRounds, monitored)
	} else {
		fmt.Fprintf(&report, "No load runs (-rounds 0). Handler alone: %d requests through the handler on one goroutine, no HTTP; its CPU time per request is the best of %d interleaved rounds, and allocations are counted there. Redis commands: counted with MONITOR over %d requests of each system.\n\n", *cpuRequests, *cpuRounds, monitored)
	}
	fmt.Fprintf(&report, "Every Redis client sets ContextTimeoutEnabled, so the stores call it directly, except the rows that say otherwise, where each store call runs in a goroutine of its own.\n\n")

	var perRequest, logouts []result
	if *only == "" || *only == "requests" {
		t := requestTable(rdb)
		perRequest = t.run(rdb, mon, *requests, *conc, *rounds, *cpuRounds, *cpuRequests)
		fmt.Fprintf(&report, "### A signed-in page\n\nEach request reads the signed-in session of one of %d users, as a page of an app does; the idle timeout is 30 minutes wherever the system has one.\n\n", t.sessions)
		writeTables(&report, "signed-in page", perRequest, true)
	}
	if *only == "" || *only == "logout" {
		logouts = logoutTable(rdb).run(rdb, mon, *requests, *conc, *rounds, *cpuRounds, *cpuRequests)
		fmt.Fprintf(&report, "### Logout\n\nEach request logs out a session of its own.\n\n")
		writeTables(&report, "logout", logouts, false)
	}
	if (*only == "" || *only == "scale") && *scale > 0 {
		scaleRun(&report, rdb, mon, *scale, *conc)
	}
	writeTargets(&report, perRequest, logouts)
	writeTelemetryCost(&report, logouts)
	fmt.Fprintf(&report, "Load average (1, 5, 15 minutes) at the start: %s; at the end: %s.\n", loadStart, loadAverage())
	if notes := readNotes(); notes != "" {
		fmt.Fprintf(&report, "\n%s", notes)
	}
	fmt.Print(report.String())
	check(os.WriteFile(filepath.Join(dir, "bench.md"), []byte(report.String()), 0o644))
	if *rounds > 0 && perRequest != nil {
		check(os.WriteFile(filepath.Join(dir, "bench-requests.svg"), chart("A signed-in page over loopback against one real Redis", perRequest), 0o644))
	}
	if *rounds > 0 && logouts != nil {
		check(os.WriteFile(filepath.Join(dir, "bench.svg"), chart("Logout over loopback against one real Redis", logouts), 0o644))
	}
	check(rdb.FlushDB(ctx).Err())
	log.Printf("wrote bench.md and the charts to %s", dir)
}

// outputDir is where the run writes its files: out, or the checkout's docs
// folder with publish (a full run only, so that the docs always hold one),
// or else a new temporary folder. Nothing is written into the checkout
// unless asked.
func outputDir(out string, publish, full bool) string {
	switch {
	case publish && out != "":
		log.Fatal("-publish and -out: choose one")
	case publish && !full:
		log.Fatal("-publish needs a full run: no -only, -rounds above 0, -scale above 0")
	case publish:
		return docsDir()
	case out != "":
		check(os.MkdirAll(out, 0o755))
		return out
	}
	dir, err := os.MkdirTemp("", "logout-bench-")
	check(err)
	return dir
}

// docsDir is the docs folder of the checkout the bench runs in.
func docsDir() string {
	root, ok := checkoutRoot()
	if !ok {
		log.Fatal("-publish: run the bench inside a checkout of github.com/endsession/logout")
	}
	return filepath.Join(root, "docs")
}

// checkoutRoot finds the checkout the bench runs in: the folder of the
// go.mod of module github.com/endsession/logout, the working directory or
// one above it.
func checkoutRoot() (string, bool) {
	dir, err := os.Getwd()
	check(err)
	for {
		if mod, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.HasPrefix(string(mod), "module github.com/endsession/logout\n") {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

// readNotes is the hand-written part of bench.md: bench/notes.md of the
// checkout, what profiles taken beside a run showed, which no run can
// write. Every report carries it, so that a rerun with -publish keeps it;
// whoever publishes a run checks that it still matches the figures. A
// bench run outside a checkout has none.
func readNotes() string {
	root, ok := checkoutRoot()
	if !ok {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(root, "bench", "notes.md"))
	if errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	check(err)
	return string(b)
}

// redisClient connects to the bench's Redis, with ContextTimeoutEnabled as
// the package recommends (its stores then call it directly) or without (each
// call then runs in a goroutine of its own).
func redisClient(contextTimeout bool) *redis.Client {
	opts, err := redis.ParseURL(*flagRedis)
	check(err)
	opts.ContextTimeoutEnabled = contextTimeout
	return redis.NewClient(opts)
}

// system is one way of serving the table's request: its handler and how to
// sign a user in for it.
type system struct {
	name    string
	role    role
	handler http.Handler
	signIn  func() []*http.Cookie
}

// role says what a system is to the ratios and the chart.
type role int

const (
	ours  role = iota
	floor      // the floor the ratios are taken against
	reference
	scsPeer // the peer the ratios are taken against
	peer
)

// table is a set of systems serving one kind of request.
type table struct {
	name    string // its key in tables
	systems []system
	request func(base string, cookies []*http.Cookie) *http.Request
	status  int
	// sessions is how many signed-in users the requests go round; 0 means
	// each request uses up a session of its own (a logout).
	sessions int
}

type result struct {
	name     string
	role     role
	rps      float64
	p50, p99 time.Duration
	cpu      time.Duration // the handler alone, one request at a time
	// serverCPU is the server process's CPU time per request in the load
	// run: HTTP included, many requests at a time.
	serverCPU time.Duration
	allocs    float64
	rpsLow    float64 // the lowest and highest req/s of the rounds
	rpsHigh   float64
	commands  float64 // Redis commands sent per request, as MONITOR saw them
	work      float64 // commands Redis ran per request, scripts' insides included
	cookies   float64 // Set-Cookie lines per response
}

// run measures every system: load rounds interleaved, then CPU rounds
// interleaved, then the commands each one sends.
func (t table) run(rdb *redis.Client, mon *monitor, n, conc, rounds, cpuRounds, cpuN int) []result {
	ctx := context.Background()
	runs := make([][]result, len(t.systems))
	for round := range rounds {
		for i, s := range t.systems {
			r := t.load(i, n, conc)
			log.Printf("round %d  %-40s %8.0f req/s  p50 %6.0fµs  p99 %6.0fµs  server CPU %5.1fµs", round+1, s.name, r.rps, us(r.p50), us(r.p99), us(r.serverCPU))
			runs[i] = append(runs[i], r)
			check(rdb.FlushDB(ctx).Err())
		}
	}
	// CPU per request: the handler alone on one goroutine, after the load
	// runs, in a quiet process; many short interleaved rounds, the best of
	// each, so that each system gets the machine's quiet moments too.
	cpu := make([]time.Duration, len(t.systems))
	allocs := make([]float64, len(t.systems))
	for round := range cpuRounds {
		for i, s := range t.systems {
			c, a := t.cpuPerRequest(s, cpuN)
			if round == 0 || c < cpu[i] {
				cpu[i], allocs[i] = c, a
			}
			check(rdb.FlushDB(ctx).Err())
		}
	}
	var results []result
	for i, rs := range runs {
		r := result{name: t.systems[i].name, role: t.systems[i].role}
		if len(rs) > 0 {
			// Others' work on the machine only ever slows a round down, so
			// the best round is the one it touched least.
			slices.SortFunc(rs, func(a, b result) int { return cmp.Compare(a.rps, b.rps) })
			r = rs[len(rs)-1]
			r.rpsLow, r.rpsHigh = rs[0].rps, rs[len(rs)-1].rps
			r.serverCPU = slices.MinFunc(rs, func(a, b result) int { return cmp.Compare(a.serverCPU, b.serverCPU) }).serverCPU
		}
		r.cpu, r.allocs = cpu[i], allocs[i]
		r.commands, r.work, r.cookies = t.count(t.systems[i], mon)
		log.Printf("%-40s CPU %6.1fµs alone, %6.1fµs in the server  %4.0f allocs  %.2f commands sent, %.2f run  %.2f Set-Cookie", r.name, us(r.cpu), us(r.serverCPU), r.allocs, r.commands, r.work, r.cookies)
		results = append(results, r)
		check(rdb.FlushDB(ctx).Err())
	}
	return results
}

// load sends n requests with conc clients to system i served by a process
// of its own, so that the server's CPU time is measured apart from the
// clients'.
func (t table) load(i, n, conc int) result {
	s := t.systems[i]
	srv := startServer(t.name, i)
	defer srv.stop()
	client := &http.Client{
		Transport:     &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()
	// Warm up connections and caches on sessions of their own.
	t.loadRun(client, srv.url, t.jars(s, conc*4, conc*4), conc)

	jars := t.jars(s, n, t.sessions)
	cpu0 := srv.cpu(client)
	start := time.Now()
	lat := t.loadRun(client, srv.url, jars, conc)
	elapsed := time.Since(start)
	cpu := srv.cpu(client) - cpu0

	r := result{name: s.name, role: s.role, rps: float64(n) / elapsed.Seconds(), serverCPU: cpu / time.Duration(n)}
	slices.Sort(lat)
	r.p50, r.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	return r
}

// jars signs users in for n requests: one session per request, or the
// requests going round the given number of users.
func (t table) jars(s system, n, users int) [][]*http.Cookie {
	if t.sessions == 0 || users >= n {
		return signInMany(s.signIn, n)
	}
	signedIn := signInMany(s.signIn, users)
	out := make([][]*http.Cookie, n)
	for i := range out {
		out[i] = signedIn[i%users]
	}
	return out
}

// cpuPerRequest runs n requests through the handler alone, on one goroutine,
// with no network but Redis's, and returns the process's CPU time and
// allocations per request.
func (t table) cpuPerRequest(s system, n int) (time.Duration, float64) {
	reqs := make([]*http.Request, n)
	for i, cookies := range t.jars(s, n, t.sessions) {
		reqs[i] = t.request("http://app.example.com", cookies)
	}
	if t.sessions > 0 { // warm up, where a request does not use its session up
		for _, r := range reqs[:min(n, 100)] {
			t.serve(s, r)
		}
	}
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	c0 := processCPU()
	// The label lets a profile (-cpuprofile) be cut by system: pprof
	// -tagfocus system=logout/logout.RedisStore.
	pprof.Do(context.Background(), pprof.Labels("system", t.name+"/"+s.name), func(context.Context) {
		for _, r := range reqs {
			t.serve(s, r)
		}
	})
	cpu := processCPU() - c0
	runtime.ReadMemStats(&m1)
	return cpu / time.Duration(n), float64(m1.Mallocs-m0.Mallocs) / float64(n)
}

func (t table) serve(s system, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, r)
	if rec.Code != t.status {
		log.Fatalf("%s: status %d, want %d: %s", s.name, rec.Code, t.status, rec.Body)
	}
	return rec
}

// monitored is how many requests of each system MONITOR watches.
const monitored = 200

// count sends requests through the handler alone and returns what MONITOR
// saw per request (commands clients sent; commands Redis ran), and the
// Set-Cookie lines per response.
func (t table) count(s system, mon *monitor) (sent, work, cookies float64) {
	reqs := make([]*http.Request, monitored)
	for i, c := range t.jars(s, monitored, t.sessions) {
		reqs[i] = t.request("http://app.example.com", c)
	}
	setCookies := 0
	c := mon.count(func() {
		for _, r := range reqs {
			setCookies += len(t.serve(s, r).Header()["Set-Cookie"])
		}
	})
	return float64(c.sent) / monitored, float64(c.all) / monitored, float64(setCookies) / monitored
}

// loadRun sends one request per cookie set with conc clients and returns the
// latencies.
func (t table) loadRun(client *http.Client, base string, jars [][]*http.Cookie, conc int) []time.Duration {
	lat := make([]time.Duration, len(jars))
	parallel(len(jars), conc, func(i int) {
		t0 := time.Now()
		resp, err := client.Do(t.request(base, jars[i]))
		check(err)
		resp.Body.Close()
		lat[i] = time.Since(t0)
		if resp.StatusCode != t.status {
			log.Fatalf("status %d, want %d", resp.StatusCode, t.status)
		}
	})
	return lat
}

func signInMany(signIn func() []*http.Cookie, n int) [][]*http.Cookie {
	out := make([][]*http.Cookie, n)
	parallel(n, 16, func(i int) { out[i] = signIn() })
	return out
}

// parallel calls f(0) … f(n-1) from the given number of goroutines.
func parallel(n, workers int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				f(i)
			}
		}()
	}
	wg.Wait()
}

// withCookies adds the cookies to r as a browser sends them.
func withCookies(r *http.Request, cookies []*http.Cookie) *http.Request {
	for _, c := range cookies {
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	return r
}

// loadAverage is the machine's load average, where the system tells it: the
// others who share the machine show in it.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], ", ")
	}
	return "unknown"
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func redisVersion(rdb *redis.Client) string {
	info, _ := rdb.Info(context.Background(), "server").Result()
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			return v
		}
	}
	return "?"
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
