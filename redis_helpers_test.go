package logout_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/endsession/logout"
)

// strict reports whether tests must fail instead of skipping when Redis,
// redis-server or Chromium is missing. CI sets LOGOUT_TEST_STRICT=1 so that a
// green run means every test ran.
func strict() bool { return os.Getenv("LOGOUT_TEST_STRICT") == "1" }

// skipOrFail skips the test with a clear reason, or fails it in strict mode.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if strict() {
		t.Fatalf("%s (LOGOUT_TEST_STRICT=1 forbids skipping)", msg)
	}
	t.Skip(msg)
}

// newMini starts an in-process Redis (miniredis) for the test.
func newMini(t testing.TB) (*miniredis.Miniredis, *redis.Client) {
	t.Helper()
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return m, rdb
}

// newMiniStore is a RedisStore on a fresh miniredis.
func newMiniStore(t testing.TB) *logout.RedisStore {
	t.Helper()
	_, rdb := newMini(t)
	return logout.NewRedisStore(rdb)
}

// realRedis connects to REDIS_URL, or to 127.0.0.1:6379 when it answers, and
// skips (or fails in strict mode) when neither does.
func realRedis(t testing.TB) *redis.Client {
	t.Helper()
	opts := &redis.Options{Addr: "127.0.0.1:6379"}
	if u := os.Getenv("REDIS_URL"); u != "" {
		var err error
		if opts, err = redis.ParseURL(u); err != nil {
			t.Fatalf("REDIS_URL: %v", err)
		}
	}
	rdb := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		skipOrFail(t, "no Redis at %s (set REDIS_URL): %v", opts.Addr, err)
	}
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// realRedisStore is a RedisStore on the real Redis with a key prefix of its
// own, so tests sharing one server never see each other's keys.
func realRedisStore(t testing.TB) (*logout.RedisStore, *redis.Client) {
	t.Helper()
	rdb := realRedis(t)
	s := logout.NewRedisStore(rdb)
	s.KeyPrefix = fmt.Sprintf("logout-test:%d:%s:", time.Now().UnixNano(), t.Name())
	t.Cleanup(func() {
		ctx := context.Background()
		keys, _ := rdb.Keys(ctx, s.KeyPrefix+"*").Result()
		if len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
	})
	return s, rdb
}

// redisServer is a throwaway redis-server on a free port, for tests that count
// the commands it receives or stop it on purpose.
type redisServer struct {
	Addr string
	cmd  *exec.Cmd
	args []string
	t    testing.TB
}

func startRedisServer(t testing.TB, extra ...string) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		skipOrFail(t, "redis-server is not installed")
	}
	port := freePort(t)
	dir := t.TempDir()
	args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir}, extra...)
	s := &redisServer{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), args: append([]string{bin}, args...), t: t}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Start runs the server and waits until it answers PING.
func (s *redisServer) Start() {
	s.t.Helper()
	s.cmd = exec.Command(s.args[0], s.args[1:]...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("redis-server: %v", err)
	}
	waitPing(s.t, s.Addr)
}

// Stop kills the server at once, as a crash would.
func (s *redisServer) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
	}
}

func waitPing(t testing.TB, addr string) {
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

// freePort returns a port that was free a moment ago and whose cluster bus
// port (+10000) is valid too.
func freePort(t testing.TB) int {
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

// commandCounter counts the commands a redis-server receives from clients,
// through MONITOR. Commands a script runs inside the server are not sent by
// anyone and are left out, as is the counter's own marker.
type commandCounter struct {
	rdb  *redis.Client
	conn net.Conn
	r    *bufio.Reader
	seq  int
}

func newCommandCounter(t testing.TB, addr string) *commandCounter {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &commandCounter{rdb: redis.NewClient(&redis.Options{Addr: addr}), conn: conn, r: bufio.NewReader(conn)}
	t.Cleanup(func() { c.rdb.Close() })
	fmt.Fprint(conn, "MONITOR\r\n")
	if line, err := c.r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
		t.Fatalf("MONITOR: %q %v", line, err)
	}
	return c
}

// reset forgets the commands seen so far.
func (c *commandCounter) reset(t testing.TB) { c.count(t) }

// count returns the commands per name that clients sent since the last call.
func (c *commandCounter) count(t testing.TB) map[string]int {
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
		if !ok || strings.Contains(line, " lua]") {
			continue
		}
		name, _, _ := strings.Cut(rest, "\"")
		out[strings.ToLower(name)]++
	}
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// redisCluster starts three redis-server nodes in cluster mode on free ports,
// joins them with redis-cli --cluster create, and stops them at cleanup.
func redisCluster(t testing.TB) *redis.ClusterClient {
	t.Helper()
	if _, err := exec.LookPath("redis-cli"); err != nil {
		skipOrFail(t, "redis-cli is not installed")
	}
	var addrs []string
	for range 3 {
		dir := t.TempDir()
		s := startRedisServer(t, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"), "--cluster-node-timeout", "2000")
		addrs = append(addrs, s.Addr)
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
	return rdb
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
