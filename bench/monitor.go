// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// monitor counts the commands Redis runs on the bench's databases, through
// MONITOR, which names each command's database: other clients of the same
// server (INFO commandstats would count theirs too) are left out. It watches
// only while count runs, so the load runs go at full speed.
type monitor struct {
	opts *redis.Options
	rdb  *redis.Client
	seq  int
}

// counted is what MONITOR saw: commands that clients sent, and all the
// commands Redis ran, the ones inside scripts included.
type counted struct{ sent, all int }

func newMonitor(opts *redis.Options) *monitor {
	return &monitor{opts: opts, rdb: redis.NewClient(opts)}
}

func (m *monitor) close() { m.rdb.Close() }

// count runs f with MONITOR on and returns the commands run meanwhile in the
// bench's database and the one after it (the scale run's).
func (m *monitor) count(f func()) counted {
	conn, err := net.Dial("tcp", m.opts.Addr)
	check(err)
	defer conn.Close()
	r := bufio.NewReader(conn)
	if m.opts.Password != "" {
		fmt.Fprintf(conn, "AUTH %s %s\r\n", cmpOr(m.opts.Username, "default"), m.opts.Password)
		expectOK(r)
	}
	fmt.Fprint(conn, "MONITOR\r\n")
	expectOK(r)
	// Commands go to MONITOR in the order Redis runs them: once a marker
	// sent after f comes back, every command of f is in.
	m.seq++
	marker := "bench-marker-" + strconv.Itoa(m.seq)
	f()
	check(m.rdb.Echo(context.Background(), marker).Err())
	var c counted
	dbs := []string{"[" + strconv.Itoa(m.opts.DB) + " ", "[" + strconv.Itoa(m.opts.DB+1) + " "}
	conn.SetReadDeadline(time.Now().Add(time.Minute))
	for {
		line, err := r.ReadString('\n')
		check(err)
		if strings.Contains(line, marker) {
			return c
		}
		// +1700000000.123456 [9 127.0.0.1:40000] "getex" "…" …
		_, rest, _ := strings.Cut(line, " ")
		if !strings.HasPrefix(rest, dbs[0]) && !strings.HasPrefix(rest, dbs[1]) {
			continue
		}
		_, name, _ := strings.Cut(rest, `] "`)
		name, _, _ = strings.Cut(name, `"`)
		if setUp[strings.ToLower(name)] {
			continue
		}
		c.all++
		if !strings.Contains(rest[:strings.Index(rest, "]")], " lua") {
			c.sent++
		}
	}
}

// setUp are the commands a client sends on a new connection, and the
// monitor's own marker: no request sends them.
var setUp = map[string]bool{"hello": true, "client": true, "select": true, "auth": true, "ping": true, "echo": true}

func expectOK(r *bufio.Reader) {
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "+OK") {
		log.Fatalf("MONITOR: %q %v", line, err)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
