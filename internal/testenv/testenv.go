// SPDX-License-Identifier: Apache-2.0

// Package testenv gives this module's tests the real services they use
// (Redis, a Redis Cluster, Chromium) and one rule for when one is missing:
// skip with a clear message, or fail when LOGOUT_TEST_STRICT=1, as CI sets.
package testenv

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Strict reports whether tests must fail instead of skipping when Redis,
// redis-server or Chromium is missing. CI sets LOGOUT_TEST_STRICT=1 so that a
// green run means every test ran.
func Strict() bool { return os.Getenv("LOGOUT_TEST_STRICT") == "1" }

// SkipOrFail skips the test with a clear reason, or fails it in strict mode.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Strict() {
		t.Fatalf("%s (LOGOUT_TEST_STRICT=1 forbids skipping)", msg)
	}
	skips.Lock()
	skips.reasons[msg]++
	skips.Unlock()
	t.Skip(msg)
}

var skips = struct {
	sync.Mutex
	reasons map[string]int
}{reasons: map[string]int{}}

// SkipSummary is one line saying how many tests skipped and why, or "" when
// none did. Each package's TestMain prints it after the run.
func SkipSummary() string {
	skips.Lock()
	defer skips.Unlock()
	if len(skips.reasons) == 0 {
		return ""
	}
	n := 0
	var why []string
	for reason, k := range skips.reasons {
		n += k
		why = append(why, fmt.Sprintf("%s (%d)", reason, k))
	}
	slices.Sort(why)
	return fmt.Sprintf("%d tests skipped: %s; set LOGOUT_TEST_STRICT=1 to make them fail instead", n, strings.Join(why, "; "))
}

// RedisURLVar names the variable that points the tests at a Redis of the
// developer's choosing, such as redis://127.0.0.1:6380/3. Unset, the tests
// use DefaultRedisURL: database 15 of the local server, so that they never
// touch the database 0 that apps (and this module's demo) use.
const RedisURLVar = "LOGOUT_TEST_REDIS_URL"

// DefaultRedisURL is the Redis the tests use when RedisURLVar is unset.
const DefaultRedisURL = "redis://127.0.0.1:6379/15"

// RealRedis connects to the tests' Redis (RedisURLVar, or DefaultRedisURL)
// and skips (or fails in strict mode) when it does not answer. Tests write
// only under a KeyPrefix of their own, which removes their keys afterwards.
func RealRedis(t testing.TB) *redis.Client {
	t.Helper()
	u := cmp.Or(os.Getenv(RedisURLVar), DefaultRedisURL)
	opts, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("%s: %v", RedisURLVar, err)
	}
	redisProbe.Do(func() {
		probe := *opts
		probe.MaxRetries = -1
		probe.DialTimeout = time.Second
		rdb := redis.NewClient(&probe)
		defer rdb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		redisProbeErr = rdb.Ping(ctx).Err()
		usedRealRedis.Store(true)
	})
	if redisProbeErr != nil {
		SkipOrFail(t, "no Redis at %s (set %s to one): %v", u, RedisURLVar, redisProbeErr)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// KeyPrefix returns a key prefix no other test shares, and removes every key
// under it from rdb when the test ends.
func KeyPrefix(t testing.TB, rdb redis.UniversalClient) string {
	t.Helper()
	prefix := fmt.Sprintf("%s%d:", runPrefix, prefixes.Add(1))
	t.Cleanup(func() {
		if err := deleteKeys(context.Background(), rdb, prefix); err != nil {
			t.Errorf("removing the test's keys under %s: %v", prefix, err)
		}
	})
	return prefix
}

// KeysLeft counts the keys this test process left in the tests' Redis; a
// package's TestMain fails the run when there are any. It is 0, nil when no
// test used that Redis.
func KeysLeft() (int, error) {
	if !usedRealRedis.Load() || redisProbeErr != nil {
		return 0, nil
	}
	opts, err := redis.ParseURL(cmp.Or(os.Getenv(RedisURLVar), DefaultRedisURL))
	if err != nil {
		return 0, err
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n := 0
	iter := rdb.Scan(ctx, 0, runPrefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		n++
	}
	return n, iter.Err()
}

// deleteKeys removes every key under prefix, on every primary of a Cluster.
func deleteKeys(ctx context.Context, rdb redis.UniversalClient, prefix string) error {
	del := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			if err := c.Del(ctx, iter.Val()).Err(); err != nil {
				return err
			}
		}
		return iter.Err()
	}
	switch c := rdb.(type) {
	case *redis.Client:
		return del(ctx, c)
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, del)
	}
	return fmt.Errorf("cannot remove keys from a %T", rdb)
}

// runPrefix starts the key prefix of every test of this process.
var (
	runPrefix     = fmt.Sprintf("logout-test:%d:%d:", os.Getpid(), time.Now().UnixNano())
	prefixes      atomic.Int64
	usedRealRedis atomic.Bool
)

// The real Redis is probed once per test binary, so a missing one costs one
// timeout, not one per test.
var (
	redisProbe    sync.Once
	redisProbeErr error
)

// RedisServer is a throwaway redis-server on a free port, for tests that count
// the commands it receives or stop it on purpose.
type RedisServer struct {
	Addr string
	cmd  *exec.Cmd
	args []string
	t    testing.TB
}

func StartRedisServer(t testing.TB, extra ...string) *RedisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		SkipOrFail(t, "redis-server is not installed")
	}
	port := FreePort(t)
	dir := t.TempDir()
	args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir}, extra...)
	s := &RedisServer{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), args: append([]string{bin}, args...), t: t}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Start runs the server and waits until it answers PING.
func (s *RedisServer) Start() {
	s.t.Helper()
	s.cmd = exec.Command(s.args[0], s.args[1:]...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("redis-server: %v", err)
	}
	WaitPing(s.t, s.Addr)
}

// Stop kills the server at once, as a crash would.
func (s *RedisServer) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
	}
}

// WaitPing waits until the Redis at addr answers.
func WaitPing(t testing.TB, addr string) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer rdb.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis at %s did not come up: %v", addr, err)
		}
		<-time.After(20 * time.Millisecond)
	}
}

// FreePort returns a port that was free a moment ago and whose cluster bus
// port (+10000) is valid too.
func FreePort(t testing.TB) int {
	t.Helper()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if port < 55000 {
			return port
		}
	}
}

// CommandCounter counts the commands a redis-server receives from clients,
// through MONITOR. Commands a script runs inside the server are not sent by
// anyone and are left out, as is the counter's own marker.
type CommandCounter struct {
	rdb    *redis.Client
	conn   net.Conn
	r      *bufio.Reader
	seq    int
	ignore []string
}

// Ignore leaves out the commands whose MONITOR line holds substr, such as
// those of a background poller on keys of its own.
func (c *CommandCounter) Ignore(substr string) { c.ignore = append(c.ignore, substr) }

func NewCommandCounter(t testing.TB, addr string) *CommandCounter {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &CommandCounter{rdb: redis.NewClient(&redis.Options{Addr: addr}), conn: conn, r: bufio.NewReader(conn)}
	t.Cleanup(func() { c.rdb.Close() })
	fmt.Fprint(conn, "MONITOR\r\n")
	if line, err := c.r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
		t.Fatalf("MONITOR: %q %v", line, err)
	}
	return c
}

// Reset forgets the commands seen so far.
func (c *CommandCounter) Reset(t testing.TB) { c.Count(t) }

// Count returns the commands per name that clients sent since the last call.
func (c *CommandCounter) Count(t testing.TB) map[string]int {
	t.Helper()
	c.seq++
	marker := fmt.Sprintf("counter-marker-%d", c.seq)
	if err := c.rdb.Echo(context.Background(), marker).Err(); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading MONITOR: %v", err)
		}
		if strings.Contains(line, marker) {
			return out
		}
		// +1700000000.123456 [0 127.0.0.1:40000] "evalsha" "…" …
		_, rest, ok := strings.Cut(line, "] \"")
		if !ok || strings.Contains(line, " lua]") || slices.ContainsFunc(c.ignore, func(s string) bool { return strings.Contains(line, s) }) {
			continue
		}
		name, _, _ := strings.Cut(rest, "\"")
		out[strings.ToLower(name)]++
	}
}

// Total adds up a Count.
func Total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// RedisCluster starts three redis-server nodes in cluster mode on free ports,
// joins them with redis-cli --cluster create, and stops them at cleanup. Extra
// arguments go to every node's command line.
func RedisCluster(t testing.TB, extra ...string) *redis.ClusterClient {
	t.Helper()
	rdb, _ := RedisClusterNodes(t, extra...)
	return rdb
}

// RedisClusterNodes is RedisCluster that also returns the nodes, for tests
// that stop or pause one.
func RedisClusterNodes(t testing.TB, extra ...string) (*redis.ClusterClient, []*RedisServer) {
	t.Helper()
	if _, err := exec.LookPath("redis-cli"); err != nil {
		SkipOrFail(t, "redis-cli is not installed")
	}
	var addrs []string
	var nodes []*RedisServer
	for range 3 {
		dir := t.TempDir()
		args := append([]string{"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"), "--cluster-node-timeout", "2000"}, extra...)
		s := StartRedisServer(t, args...)
		addrs = append(addrs, s.Addr)
		nodes = append(nodes, s)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, a := range addrs {
		waitClusterOK(t, a)
	}
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	deadline := time.Now().Add(15 * time.Second)
	for rdb.ForEachShard(ctx, func(ctx context.Context, c *redis.Client) error { return c.Ping(ctx).Err() }) != nil {
		if time.Now().After(deadline) {
			t.Fatal("cluster client never reached every shard")
		}
		<-time.After(50 * time.Millisecond)
	}
	return rdb, nodes
}

func waitClusterOK(t testing.TB, addr string) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, _ := rdb.ClusterInfo(context.Background()).Result()
		if strings.Contains(info, "cluster_state:ok") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster node %s never reached cluster_state:ok:\n%s", addr, info)
		}
		<-time.After(50 * time.Millisecond)
	}
}

// Chromium returns the path of a Chromium binary: LOGOUT_CHROMIUM, or
// chromium on the PATH. It skips (or fails, in strict mode) without one.
func Chromium(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("LOGOUT_CHROMIUM"); p != "" {
		// exec.LookPath checks that the file exists and is executable,
		// so a wrong path reads as what it is, not as a fork/exec error.
		path, err := exec.LookPath(p)
		if err != nil {
			SkipOrFail(t, "LOGOUT_CHROMIUM=%s is not a Chromium binary: %v", p, err)
		}
		return path
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	SkipOrFail(t, "Chromium is not installed (apt-get install -y chromium, or set LOGOUT_CHROMIUM)")
	return ""
}
