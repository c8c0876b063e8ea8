// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/endsession/logout/scalekittest"
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
	badUser := filepath.Join(t.TempDir(), "user.json")
	os.WriteFile(badUser, []byte(`{"clients": [{"id": "skc_a"}], "users": [{"email": "a@example.com", "organization_id": "org_9"}]}`), 0o644)
	tests := []struct {
		name string
		args []string
		want string // in the message
	}{
		{"unknown flag", []string{"-client", "x"}, "flag provided but not defined"},
		{"no client", nil, "no client"},
		{"URI without client", []string{"-redirect-uri", "http://localhost/cb"}, "give -client-id"},
		{"relative URI", []string{"-client-id", "skc_1", "-redirect-uri", "/cb"}, "must be an absolute URI"},
		{"post-logout URI with query", []string{"-client-id", "skc_1", "-post-logout-uri", "http://localhost/out?x=1"}, "must have no query"},
		{"redirect URI with a fragment", []string{"-client-id", "skc_1", "-redirect-uri", "http://localhost/cb#x"}, "must have no fragment"},
		{"redirect URI too long", []string{"-client-id", "skc_1", "-redirect-uri", "http://localhost/" + strings.Repeat("a", 240)}, "at most 256"},
		{"wildcard under a top-level name", []string{"-client-id", "skc_1", "-redirect-uri", "http://*.localhost:3000/cb"}, "top-level domain"},
		{"wildcard in the path", []string{"-client-id", "skc_1", "-redirect-uri", "http://app.localhost:3000/*"}, "host name"},
		{"public client with a secret", []string{"-client-id", "skc_1", "-public", "-client-secret", "x"}, "a public client has no secret"},
		{"bad retry delays", []string{"-client-id", "skc_1", "-delivery-retry-delays", "soon"}, "-delivery-retry-delays"},
		{"bad duration", []string{"-client-id", "skc_1", "-idle-timeout", "soon"}, "invalid value"},
		{"negative duration", []string{"-client-id", "skc_1", "-absolute-timeout", "-1h"}, "negative"},
		{"bad hintless mode", []string{"-client-id", "skc_1", "-hintless-logout", "maybe"}, "refuse, end or redirect"},
		{"bad webhook secret", []string{"-client-id", "skc_1", "-webhook-secret", "hunter2"}, "whsec_"},
		{"bad address", []string{"-client-id", "skc_1", "-addr", "nowhere"}, "-addr"},
		{"missing config file", []string{"-config", "/nonexistent/config.json"}, "-config"},
		{"missing config file, old flag", []string{"-clients", "/nonexistent/clients.json"}, "-config"},
		{"user in an unknown organization", []string{"-config", badUser}, "unknown organization"},
		{"unknown field in clients file", []string{"-clients", bad}, "unknown field"},
		{"stray argument", []string{"-client-id", "skc_1", "serve"}, "unexpected argument"},
		{"upstream option without a domain", []string{"-client-id", "skc_1", "-upstream-forward-prompt"}, "need a domain"},
		{"upstream domain with an @", []string{"-client-id", "skc_1", "-upstream-domain", "@sso.example"}, "not an email domain"},
		{"upstream organization not an ID", []string{"-client-id", "skc_1", "-upstream-org", "acme"}, "org_ followed by digits"},
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

// upstreamLine is what the command printed about its upstream provider.
func upstreamLine(t *testing.T, s *started) string {
	t.Helper()
	for _, l := range s.lines {
		if strings.HasPrefix(l, "fakescalekit: upstream provider ") {
			return l
		}
	}
	t.Fatalf("printed %q, want a line about the upstream provider", s.lines)
	return ""
}

func TestUpstreamFlags(t *testing.T) {
	s := start(t, "-client-id", "skc_1", "-redirect-uri", "http://localhost:3000/cb",
		"-upstream-domain", "sso.example", "-upstream-domain", "corp.example", "-upstream-org", "org_42", "-upstream-forward-prompt")
	line := upstreamLine(t, s)
	want := "for sso.example, corp.example (organization org_42, connection conn_"
	if !strings.Contains(line, want) || !strings.HasSuffix(line, "prompt=login forwarded: yes; IdP logout: no") {
		t.Errorf("printed %q, want %q and the two options", line, want)
	}
	upURL, _, _ := strings.Cut(strings.TrimPrefix(line, "fakescalekit: upstream provider "), " ")
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	q := url.Values{"client_id": {"skc_1"}, "redirect_uri": {"http://localhost:3000/cb"}, "response_type": {"code"}, "scope": {"openid"},
		"login_hint": {"grace@corp.example"}, "prompt": {"login"}}
	resp, err := c.Get(s.issuer + "/oauth/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := resp.Location()
	if loc == nil || !strings.HasPrefix(loc.String(), upURL+"/authorize?") || loc.Query().Get("prompt") != "login" {
		t.Errorf("a user of corp.example went to %v, want %s/authorize with prompt=login", loc, upURL)
	}
	if !authorizes(t, s.issuer, "skc_1", "http://localhost:3000/cb") {
		t.Error("a user of another domain did not sign in directly")
	}
}

// upstreamFormAfterLogout signs grace in through the upstream of the
// command at issuer, logs out of the fake, and reports whether signing in
// again asks for the upstream's password.
func upstreamFormAfterLogout(t *testing.T, issuer string) bool {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		if r.URL.Host == "localhost:3000" { // the app, which is not running
			return http.ErrUseLastResponse
		}
		return nil
	}}
	get := func(u string) *http.Response {
		t.Helper()
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	authorize := issuer + "/oauth/authorize?" + url.Values{"client_id": {"skc_1"}, "redirect_uri": {"http://localhost:3000/cb"},
		"response_type": {"code"}, "scope": {"openid"}, "login_hint": {"grace@sso.example"}}.Encode()
	form := get(authorize)
	if form.StatusCode != http.StatusOK || form.Request.URL.Path != "/authorize" {
		t.Fatalf("first sign-in: %d at %s, want the upstream's form", form.StatusCode, form.Request.URL)
	}
	resp, err := c.PostForm(form.Request.URL.Scheme+"://"+form.Request.URL.Host+"/authorize",
		url.Values{"request": {form.Request.URL.RawQuery}, "email": {"grace@sso.example"}, "password": {"x"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "http://localhost:3000/cb?code=") {
		t.Fatalf("after the upstream's form: %d to %q, want the app's callback", resp.StatusCode, resp.Header.Get("Location"))
	}
	get(issuer + "/oidc/logout")
	again := get(authorize)
	return again.StatusCode == http.StatusOK && again.Request.URL.Path == "/authorize"
}

func TestUpstreamIDPLogoutFlag(t *testing.T) {
	tests := []struct {
		flags []string
		form  bool
	}{
		{nil, false},
		{[]string{"-upstream-idp-logout"}, true},
	}
	for _, tt := range tests {
		s := start(t, append([]string{"-client-id", "skc_1", "-redirect-uri", "http://localhost:3000/cb", "-upstream-domain", "sso.example"}, tt.flags...)...)
		if got := upstreamFormAfterLogout(t, s.issuer); got != tt.form {
			t.Errorf("%v: the upstream asked again after the logout: got %v, want %v", tt.flags, got, tt.form)
		}
		s.stop()
	}
}

// getInspection GETs an endpoint of the inspection API with a client's
// credentials, as a test in another language would with curl.
func getInspection(t *testing.T, issuer, path, id, secret string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, issuer+"/_fake/v1"+path, nil)
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode
}

// A public client registered with -public, with a native app's custom
// scheme, signs in with PKCE and redeems its code with its client_id and
// code_verifier alone.
func TestPublicClientFlag(t *testing.T) {
	s := start(t, "-client-id", "skc_app", "-public", "-redirect-uri", "myapp://callback")
	if !strings.Contains(strings.Join(s.lines, "\n"), "client skc_app, public (PKCE, no secret)") {
		t.Errorf("printed %q, want the public client", s.lines)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	const verifier = "a-verifier-of-forty-three-characters-or-more-xyz"
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"client_id": {"skc_app"}, "redirect_uri": {"myapp://callback"}, "response_type": {"code"}, "scope": {"openid"},
		"login_hint": {"ada@example.com"}, "state": {"st"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	resp, err := c.Get(s.issuer + "/oauth/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := resp.Location()
	if loc == nil || loc.Scheme != "myapp" || loc.Query().Get("code") == "" {
		t.Fatalf("authorize: %d to %v, want myapp://callback with a code", resp.StatusCode, loc)
	}
	resp, err = http.PostForm(s.issuer+"/oauth/token", url.Values{"grant_type": {"authorization_code"}, "client_id": {"skc_app"},
		"code": {loc.Query().Get("code")}, "redirect_uri": {"myapp://callback"}, "code_verifier": {verifier}})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		IDToken string `json:"id_token"`
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || tok.IDToken == "" {
		t.Errorf("code exchange with client_id and code_verifier: %d, want 200 with an ID token", resp.StatusCode)
	}
}

// A -config file preloads users and organizations and adds two upstream
// connections, one with IdP logout on; the inspection API shows them.
func TestConfigFileAndInspection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(path, []byte(`{
		"clients": [{"id": "skc_a", "secret": "a", "redirect_uris": ["http://localhost:3000/cb"]}],
		"organizations": [{"id": "org_42", "display_name": "Acme", "external_id": "acme"}],
		"users": [{"id": "usr_7", "email": "ada@example.com", "organization_id": "org_42", "roles": ["admin"], "metadata": {"plan": "pro"}}],
		"upstreams": [{"domains": ["slo.example"], "connection_id": "conn_1", "idp_logout_required": true},
		              {"domains": ["sso.example"], "connection_id": "conn_2"}]
	}`), 0o644)
	s := start(t, "-config", path)
	if !authorizes(t, s.issuer, "skc_a", "http://localhost:3000/cb") {
		t.Fatal("the file's client is not registered")
	}
	var users struct {
		Users []struct{ ID, Email, OrganizationID string }
	}
	if status := getInspection(t, s.issuer, "/users", "skc_a", "a", &users); status != 200 || len(users.Users) != 1 || users.Users[0].ID != "usr_7" {
		t.Errorf("/users: %d %+v, want the preloaded usr_7", status, users)
	}
	var sessions struct {
		Sessions []struct {
			UserID string `json:"user_id"`
		}
	}
	if status := getInspection(t, s.issuer, "/sessions", "skc_a", "a", &sessions); status != 200 || len(sessions.Sessions) != 1 || sessions.Sessions[0].UserID != "usr_7" {
		t.Errorf("/sessions: %d %+v, want usr_7's session", status, sessions)
	}
	var conns struct {
		Connections []struct {
			ID                string `json:"id"`
			IDPLogoutRequired bool   `json:"idp_logout_required"`
		}
	}
	getInspection(t, s.issuer, "/connections", "skc_a", "a", &conns)
	if len(conns.Connections) != 3 || conns.Connections[1].ID != "conn_1" || !conns.Connections[1].IDPLogoutRequired || conns.Connections[2].IDPLogoutRequired {
		t.Errorf("/connections: %+v, want the form's and the two upstreams, IdP logout on the first", conns)
	}
	if status := getInspection(t, s.issuer, "/users", "skc_a", "wrong", &users); status != http.StatusUnauthorized {
		t.Errorf("/users with a wrong secret: %d, want 401", status)
	}
	out := strings.Join(s.lines, "\n")
	if !strings.Contains(out, "connection conn_1); prompt=login forwarded: no; IdP logout: yes") || !strings.Contains(out, "inspection API (the fake's own, not Scalekit's) at "+s.issuer+"/_fake/v1") {
		t.Errorf("printed %q, want both connections and the inspection API", out)
	}
}

// Webhook options from the command line: lower-case status, no retry; the
// inspection API shows the delivery with its one answer.
func TestWebhookFlags(t *testing.T) {
	hooks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) }))
	defer hooks.Close()
	s := start(t, "-client-id", "skc_1", "-client-secret", "dev-secret", "-redirect-uri", "http://localhost:3000/cb",
		"-webhook-url", hooks.URL, "-webhook-lowercase-status", "-delivery-retry-delays", "none")
	if !authorizes(t, s.issuer, "skc_1", "http://localhost:3000/cb") {
		t.Fatal("no sign-in")
	}
	var sessions struct {
		Sessions []struct {
			UserID string `json:"user_id"`
		}
	}
	getInspection(t, s.issuer, "/sessions", "skc_1", "dev-secret", &sessions)
	resp, err := http.PostForm(s.issuer+"/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"skc_1"}, "client_secret": {"dev-secret"}})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	req, _ := http.NewRequest(http.MethodPost, s.issuer+"/api/v1/users/"+sessions.Sessions[0].UserID+"/sessions/revoke", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %v %v", resp, err)
	}
	resp.Body.Close()
	type delivery struct {
		Body     string
		Done     bool
		Attempts []struct{ Status int }
	}
	var ds struct{ Deliveries []delivery }
	for deadline := time.Now().Add(10 * time.Second); len(ds.Deliveries) == 0 || !ds.Deliveries[0].Done; { // it runs in the background
		if time.Now().After(deadline) {
			t.Fatalf("deliveries %+v, still not done", ds.Deliveries)
		}
		getInspection(t, s.issuer, "/deliveries", "skc_1", "dev-secret", &ds)
	}
	d := ds.Deliveries[0]
	if len(d.Attempts) != 1 || d.Attempts[0].Status != 500 || !strings.Contains(d.Body, `"status":"revoked"`) {
		t.Errorf("delivery %+v, want one attempt answered 500 and a lower-case status", d)
	}
}

// Each option for what Scalekit leaves open reaches the configuration, and
// is off without its flag.
func TestOptionFlags(t *testing.T) {
	tests := []struct {
		flag string
		set  func(scalekittest.Config) bool
	}{
		{"-webhook-any-2xx", func(c scalekittest.Config) bool { return c.WebhookAny2xx }},
		{"-no-idle-timeout", func(c scalekittest.Config) bool { return c.NoIdleTimeout }},
		{"-webhook-lowercase-status", func(c scalekittest.Config) bool { return c.WebhookLowerCaseStatus }},
		{"-accept-ended-hint", func(c scalekittest.Config) bool { return c.AcceptEndedSessionHint }},
		{"-revoke-ended-ok", func(c scalekittest.Config) bool { return c.RevokeEndedSessionSucceeds }},
		{"-refresh-reuse-revokes", func(c scalekittest.Config) bool { return c.RefreshReuseRevokesSession }},
	}
	for _, tt := range tests {
		base := []string{"-client-id", "skc_1"}
		without, err := parseFlags(base, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		with, err := parseFlags(append(base, tt.flag), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if tt.set(without) || !tt.set(with) {
			t.Errorf("%s: set without it %v, with it %v; want false, true", tt.flag, tt.set(without), tt.set(with))
		}
	}
}
