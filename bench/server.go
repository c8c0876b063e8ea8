// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// tables builds each table by name. The bench and the server processes it
// starts build the same ones, with the same keys, so that a session signed in
// by the bench opens in the server.
var tables = map[string]func(*redis.Client) table{
	"requests": requestTable,
	"logout":   logoutTable,
}

// cpuPath answers the server process's CPU time so far, in nanoseconds.
const cpuPath = "/_bench/cpu"

// serve runs one system's handler (spec is TABLE/INDEX) on a loopback port
// that it prints, until its standard input closes.
func serve(spec string) {
	name, index, _ := strings.Cut(spec, "/")
	i, err := strconv.Atoi(index)
	check(err)
	s := tables[name](redisClient(true)).systems[i]
	l, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	fmt.Println(l.Addr())
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == cpuPath {
			fmt.Fprint(w, int64(processCPU()))
			return
		}
		s.handler.ServeHTTP(w, r)
	}))
	io.Copy(io.Discard, os.Stdin)
}

// server is a system served by a process of its own.
type server struct {
	cmd   *exec.Cmd
	stdin io.Closer
	url   string
}

func startServer(table string, i int) *server {
	cmd := exec.Command(os.Args[0], "-redis", *flagRedis, "-serve", table+"/"+strconv.Itoa(i))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	check(err)
	stdout, err := cmd.StdoutPipe()
	check(err)
	check(cmd.Start())
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	check(err)
	return &server{cmd: cmd, stdin: stdin, url: "http://" + strings.TrimSpace(addr)}
}

// cpu reads the server's CPU time.
func (s *server) cpu(c *http.Client) time.Duration {
	resp, err := c.Get(s.url + cpuPath)
	check(err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	check(err)
	ns, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		log.Fatalf("server CPU: %q", b)
	}
	return time.Duration(ns)
}

func (s *server) stop() {
	s.stdin.Close()
	check(s.cmd.Wait())
}
