package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// started is a run of the command in this process.
type started struct {
	issuer string
	lines  []string // what it printed before serving
	cancel context.CancelFunc
	done   chan struct{}
	code   int // the exit status, once done is closed
}

// stop ends the run's context and returns its exit status.
func (s *started) stop() int {
	s.cancel()
	<-s.done
	return s.code
}

// start runs the command with args and waits until it prints its issuer.
func start(t *testing.T, args ...string) *started {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	s := &started{cancel: cancel, done: make(chan struct{})}
	var stderr bytes.Buffer
	go func() {
		s.code = run(ctx, append([]string{"-addr", "127.0.0.1:0"}, args...), pw, &stderr)
		pw.Close()
		close(s.done)
	}()
	sc := bufio.NewScanner(pr)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "fakescalekit: ready") {
		s.lines = append(s.lines, sc.Text())
		if issuer, ok := strings.CutPrefix(sc.Text(), "fakescalekit: issuer "); ok {
			s.issuer = issuer
		}
	}
	go io.Copy(io.Discard, pr)
	if s.issuer == "" {
		t.Fatalf("no issuer printed; stderr: %s", stderr.String())
	}
	t.Cleanup(func() { s.stop() })
	return s
}

// authorizes reports whether the environment sends a browser of clientID
// back to redirectURI with a code.
func authorizes(t *testing.T, issuer, clientID, redirectURI string) bool {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	q := url.Values{"client_id": {clientID}, "redirect_uri": {redirectURI}, "response_type": {"code"}, "scope": {"openid"}, "login_hint": {"ada@example.com"}}
	resp, err := c.Get(issuer + "/oauth/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusFound && strings.HasPrefix(resp.Header.Get("Location"), redirectURI+"?code=")
}

func TestServesTheFlagsClient(t *testing.T) {
	s := start(t, "-client-id", "skc_1", "-client-secret", "dev-secret", "-redirect-uri", "http://localhost:3000/cb", "-redirect-uri", "http://localhost:3000/cb2",
		"-post-logout-uri", "http://localhost:3000/login", "-idle-timeout", "30m")
	resp, err := http.Get(s.issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Issuer string }
	json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if doc.Issuer != s.issuer {
		t.Errorf("discovery issuer %q, want %q", doc.Issuer, s.issuer)
	}
	for _, cb := range []string{"http://localhost:3000/cb", "http://localhost:3000/cb2"} {
		if !authorizes(t, s.issuer, "skc_1", cb) {
			t.Errorf("redirect URI %s not registered", cb)
		}
	}
	if !strings.Contains(strings.Join(s.lines, "\n"), "client skc_1, secret dev-secret") {
		t.Errorf("printed %q, want the client and its secret", s.lines)
	}
	if code := s.stop(); code != 0 {
		t.Errorf("exit %d after the context ended, want 0", code)
	}
}

func TestClientsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "clients.json")
	os.WriteFile(path, []byte(`{"clients": [
		{"id": "skc_a", "secret": "a", "redirect_uris": ["http://a.localhost/cb"], "post_logout_redirect_uris": ["http://a.localhost/out"]},
		{"id": "skc_b", "redirect_uris": ["http://b.localhost/cb"], "backchannel_logout_uris": ["http://b.localhost/bc"]}
	]}`), 0o644)
	s := start(t, "-clients", path, "-webhook-url", "http://hooks.localhost/scalekit")
	if !authorizes(t, s.issuer, "skc_a", "http://a.localhost/cb") || !authorizes(t, s.issuer, "skc_b", "http://b.localhost/cb") {
		t.Error("a client of the file is not registered")
	}
	if authorizes(t, s.issuer, "skc_a", "http://b.localhost/cb") {
		t.Error("client a accepted client b's redirect URI")
	}
	out := strings.Join(s.lines, "\n")
	if !strings.Contains(out, "client skc_b, secret ") || !strings.Contains(out, "signed with whsec_") {
		t.Errorf("printed %q, want skc_b's generated secret and the webhook secret", out)
	}
}

// A real SIGTERM stops the command cleanly, with exit status 0.
func TestStopsOnSignal(t *testing.T) {
	s := start(t, "-client-id", "skc_1", "-redirect-uri", "http://localhost:3000/cb")
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.done:
		if s.code != 0 {
			t.Errorf("exit %d after SIGTERM, want 0", s.code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10s after SIGTERM")
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(s.issuer, "http://"), time.Second); err == nil {
		t.Error("the port still accepts connections after the shutdown")
	}
}

func TestBadFlags(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"clients": [{"id": "skc_a", "redirect": "typo"}]}`), 0o644)
	tests := []struct {
		name string
		args []string
		want string // in the message
	}{
		{"unknown flag", []string{"-client", "x"}, "flag provided but not defined"},
		{"no client", nil, "no client"},
		{"URI without client", []string{"-redirect-uri", "http://localhost/cb"}, "give -client-id"},
		{"relative URI", []string{"-client-id", "skc_1", "-redirect-uri", "/cb"}, "not an absolute"},
		{"post-logout URI with query", []string{"-client-id", "skc_1", "-post-logout-uri", "http://localhost/out?x=1"}, "no query"},
		{"bad duration", []string{"-client-id", "skc_1", "-idle-timeout", "soon"}, "invalid value"},
		{"negative duration", []string{"-client-id", "skc_1", "-absolute-timeout", "-1h"}, "negative"},
		{"bad hintless mode", []string{"-client-id", "skc_1", "-hintless-logout", "maybe"}, "refuse, end or redirect"},
		{"bad webhook secret", []string{"-client-id", "skc_1", "-webhook-secret", "hunter2"}, "whsec_"},
		{"bad address", []string{"-client-id", "skc_1", "-addr", "nowhere"}, "-addr"},
		{"missing clients file", []string{"-clients", "/nonexistent/clients.json"}, "-clients"},
		{"unknown field in clients file", []string{"-clients", bad}, "unknown field"},
		{"stray argument", []string{"-client-id", "skc_1", "serve"}, "unexpected argument"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		args := tt.args
		if tt.name != "bad address" {
			args = append([]string{"-addr", "127.0.0.1:0"}, args...)
		}
		code := run(context.Background(), args, &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tt.want) || stdout.Len() != 0 {
			t.Errorf("%s: exit %d, stderr %q; want 2 and a message with %q", tt.name, code, stderr.String(), tt.want)
		}
	}
}

func TestAddressInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"-addr", l.Addr().String(), "-client-id", "skc_1"}, io.Discard, &stderr); code != 1 {
		t.Errorf("exit %d with the address taken, want 1: %s", code, stderr.String())
	}
}
