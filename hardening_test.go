// SPDX-License-Identifier: Apache-2.0

package logout_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/endsession/logout"
)

const allowedOther = "https://app.example.com/goodbye"

// hostileTargets reads the committed open-redirect corpus.
func hostileTargets(t testing.TB) []string {
	t.Helper()
	f, err := os.Open("testdata/open-redirects.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := strconv.Unquote(line)
		if err != nil {
			t.Fatalf("corpus line %q: %v", line, err)
		}
		out = append(out, s)
	}
	return out
}

// redirectParams are the names apps and proxies use for a return address.
var redirectParams = []string{"return_to", "rd", "next", "redirect", "redirect_uri", "redirect_url", "post_logout_redirect_uri",
	"returnTo", "return", "url", "continue", "target", "goto", "dest", "destination", "callback", "state"}

// checkNoOpenRedirect asserts that a logout response sends the browser only to
// the end-session endpoint with an allowed post-logout URI, or to an allowed
// URI directly.
func checkNoOpenRedirect(t testing.TB, resp *http.Response, what string) {
	t.Helper()
	if resp.StatusCode >= 500 {
		t.Fatalf("%s: status %d", what, resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		return
	}
	if loc == testPostLogout || loc == allowedOther {
		return
	}
	u, err := url.Parse(loc)
	if err != nil || u.Scheme != "https" || u.Host != "acme.scalekit.dev" || u.Path != "/oidc/logout" || u.User != nil {
		t.Fatalf("%s: Location %q is not the end-session endpoint", what, loc)
	}
	if u.RawQuery == "" {
		return // the bare endpoint: the provider keeps the browser
	}
	if p := u.Query()["post_logout_redirect_uri"]; len(p) != 1 || (p[0] != testPostLogout && p[0] != allowedOther) {
		t.Fatalf("%s: post_logout_redirect_uri %q", what, p)
	}
}

func TestOpenRedirectCorpus(t *testing.T) {
	targets := hostileTargets(t)
	if len(targets) < 150 {
		t.Fatalf("corpus has %d targets, want at least 150", len(targets))
	}
	h, _ := newHandler(t, newCookieStore(t), func(c *logout.Config) {
		c.ClientID = "skc_app"
		c.AllowedPostLogoutRedirectURIs = []string{allowedOther}
		c.AllowGET = true
	})
	cookies := signIn(t, h, testSession())
	for _, target := range targets {
		for _, param := range redirectParams {
			for _, how := range []string{"query", "form", "GET"} {
				var r *http.Request
				v := url.Values{param: {target}}.Encode()
				switch how {
				case "query":
					r = logoutRequest(http.MethodPost, cookies)
					r.URL.RawQuery = v
				case "form":
					r = httptest.NewRequest(http.MethodPost, testAppOrigin+"/logout", strings.NewReader(v))
					r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					r.Header.Set("Sec-Fetch-Site", "same-origin")
					for _, c := range cookies {
						r.AddCookie(c)
					}
				case "GET":
					r = logoutRequest(http.MethodGet, cookies)
					r.URL.RawQuery = v
				}
				resp := serve(h, r)
				checkNoOpenRedirect(t, resp, fmt.Sprintf("%s=%q (%s)", param, target, how))
				if param == "return_to" && resp.StatusCode != http.StatusBadRequest {
					t.Errorf("return_to=%q (%s): status %d, want 400", target, how, resp.StatusCode)
				}
			}
		}
	}
}

// rawRequest sends bytes as they are to a real server, past anything the
// Go client would clean up, and returns the status code.
func rawRequest(t *testing.T, addr, req string) int {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the response to %.80q: %v", req, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestMalformedRequests(t *testing.T) {
	store := newMiniStore(t)
	h, _ := newHandler(t, store, func(c *logout.Config) {
		c.Cookie.InsecureHTTP = true
		c.AllowedPostLogoutRedirectURIs = []string{allowedOther}
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	cookies := signIn(t, h, testSession())
	good := cookies[0].Name + "=" + cookies[0].Value
	many := make([]string, 300)
	for i := range many {
		many[i] = fmt.Sprintf("c%d=v%d", i, i)
	}
	post := func(path string, headers ...string) string {
		return "POST " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nSec-Fetch-Site: same-origin\r\nContent-Length: 0\r\n" + strings.Join(headers, "") + "Connection: close\r\n\r\n"
	}
	tests := []struct {
		name      string
		req       string
		untouched bool // the session must survive
	}{
		{"CR in a cookie", post("/logout", "Cookie: "+good+"\rX: y\r\n"), true},
		{"NUL in a cookie", post("/logout", "Cookie: "+good+"\x00\r\n"), false},
		{"NUL in the session value", post("/logout", "Cookie: "+cookies[0].Name+"=ab\x00cd\r\n"), false},
		{"hundreds of cookies", post("/logout", "Cookie: "+strings.Join(many, "; ")+"; "+good+"\r\n"), false},
		{"64 KB cookie header", post("/logout", "Cookie: big="+strings.Repeat("x", 64<<10)+"; "+good+"\r\n"), false},
		{"64 KB session cookie", post("/logout", "Cookie: "+cookies[0].Name+"="+strings.Repeat("x", 64<<10)+"\r\n"), false},
		{"chunk count lies", post("/logout", "Cookie: "+cookies[0].Name+"=4.abc; "+cookies[0].Name+".1=def\r\n"), false},
		{"broken percent-encoding", post("/logout?return_to=%zz", "Cookie: "+good+"\r\n"), true},
		{"duplicate return_to", post("/logout?return_to="+url.QueryEscape(allowedOther)+"&return_to="+url.QueryEscape(allowedOther), "Cookie: "+good+"\r\n"), true},
		{"CRLF in return_to", post("/logout?return_to="+url.QueryEscape(allowedOther+"\r\nSet-Cookie: x=y"), "Cookie: "+good+"\r\n"), true},
		{"NUL in return_to", post("/logout?return_to=%00", "Cookie: "+good+"\r\n"), true},
		{"huge form body", "POST /logout HTTP/1.1\r\nHost: " + addr + "\r\nSec-Fetch-Site: same-origin\r\nCookie: " + good + "\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 200000\r\nConnection: close\r\n\r\nreturn_to=" + strings.Repeat("a", 200000-10), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status := rawRequest(t, addr, tt.req)
			if status >= 500 {
				t.Fatalf("status %d, want 4xx or a normal logout", status)
			}
			if status != http.StatusSeeOther && (status < 400 || status >= 500) {
				t.Errorf("status %d, want 4xx or 303", status)
			}
			_, err := currentSession(h, cookies)
			if tt.untouched && err != nil {
				t.Errorf("status %d and the session is gone (%v); a refused request must touch nothing", status, err)
			}
			if err != nil {
				cookies = signIn(t, h, testSession()) // the next case needs one
				good = cookies[0].Name + "=" + cookies[0].Value
			}
		})
	}
}

// TestRefreshRacingLogout has many requests refresh one session through the
// handler while it is logged out, on a real Redis: afterwards no cookie any
// of them was given signs anyone in.
func TestRefreshRacingLogout(t *testing.T) {
	store, _ := realRedisStore(t)
	h, _ := newHandler(t, store, nil)
	for round := range 10 {
		s := testSession()
		cookies := signIn(t, h, s)
		var mu sync.Mutex
		var issued [][]*http.Cookie
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				s := s
				s.AccessToken = fmt.Sprintf("ACCESS-%d", i)
				rec := httptest.NewRecorder()
				err := h.UpdateSession(rec, logoutRequest(http.MethodGet, cookies), s)
				if err != nil && !errors.Is(err, logout.ErrNoSession) {
					t.Error(err)
				}
				mu.Lock()
				issued = append(issued, rec.Result().Cookies())
				mu.Unlock()
			}()
		}
		close(start)
		serve(h, logoutRequest(http.MethodPost, cookies))
		wg.Wait()
		for _, c := range append(issued, cookies) {
			if len(c) == 0 {
				continue
			}
			if got, err := currentSession(h, c); err == nil {
				t.Fatalf("round %d: a cookie from a refresh racing the logout signs in as %v", round, got)
			}
		}
	}
}

// slowProxy forwards TCP to a backend, holding every byte back by delay
// while slow is set.
type slowProxy struct {
	l       net.Listener
	backend string
	slow    atomic.Bool
	delay   time.Duration
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
}

func startSlowProxy(t *testing.T, backend string, delay time.Duration) *slowProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &slowProxy{l: l, backend: backend, delay: delay}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", backend)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, b)
			p.mu.Unlock()
			p.wg.Add(2)
			go p.pipe(c, b)
			go p.pipe(b, c)
		}
	}()
	// A client may leave connections open after it is closed (go-redis
	// does, after a context deadline cut a read short): close them here so
	// the pipes end.
	t.Cleanup(func() {
		l.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *slowProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if p.slow.Load() {
				<-time.After(p.delay)
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestSlowRedis bounds each logout by StoreTimeout when Redis answers late.
func TestSlowRedis(t *testing.T) {
	srv := startRedisServer(t)
	proxy := startSlowProxy(t, srv.Addr, 3*time.Second)
	rdb := redis.NewClient(&redis.Options{Addr: proxy.l.Addr().String(), MaxRetries: -1})
	defer rdb.Close()
	var failures atomic.Int32
	h, logs := newHandler(t, logout.NewRedisStore(rdb), func(c *logout.Config) {
		c.StoreTimeout = 200 * time.Millisecond
		c.OnError = func(*http.Request, error) { failures.Add(1) }
	})
	cookies := signIn(t, h, testSession())
	proxy.slow.Store(true)
	resp := serveBounded(t, h, logoutRequest(http.MethodPost, cookies), 2*time.Second)
	proxy.slow.Store(false)
	if resp.StatusCode != http.StatusSeeOther || setCookies(resp)["__Host-session"]["max-age"] != "0" {
		t.Errorf("status %d, cookies %v; want 303 with the cookie expired", resp.StatusCode, resp.Header.Values("Set-Cookie"))
	}
	if failures.Load() != 1 || !strings.Contains(logs.String(), "deadline exceeded") {
		t.Errorf("OnError called %d times, log %q; want the timeout reported", failures.Load(), logs.String())
	}
}

// serveBounded runs the handler and fails the test if it has not answered
// within limit: a logout must always answer, whatever the store does.
func serveBounded(t *testing.T, h http.Handler, r *http.Request, limit time.Duration) *http.Response {
	t.Helper()
	done := make(chan *http.Response, 1)
	go func() { done <- serve(h, r) }()
	select {
	case resp := <-done:
		return resp
	case <-time.After(limit):
		t.Fatalf("logout did not answer within %v", limit)
		return nil
	}
}

// TestRedisOutageAndRecovery kills a real redis-server in the middle of a run:
// logouts still answer, expire the cookies, follow the policy and report the
// failure; when Redis is back the same handler works again; no goroutine is
// left behind.
func TestRedisOutageAndRecovery(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		srv := startRedisServer(t)
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
		defer rdb.Close()
		var reported []error
		var mu sync.Mutex
		for _, failClosed := range []bool{false, true} {
			h, logs := newHandler(t, logout.NewRedisStore(rdb), func(c *logout.Config) {
				c.StoreTimeout = 300 * time.Millisecond
				c.ClientID = "skc_app"
				c.FailOnStoreError = failClosed
				c.OnError = func(_ *http.Request, err error) { mu.Lock(); reported = append(reported, err); mu.Unlock() }
			})
			cookies := signIn(t, h, testSession())
			srv.Stop()
			resp := serveBounded(t, h, logoutRequest(http.MethodPost, cookies), 3*time.Second)
			want, expired := http.StatusSeeOther, "0"
			if failClosed {
				want, expired = http.StatusServiceUnavailable, "" // nothing changed: try again
			}
			if resp.StatusCode != want || setCookies(resp)["__Host-session"]["max-age"] != expired {
				t.Errorf("FailOnStoreError=%v, Redis down: status %d, cookies %v; want %d, cookie Max-Age %q", failClosed, resp.StatusCode, resp.Header.Values("Set-Cookie"), want, expired)
			}
			if !strings.Contains(logs.String(), "level=ERROR") {
				t.Errorf("the outage was not logged: %q", logs.String())
			}
			srv.Start() // the same port: the app's client reconnects by itself
			again := signIn(t, h, testSession())
			if resp := serve(h, logoutRequest(http.MethodPost, again)); resp.StatusCode != http.StatusSeeOther {
				t.Errorf("after Redis returned: status %d, want 303", resp.StatusCode)
			}
			if _, err := currentSession(h, again); !errors.Is(err, logout.ErrNoSession) {
				t.Errorf("after Redis returned, logout did not end the session: %v", err)
			}
		}
		if len(reported) != 2 {
			t.Errorf("OnError reported %d failures, want 2: %v", len(reported), reported)
		}
	}()
	waitGoroutines(t, before)
}

// waitGoroutines fails if goroutines started during the test are still
// running once everything was closed.
func waitGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		now := runtime.NumGoroutine()
		if now <= before {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after:\n%s", before, now, buf[:runtime.Stack(buf, true)])
		}
		<-time.After(20 * time.Millisecond)
	}
}

// A provider whose keys endpoint fails: the back-channel receiver ends
// nothing and answers 503, so that the provider retries; once the endpoint is
// back and the refetch interval has passed, the retry is accepted.
func TestBackChannelKeysDown(t *testing.T) {
	e := newBCEnv(t, false)
	var keysDown atomic.Bool
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/keys" && keysDown.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		if r.URL.Path == "/.well-known/openid-configuration" {
			// The fake's document, moved onto this front server.
			resp, err := http.Get(e.fake.URL + r.URL.Path)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			w.Write([]byte(strings.ReplaceAll(string(b), e.fake.URL, "http://"+r.Host)))
			return
		}
		resp, err := http.Get(e.fake.URL + r.URL.Path)
		if err != nil {
			t.Error(err)
			return
		}
		defer resp.Body.Close()
		io.Copy(w, resp.Body)
	}))
	defer front.Close()
	keysDown.Store(true)
	bc, err := logout.NewBackChannelHandler(context.Background(), logout.BackChannelConfig{Issuer: front.URL, ClientID: bcClient, Store: e.store, Logger: newLogger(&logSink{})})
	if err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	logout.SetBackChannelClock(bc, clock.Now)
	s := testSession()
	s.Issuer, s.Subject, s.SessionID = front.URL, "usr_alice", "ses_1"
	session, err := e.store.Save(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	e.tokens["front"] = session
	c := e.claims()
	c["iss"] = front.URL
	tok := e.sign(t, c)
	post := func() *http.Response {
		r := httptest.NewRequest(http.MethodPost, "/backchannel-logout", strings.NewReader(form(tok)))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		bc.ServeHTTP(rec, r)
		return rec.Result()
	}
	checkUnavailable(t, post())
	keysDown.Store(false)
	checkUnavailable(t, post()) // too soon to fetch again
	if !e.alive(t, "front") {
		t.Fatal("a token that could not be verified ended a session")
	}
	clock.Advance(logout.KeyRefetchInterval)
	if resp := post(); resp.StatusCode != http.StatusOK {
		t.Fatalf("retry once the keys are back: status %d, want 200", resp.StatusCode)
	}
	if e.alive(t, "front") {
		t.Error("the session is alive after the retried logout")
	}
}

func TestProviderDownAtStartup(t *testing.T) {
	for name, handler := range map[string]http.HandlerFunc{
		"500":     func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) },
		"garbage": func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("\x00\x01garbage")) },
		"HTML":    func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>login</html>")) },
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(handler)
			defer srv.Close()
			_, err := logout.New(t.Context(), logout.Config{Store: newCookieStore(t), Issuer: srv.URL, PostLogoutRedirectURI: testPostLogout})
			if err == nil || !strings.Contains(err.Error(), "discovery") {
				t.Errorf("New: %v, want a discovery error", err)
			}
			_, err = logout.NewBackChannelHandler(context.Background(), logout.BackChannelConfig{Issuer: srv.URL, ClientID: bcClient, Store: newMiniStore(t)})
			if err == nil || !strings.HasPrefix(err.Error(), "logout: back-channel") {
				t.Errorf("NewBackChannelHandler: %v, want a back-channel start-up error", err)
			}
		})
	}
	// Nothing listening at all.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + l.Addr().String()
	l.Close()
	if _, err := logout.New(t.Context(), logout.Config{Store: newCookieStore(t), Issuer: dead, PostLogoutRedirectURI: testPostLogout}); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("New with the provider unreachable: %v, want connection refused", err)
	}
}
