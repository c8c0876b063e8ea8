// Command bench compares the cost of a logout request in package logout with
// the floor (the seed's plain logout with no store) and with the peer most Go
// apps would pick instead (github.com/alexedwards/scs/v2 with its go-redis
// store), against the same real Redis, in one run on one machine.
//
//	cd bench && go run . -redis redis://127.0.0.1:6379/9
//
// It FLUSHES the Redis database it is given: point it at a spare one.
// It is a module of its own so the peers never become dependencies of the
// package.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/goredisstore"
	"github.com/alexedwards/scs/v2"
	"github.com/redis/go-redis/v9"

	"github.com/endsession/logout"
)

const endSession = "https://acme.scalekit.dev/oidc/logout"
const postLogout = "https://app.example.com/logged-out"

// An ID token of a realistic size (a Scalekit ID token with a few claims).
var idToken = "eyJhbGciOiJSUzI1NiIsImtpZCI6InNua18xIiwidHlwIjoiSldUIn0." + strings.Repeat("eyJzdWIiOiJ1c3JfMTIzIn0", 30) + "." + strings.Repeat("c2ln", 86)

var flagRedis = flag.String("redis", envOr("REDIS_URL", "redis://127.0.0.1:6379/9"), "Redis URL (its database is flushed)")

func main() {
	requests := flag.Int("requests", 20000, "logout requests per system in the load run")
	conc := flag.Int("concurrency", 32, "concurrent clients in the load run")
	rounds := flag.Int("rounds", 3, "interleaved rounds; the median is reported")
	scale := flag.Int("scale", 1_000_000, "sessions stored for the scale run (0 skips it)")
	out := flag.String("out", "../docs", "folder for bench.md and bench.svg")
	flag.Parse()

	opts, err := redis.ParseURL(*flagRedis)
	check(err)
	rdb := redis.NewClient(opts)
	ctx := context.Background()
	check(rdb.Ping(ctx).Err())
	check(rdb.FlushDB(ctx).Err())

	var report strings.Builder
	fmt.Fprintf(&report, "Go %s, %s/%s, %d CPUs, Redis %s at %s\n\n", runtime.Version()[2:], runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), redisVersion(rdb), opts.Addr)

	// Each system runs once per round, rounds interleaved, and the round
	// with the median throughput is reported: the machine's noise then
	// falls on every system alike.
	systems := newSystems(rdb)
	runs := make([][]result, len(systems))
	for round := range *rounds {
		for i, s := range systems {
			r := s.measure(rdb, *requests, *conc)
			log.Printf("round %d  %-32s %8.0f req/s  p50 %6.0fµs  p99 %6.0fµs  %.2f cmd/logout", round+1, s.name, r.rps, us(r.p50), us(r.p99), r.commands)
			runs[i] = append(runs[i], r)
			check(rdb.FlushDB(ctx).Err())
		}
	}
	// CPU per request: the handler alone on one goroutine, after the load
	// runs, in a quiet process; five interleaved rounds, the best of each.
	cpu := make([]time.Duration, len(systems))
	allocs := make([]float64, len(systems))
	for round := range 5 {
		for i, s := range systems {
			c, a := s.cpuPerRequest()
			if round == 0 || c < cpu[i] {
				cpu[i] = c
			}
			allocs[i] = a
		}
	}
	for i, s := range systems {
		log.Printf("CPU  %-32s %6.1fµs  %4.0f allocs", s.name, us(cpu[i]), allocs[i])
	}
	var results []result
	for i, rs := range runs {
		slices.SortFunc(rs, func(a, b result) int { return cmp.Compare(a.rps, b.rps) })
		r := rs[len(rs)/2]
		r.cpu, r.allocs = cpu[i], allocs[i]
		results = append(results, r)
	}
	fmt.Fprintf(&report, "%d logouts per system and round, %d concurrent clients, %d rounds interleaved. Throughput and latency: the median round of each; CPU per request and allocations: the handler alone on one goroutine, after the load runs (a Redis round trip included where there is one), best of 5 interleaved rounds.\n\n", *requests, *conc, *rounds)
	writeTable(&report, results)

	if *scale > 0 {
		scaleRun(&report, rdb, *scale, *conc)
	}
	fmt.Print(report.String())
	check(os.MkdirAll(*out, 0o755))
	check(os.WriteFile(filepath.Join(*out, "bench.md"), []byte(report.String()), 0o644))
	check(os.WriteFile(filepath.Join(*out, "bench.svg"), chart(results), 0o644))
	check(rdb.FlushDB(ctx).Err())
}

// system is one way of logging out: its handler and how to sign a user in.
type system struct {
	name    string
	handler http.Handler
	signIn  func() []*http.Cookie
}

type result struct {
	name          string
	rps           float64
	p50, p99, cpu time.Duration
	commands      float64 // Redis commands clients sent per logout
	serverWork    float64 // commands Redis ran per logout, scripts' insides included
	allocs        float64
}

func newSystems(rdb *redis.Client) []system {
	var out []system
	var users atomic.Int64 // every sign-in is a user of its own

	// (a) The floor: the seed's logout written plainly, no store.
	floor := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := url.Values{"post_logout_redirect_uri": {postLogout}}
		if c, err := r.Cookie("idToken"); err == nil {
			q.Set("id_token_hint", c.Value)
		}
		for _, name := range []string{"accessToken", "refreshToken", "idToken"} {
			http.SetCookie(w, &http.Cookie{Name: name, Path: "/", MaxAge: -1, HttpOnly: true, Secure: true})
		}
		http.Redirect(w, r, endSession+"?"+q.Encode(), http.StatusSeeOther)
	})
	out = append(out, system{"floor (no store)", floor, func() []*http.Cookie {
		return []*http.Cookie{{Name: "idToken", Value: idToken}, {Name: "accessToken", Value: "at_" + idToken[:400]}, {Name: "refreshToken", Value: "rt_0123456789"}}
	}})

	// (b) The peer: scs with its go-redis store: load, destroy, redirect.
	sm := scs.New()
	sm.Store = goredisstore.NewWithPrefix(rdb, "scs:")
	sm.Cookie.Name = "session"
	peer := sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hint := sm.GetString(r.Context(), "id_token")
		if err := sm.Destroy(r.Context()); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		http.Redirect(w, r, endSession+"?"+url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {postLogout}}.Encode(), http.StatusSeeOther)
	}))
	out = append(out, system{"scs + goredisstore", peer, func() []*http.Cookie {
		ctx, _ := sm.Load(context.Background(), "")
		sm.Put(ctx, "sub", fmt.Sprintf("usr_%d", users.Add(1)))
		sm.Put(ctx, "id_token", idToken)
		sm.Put(ctx, "access_token", "at_"+idToken[:400])
		sm.Put(ctx, "refresh_token", "rt_0123456789")
		token, _, err := sm.Commit(ctx)
		check(err)
		return []*http.Cookie{{Name: "session", Value: token}}
	}})

	// (c) This package, with each store.
	cookieStore, err := logout.NewCookieStore(make([]byte, 32))
	check(err)
	revoking, err := logout.NewRevocableCookieStore(logout.NewRevocationList(rdb), make([]byte, 32))
	check(err)
	for _, s := range []struct {
		name  string
		store logout.SessionStore
	}{
		{"logout, RedisStore", logout.NewRedisStore(rdb)},
		{"logout, CookieStore", cookieStore},
		{"logout, CookieStore+revocations", revoking},
	} {
		h, err := logout.New(logout.Config{Store: s.store, EndSessionEndpoint: endSession, PostLogoutRedirectURI: postLogout, Logger: quiet})
		check(err)
		out = append(out, system{s.name, h, func() []*http.Cookie { return signIn(h, fmt.Sprintf("usr_%d", users.Add(1))) }})
	}
	return out
}

func signIn(h *logout.Handler, sub string) []*http.Cookie {
	rec := httptest.NewRecorder()
	err := h.StartSession(rec, httptest.NewRequest(http.MethodGet, "/callback", nil), logout.Session{
		Issuer: "https://acme.scalekit.dev", Subject: sub, SessionID: "ses_" + sub, Email: "ada@example.com",
		IDToken: idToken, AccessToken: "at_" + idToken[:400], RefreshToken: "rt_0123456789",
	})
	check(err)
	return rec.Result().Cookies()
}

// measure runs n logouts through a loopback server with conc clients, then
// times the handler alone for CPU and allocations.
func (s system) measure(rdb *redis.Client, n, conc int) result {
	ctx := context.Background()
	jars := signInMany(s.signIn, n)
	srv := httptest.NewServer(s.handler)
	defer srv.Close()
	client := &http.Client{
		Transport:     &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	// Warm up connections and script caches on sessions of their own.
	warm := signInMany(s.signIn, conc)
	loadRun(client, srv.URL, warm, conc)

	check(rdb.ConfigResetStat(ctx).Err())
	start := time.Now()
	lat := loadRun(client, srv.URL, jars, conc)
	elapsed := time.Since(start)
	stats := commandStats(rdb)

	r := result{name: s.name, rps: float64(n) / elapsed.Seconds()}
	slices.Sort(lat)
	r.p50, r.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	r.serverWork = float64(stats.all) / float64(n)
	r.commands = float64(stats.clientSent) / float64(n)

	return r
}

// cpuPerRequest times the handler alone, one goroutine, no network but
// Redis, with the testing package's benchmark loop.
func (s system) cpuPerRequest() (time.Duration, float64) {
	runtime.GC()
	bench := testing.Benchmark(func(b *testing.B) {
		reqs := make([]*http.Request, b.N)
		for i, cookies := range signInMany(s.signIn, b.N) {
			reqs[i] = request("http://app.example.com", cookies)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for _, req := range reqs {
			rec := httptest.NewRecorder()
			s.handler.ServeHTTP(rec, req)
			if rec.Code != http.StatusSeeOther {
				b.Fatalf("%s: status %d", s.name, rec.Code)
			}
		}
	})
	return time.Duration(bench.NsPerOp()), float64(bench.AllocsPerOp())
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

func request(base string, cookies []*http.Cookie) *http.Request {
	r, _ := http.NewRequest(http.MethodPost, base+"/logout", nil)
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	r.Header.Set("Sec-Fetch-Mode", "navigate")
	for _, c := range cookies {
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	return r
}

// loadRun sends one logout per cookie set with conc clients and returns the
// latencies.
func loadRun(client *http.Client, base string, jars [][]*http.Cookie, conc int) []time.Duration {
	lat := make([]time.Duration, len(jars))
	parallel(len(jars), conc, func(i int) {
		t0 := time.Now()
		resp, err := client.Do(request(base, jars[i]))
		check(err)
		resp.Body.Close()
		lat[i] = time.Since(t0)
		if resp.StatusCode != http.StatusSeeOther {
			log.Fatalf("status %d", resp.StatusCode)
		}
	})
	return lat
}

type stats struct{ all, clientSent, scripts int }

// commandStats reads INFO commandstats. Commands a Lua script runs inside the
// server are counted there too; the commands that only ever run inside this
// package's scripts (and never on a logout) are set apart, so clientSent is
// what crossed the network.
func commandStats(rdb *redis.Client) stats {
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	check(err)
	insideScripts := map[string]bool{"hdel": true, "hgetall": true, "hset": true, "pexpireat": true, "pttl": true, "exists": true}
	var s stats
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(line), "cmdstat_"), ":calls=")
		if !ok || name == "info" || strings.HasPrefix(name, "config") {
			continue
		}
		var calls int
		fmt.Sscanf(rest, "%d", &calls)
		s.all += calls
		if !insideScripts[name] {
			s.clientSent += calls
		}
		if name == "evalsha" || name == "eval" {
			s.scripts += calls
		}
	}
	return s
}

func writeTable(w *strings.Builder, rs []result) {
	floor, peer := rs[0], rs[1]
	fmt.Fprintf(w, "| logout | req/s | p50 | p99 | Redis commands sent | Redis work | allocs | CPU/request | req/s vs floor | req/s vs scs | CPU vs floor |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rs {
		fmt.Fprintf(w, "| %s | %.0f | %.0f µs | %.0f µs | %.2f | %.2f | %.0f | %.1f µs | %.2fx | %.2fx | %.2fx |\n",
			r.name, r.rps, us(r.p50), us(r.p99), r.commands, r.serverWork, r.allocs, us(r.cpu),
			r.rps/floor.rps, r.rps/peer.rps, float64(r.cpu)/float64(floor.cpu))
	}
	fmt.Fprintf(w, "\n")
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
