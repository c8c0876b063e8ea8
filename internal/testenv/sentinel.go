// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sentinel is a Redis Sentinel deployment of throwaway processes on free
// ports: a primary, one replica of it, and three sentinels that agree (two of
// three) when the primary is down and then promote the replica. Tests kill
// the primary on purpose and watch the failover. Every process is stopped at
// the end of the test.
//
// The sentinels declare a primary down after SentinelDownAfter without an
// answer, so a failover takes a few seconds. Its methods fail the test that
// started it, so call them from that test's goroutine.
type Sentinel struct {
	// Name is the name the sentinels monitor the primary under.
	Name string
	// Addrs are the sentinels' addresses.
	Addrs []string

	nodes [2]*RedisServer // the data nodes; either may be the primary
	logs  []string        // the sentinels' log files
	t     testing.TB
}

// SentinelDownAfter is how long the sentinels wait for a silent primary
// before they agree it is down and fail over. It is well above the one
// second a sentinel may take to reconnect to a newly promoted primary: at one
// second, a sentinel can take the new primary for dead too, and, counting the
// other sentinels' still-fresh votes against the old one, fail over again.
const SentinelDownAfter = 2 * time.Second

// Each wait on the deployment gives up after this long: a failover that has
// not happened by then will not happen.
const sentinelPatience = 30 * time.Second

// StartSentinel starts a primary, its replica and three sentinels, and
// returns once every sentinel knows the replica and the two other sentinels,
// so that killing the primary leads to a failover. It skips (or fails, in
// strict mode) without redis-server.
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		SkipOrFail(t, "redis-server is not installed")
	}
	// A replica that rejoins loads the primary's data over the socket at
	// once, instead of after the default five-second delay.
	primary := StartRedisServer(t, "--repl-diskless-sync-delay", "0")
	replica := StartRedisServer(t, "--repl-diskless-sync-delay", "0", "--replicaof", "127.0.0.1", port(primary.Addr))
	s := &Sentinel{Name: "logout-test", nodes: [2]*RedisServer{primary, replica}, t: t}
	for range 3 {
		dir := t.TempDir()
		p := FreePort(t)
		conf := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %q\nlogfile %q\n"+
			"sentinel monitor %s 127.0.0.1 %s 2\n"+
			"sentinel down-after-milliseconds %[4]s %[6]d\n"+
			"sentinel failover-timeout %[4]s %[7]d\n",
			p, dir, filepath.Join(dir, "sentinel.log"), s.Name, port(primary.Addr),
			SentinelDownAfter.Milliseconds(), 3*SentinelDownAfter.Milliseconds())
		file := filepath.Join(dir, "sentinel.conf")
		if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		sn := &RedisServer{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), args: []string{bin, file, "--sentinel"}, t: t}
		sn.Start()
		t.Cleanup(sn.Stop)
		s.Addrs = append(s.Addrs, sn.Addr)
		s.logs = append(s.logs, filepath.Join(dir, "sentinel.log"))
	}
	// Cleanups run last-in first-out: this one runs before the processes
	// stop, while their logs are still there to show why a test failed.
	t.Cleanup(func() {
		if t.Failed() {
			s.dumpLogs()
		}
	})
	s.waitSentinels(replica, nil)
	return s
}

// Client returns a client that finds the primary through the sentinels, as
// an app would, with ContextTimeoutEnabled set. It is closed at cleanup.
func (s *Sentinel) Client() *redis.Client {
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:            s.Name,
		SentinelAddrs:         s.Addrs,
		ContextTimeoutEnabled: true,
	})
	s.t.Cleanup(func() { rdb.Close() })
	return rdb
}

// Primary returns the data node every sentinel names as the primary, once
// they agree and it serves as one.
func (s *Sentinel) Primary() *RedisServer {
	s.t.Helper()
	return s.waitPrimary(func(*RedisServer) bool { return true })
}

// Replica returns the data node that is not the primary.
func (s *Sentinel) Replica() *RedisServer {
	s.t.Helper()
	if p := s.Primary(); p == s.nodes[0] {
		return s.nodes[1]
	}
	return s.nodes[0]
}

// WaitFailover waits until every sentinel names a primary other than old,
// and that node serves as primary, and returns it.
func (s *Sentinel) WaitFailover(old *RedisServer) *RedisServer {
	s.t.Helper()
	return s.waitPrimary(func(p *RedisServer) bool { return p != old })
}

// Isolate stops the replica (SIGSTOP) and makes the primary drop its link to
// it, so that every write the primary acknowledges from then on exists on the
// primary alone: the replication lag of a replica that fell behind, made
// certain. Stopping the replica alone would not do: the primary would go on
// streaming into the replica's socket, and the replica would read it all
// when resumed. Resume the replica with [RedisServer.Resume].
func (s *Sentinel) Isolate(replica *RedisServer) {
	s.t.Helper()
	primary := s.Primary()
	replica.Pause()
	rdb := redis.NewClient(&redis.Options{Addr: primary.Addr})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.ClientKillByFilter(ctx, "TYPE", "replica").Err(); err != nil {
		s.t.Fatalf("cutting the replication link: %v", err)
	}
	s.poll("the primary to drop its replica", func(ctx context.Context) (bool, string) {
		n := info(ctx, rdb, "replication")["connected_slaves"]
		return n == "0", fmt.Sprintf("%s has %q replicas", primary.Addr, n)
	})
}

// Rejoin restarts node, killed earlier, as a replica of the current primary,
// and waits until it holds the primary's data and every sentinel counts it
// as a healthy replica, so that the next failover has somewhere to go.
func (s *Sentinel) Rejoin(node *RedisServer) {
	s.t.Helper()
	primary := s.Primary()
	node.args = withReplicaOf(node.args, primary.Addr)
	node.Start()
	s.waitSentinels(node, primary)
}

// WaitReplicated waits until the replica holds every write the primary has
// acknowledged so far. The replication stream is ordered, so a write of its
// own that the replica confirms (WAIT) covers every earlier one.
func (s *Sentinel) WaitReplicated() {
	s.t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: s.Primary().Addr})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wait *redis.Cmd
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Incr(ctx, "testenv:replicated")
		wait = p.Do(ctx, "wait", 1, 5000)
		return nil
	})
	if n, _ := wait.Int(); err != nil || n < 1 {
		s.t.Fatalf("the replica did not confirm the primary's writes: %d replicas, %v", n, err)
	}
}

// Pause stops the server's process (SIGSTOP): it keeps its sockets but
// answers nothing, like a server stalled by a long fork or a swapped-out
// page.
func (s *RedisServer) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (s *RedisServer) Resume() { s.signal(syscall.SIGCONT) }

func (s *RedisServer) signal(sig syscall.Signal) {
	s.t.Helper()
	if s.cmd == nil || s.cmd.Process == nil {
		s.t.Fatalf("redis-server at %s is not running", s.Addr)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("redis-server at %s: %v", s.Addr, err)
	}
}

// waitPrimary waits until every sentinel names the same data node as
// primary, the node says it is one, and ok accepts it.
func (s *Sentinel) waitPrimary(ok func(*RedisServer) bool) *RedisServer {
	s.t.Helper()
	var found *RedisServer
	s.poll("a primary every sentinel agrees on", func(ctx context.Context) (bool, string) {
		found = nil
		var named []string
		for _, a := range s.Addrs {
			sc := redis.NewSentinelClient(&redis.Options{Addr: a, MaxRetries: -1})
			addr, err := sc.GetMasterAddrByName(ctx, s.Name).Result()
			sc.Close()
			if err != nil {
				return false, fmt.Sprintf("sentinel %s: %v", a, err)
			}
			named = append(named, net.JoinHostPort(addr[0], addr[1]))
		}
		if len(slices.Compact(slices.Sorted(slices.Values(named)))) != 1 {
			return false, fmt.Sprintf("sentinels name %v", named)
		}
		for _, n := range s.nodes {
			if n.Addr == named[0] {
				found = n
			}
		}
		if found == nil || !ok(found) {
			return false, fmt.Sprintf("sentinels name %s", named[0])
		}
		rdb := redis.NewClient(&redis.Options{Addr: found.Addr, MaxRetries: -1})
		defer rdb.Close()
		if role := info(ctx, rdb, "replication")["role"]; role != "master" {
			return false, fmt.Sprintf("%s says its role is %q", found.Addr, role)
		}
		return true, ""
	})
	return found
}

// waitSentinels waits until replica follows primary (nil: the current
// primary) with its link up, and every sentinel knows the replica as healthy
// and the two other sentinels.
func (s *Sentinel) waitSentinels(replica, primary *RedisServer) {
	s.t.Helper()
	if primary == nil {
		primary = s.nodes[0]
		if primary == replica {
			primary = s.nodes[1]
		}
	}
	s.poll("the replica and the sentinels to be ready", func(ctx context.Context) (bool, string) {
		rdb := redis.NewClient(&redis.Options{Addr: replica.Addr, MaxRetries: -1})
		repl := info(ctx, rdb, "replication")
		rdb.Close()
		if got := net.JoinHostPort(repl["master_host"], repl["master_port"]); got != primary.Addr || repl["master_link_status"] != "up" {
			return false, fmt.Sprintf("replica %s: master %s, link %q %s", replica.Addr, got, repl["master_link_status"], repl["error"])
		}
		for _, a := range s.Addrs {
			sc := redis.NewSentinelClient(&redis.Options{Addr: a, MaxRetries: -1})
			m, err := sc.Master(ctx, s.Name).Result()
			reps, err2 := sc.Replicas(ctx, s.Name).Result()
			sc.Close()
			if err != nil || err2 != nil {
				return false, fmt.Sprintf("sentinel %s: %v %v", a, err, err2)
			}
			if m["num-other-sentinels"] != "2" || m["flags"] != "master" {
				return false, fmt.Sprintf("sentinel %s: %s is %q and has %s other sentinels", a, s.Name, m["flags"], m["num-other-sentinels"])
			}
			healthy := false
			for _, r := range reps {
				healthy = healthy || net.JoinHostPort(r["ip"], r["port"]) == replica.Addr && r["flags"] == "slave"
			}
			if !healthy {
				return false, fmt.Sprintf("sentinel %s does not count %s as a healthy replica: %v", a, replica.Addr, reps)
			}
		}
		return true, ""
	})
}

// poll calls cond until it holds, and fails the test with cond's last
// account of what it saw if it does not hold within sentinelPatience.
func (s *Sentinel) poll(what string, cond func(context.Context) (bool, string)) {
	s.t.Helper()
	deadline := time.Now().Add(sentinelPatience)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ok, state := cond(ctx)
		cancel()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("waited %v for %s: %s", sentinelPatience, what, state)
		}
		<-time.After(20 * time.Millisecond)
	}
}

func (s *Sentinel) dumpLogs() {
	for _, f := range s.logs {
		b, _ := os.ReadFile(f)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		s.t.Logf("last lines of %s:\n%s", f, strings.Join(lines[max(0, len(lines)-40):], "\n"))
	}
}

// info reads one INFO section as a map; for a server that does not answer,
// the map holds only the error, under "error".
func info(ctx context.Context, rdb *redis.Client, section string) map[string]string {
	out := map[string]string{}
	text, err := rdb.Info(ctx, section).Result()
	if err != nil {
		out["error"] = err.Error()
	}
	for _, line := range strings.Split(text, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = v
		}
	}
	return out
}

// withReplicaOf returns args with any --replicaof replaced by one naming
// addr.
func withReplicaOf(args []string, addr string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if args[i] == "--replicaof" {
			i += 2
			continue
		}
		out = append(out, args[i])
	}
	host, p, _ := net.SplitHostPort(addr)
	return append(out, "--replicaof", host, p)
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}
