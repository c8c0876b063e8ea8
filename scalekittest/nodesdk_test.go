// SPDX-License-Identifier: Apache-2.0

//go:build !race

package scalekittest_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/endsession/logout/internal/testenv"
	"github.com/endsession/logout/scalekittest"
)

// TestNodeSDK runs an Express app that uses Scalekit's official Node SDK
// (@scalekit-sdk/node, pinned in testdata/sdkapp/package-lock.json) against
// the fake, and drives it as a browser would. Every SDK call the app makes
// is checked against what the fake did. It runs only with
// LOGOUT_TEST_NODE_SDK=1, and not under -race (nothing of Go's runs
// concurrently here that the other tests do not cover).
func TestNodeSDK(t *testing.T) {
	node, npm := testenv.Node(t)
	began := time.Now()
	dir := t.TempDir()
	for _, name := range []string{"package.json", "package-lock.json", "app.js"} {
		b, err := os.ReadFile(filepath.Join("testdata", "sdkapp", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	install := exec.Command(npm, "ci", "--no-audit", "--no-fund", "--loglevel=error", "--prefer-offline")
	install.Dir = dir
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("npm ci: %v\n%s", err, out)
	}
	installed := time.Since(began)

	port := testenv.FreePort(t)
	appURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	const clientID, secret, email = "skc_81234567890123456", "test-secret", "ada.lovelace@example.com"
	const publicID = "skc_81234567890123457"
	fake, err := scalekittest.New(scalekittest.Config{
		Clients: []scalekittest.Client{
			{ID: clientID, Secret: secret, RedirectURIs: []string{appURL + "/auth/callback"}, PostLogoutRedirectURIs: []string{appURL + "/login"}},
			{ID: publicID, RedirectURIs: []string{appURL + "/public/callback"}}, // a public client: no secret
		},
		WebhookURLs: []string{appURL + "/webhooks/scalekit"},
		Upstreams:   []scalekittest.UpstreamConfig{{Domains: []string{"sso.example"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	startApp(t, node, dir, []string{
		"PORT=" + strconv.Itoa(port), "APP_URL=" + appURL, "SCALEKIT_ENVIRONMENT_URL=" + fake.URL,
		"SCALEKIT_CLIENT_ID=" + clientID, "SCALEKIT_CLIENT_SECRET=" + secret, "SCALEKIT_WEBHOOK_SECRET=" + fake.WebhookSecret(),
		"SCALEKIT_PUBLIC_CLIENT_ID=" + publicID,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var table [][2]string
	row := func(call, result string) { table = append(table, [2]string{call, result}) }
	results := func() map[string]any { return getJSON(t, http.MethodGet, appURL+"/results", "") }

	// Sign in with PKCE: getAuthorizationUrl, authenticateWithCode,
	// validateToken, validateAccessToken.
	laptop := scalekittest.NewBrowser()
	if page := signInTo(t, ctx, fake, laptop, appURL+"/login", email); page["signedIn"] != true {
		t.Fatalf("after sign-in the app says %v", page)
	}
	user := fake.User(email)
	first := fake.ActiveSessions(user.ID)
	if len(first) != 1 {
		t.Fatalf("fake sessions %v after one sign-in", first)
	}
	sidLaptop := first[0]
	r := results()
	authURL := str(r, "getAuthorizationUrl", "url")
	if u, _ := url.Parse(authURL); !strings.HasPrefix(authURL, fake.URL+"/oauth/authorize?") || u.Query().Get("code_challenge") == "" || u.Query().Get("client_id") != clientID {
		t.Errorf("getAuthorizationUrl: %s", authURL)
	}
	row("getAuthorizationUrl (PKCE)", "URL on /oauth/authorize with client_id, state, code_challenge; the fake showed its form")
	auth := obj(r, "authenticateWithCode")
	if u := obj(auth, "user"); u["email"] != email || u["id"] != user.ID || u["givenName"] != "Ada" || u["familyName"] != "Lovelace" || u["name"] != "Ada Lovelace" ||
		auth["hasIdToken"] != true || auth["hasAccessToken"] != true || auth["hasRefreshToken"] != true || auth["expiresIn"] != 300.0 {
		t.Errorf("authenticateWithCode: %v", auth)
	}
	row("authenticateWithCode (with codeVerifier)", fmt.Sprintf("user %s (%s, Ada Lovelace), ID, access and refresh tokens, expiresIn 300", user.ID, email))
	if v := obj(r, "validateToken"); v["sid"] != sidLaptop || v["sub"] != user.ID || v["email"] != email {
		t.Errorf("validateToken: %v, want sid %s, sub %s", v, sidLaptop, user.ID)
	}
	row("validateToken (ID token, issuer + audience)", "claims with sub "+user.ID+", sid "+sidLaptop)
	if r["validateAccessToken"] != true {
		t.Errorf("validateAccessToken: %v, want true", r["validateAccessToken"])
	}
	row("validateAccessToken (fresh access token)", "true")

	// A second device, without PKCE.
	phone := scalekittest.NewBrowser()
	if page := signInTo(t, ctx, fake, phone, appURL+"/login?pkce=off", email); page["signedIn"] != true {
		t.Fatalf("second sign-in: %v", page)
	}
	r = results()
	sidPhone := str(r, "validateToken", "sid")
	if u, _ := url.Parse(str(r, "getAuthorizationUrl", "url")); u.Query().Has("code_challenge") || sidPhone == sidLaptop || !strings.HasPrefix(sidPhone, "ses_") {
		t.Errorf("sign-in without PKCE: URL %s, session %s", u, sidPhone)
	}
	row("getAuthorizationUrl + authenticateWithCode (no PKCE)", "signed in; a second session "+sidPhone)

	// prompt=none: the laptop's live session returns a code at once, no
	// form; a browser without one comes back to the callback with
	// login_required and its state, never seeing a page.
	resp, forms, err := fake.SignInForms(ctx, laptop, appURL+"/login?prompt=none", email)
	if err != nil {
		t.Fatal(err)
	}
	if page := decode(t, resp); page["signedIn"] != true || len(forms) != 0 || str(results(), "validateToken", "sid") != sidLaptop {
		t.Errorf("prompt=none with a session: signed in %v, forms %v; want the laptop's session, no form", page["signedIn"], forms)
	}
	row("getAuthorizationUrl (prompt: 'none') + authenticateWithCode, with a session", "signed in on "+sidLaptop+" without a form")
	resp, err = scalekittest.NewBrowser().Get(appURL + "/login?prompt=none")
	if err != nil {
		t.Fatal(err)
	}
	if got := decode(t, resp); resp.Request.URL.Path != "/auth/callback" || got["error"] != "login_required" || got["stateMatches"] != true || got["errorDescription"] == nil {
		t.Errorf("prompt=none without a session: the browser ended at %s with %v; want the callback with login_required and the state", resp.Request.URL, got)
	}
	row("getAuthorizationUrl (prompt: 'none'), no session", "callback with error=login_required, error_description and the state")

	// A public client: authenticateWithCode with the code verifier and no
	// secret, then refreshAccessToken with none either.
	const spaEmail = "alan.turing@example.com" // another user, so that Ada's sessions below stay hers
	pub := signInTo(t, ctx, fake, scalekittest.NewBrowser(), appURL+"/public/login", spaEmail)
	pubRefresh, _ := pub["refreshAccessToken"].(map[string]any)
	if pub["email"] != spaEmail || !strings.HasPrefix(fmt.Sprint(pub["sid"]), "ses_") || pub["hasRefreshToken"] != true ||
		pubRefresh["newAccessToken"] != true || pubRefresh["newRefreshToken"] != true {
		t.Errorf("public client: %v", pub)
	}
	row("authenticateWithCode + refreshAccessToken (public client, codeVerifier, no secret)", "signed in "+spaEmail+", tokens refreshed")

	// refreshAccessToken: new tokens, and the spent refresh token fails.
	ref := getJSONWith(t, laptop, http.MethodGet, appURL+"/auth/refresh", "")
	if ref["newAccessToken"] != true || ref["newRefreshToken"] != true || ref["newAccessTokenValid"] != true ||
		!strings.Contains(fmt.Sprint(ref["oldRefreshTokenAgain"]), "400") {
		t.Errorf("refreshAccessToken: %v", ref)
	}
	row("refreshAccessToken", "new access and refresh tokens (the new access token validates)")
	row("refreshAccessToken (the spent refresh token)", fmt.Sprint(ref["oldRefreshTokenAgain"]))

	other := scalekittest.NewServer()
	defer other.Close()
	forged, _ := other.Sign(map[string]any{"iss": fake.URL, "sub": user.ID, "client_id": clientID, "exp": time.Now().Add(time.Hour).Unix(), "scopes": []string{"openid"}}, "JWT")
	if v := getJSON(t, http.MethodPost, appURL+"/admin/validate-access-token", forged); v["valid"] != false {
		t.Errorf("validateAccessToken of a token signed by another key: %v, want false", v)
	}
	row("validateAccessToken (token signed by a key not in /keys)", "false")

	// The session API, over gRPC.
	got := getJSON(t, http.MethodGet, appURL+"/admin/sessions/"+sidLaptop, "")
	if got["sessionId"] != sidLaptop || got["userId"] != user.ID || got["status"] != "active" || got["createdAt"] == nil ||
		len(list(got, "authenticatedClients")) != 1 || obj(list(got, "authenticatedClients")[0].(map[string]any), "")["clientId"] != clientID {
		t.Errorf("session.getSession: %v", got)
	}
	if dev, _ := got["device"].(map[string]any); got["idleExpiresAt"] == nil || got["absoluteExpiresAt"] == nil || dev["location"] == nil {
		t.Errorf("session.getSession: idleExpiresAt %v, absoluteExpiresAt %v, device %v; want both times and a location", got["idleExpiresAt"], got["absoluteExpiresAt"], got["device"])
	}
	row("session.getSession", "status active, userId "+user.ID+", authenticatedClients ["+clientID+"], both expiry times, device.location")
	got = getJSON(t, http.MethodGet, appURL+"/admin/users/"+user.ID+"/sessions?status=active", "")
	if sessions := list(got, "sessions"); got["totalSize"] != 2.0 || len(sessions) != 2 {
		t.Errorf("session.getUserSessions: %v, want the two active sessions", got)
	}
	row("session.getUserSessions (filter status active)", "totalSize 2: both devices")
	// The reference's own Node sample sends status: ['ACTIVE'].
	got = getJSON(t, http.MethodGet, appURL+"/admin/users/"+user.ID+"/sessions?status=ACTIVE", "")
	if sessions := list(got, "sessions"); got["totalSize"] != 2.0 || len(sessions) != 2 {
		t.Errorf("session.getUserSessions with status ACTIVE: %v, want the two active sessions", got)
	}
	row("session.getUserSessions (filter status ACTIVE, as the reference's sample)", "totalSize 2: both devices")
	got = getJSON(t, http.MethodPost, appURL+"/admin/sessions/"+sidPhone+"/revoke", "")
	if rs := obj(got, "revokedSession"); rs["sessionId"] != sidPhone || rs["status"] != "revoked" || rs["expiredAt"] == nil || rs["logoutAt"] != nil {
		t.Errorf("session.revokeSession: %v, want expiredAt set and no logoutAt", got)
	}
	if ses, _ := fake.Session(sidPhone); ses.Status != scalekittest.StatusRevoked {
		t.Errorf("fake's session after revokeSession: %s", ses.Status)
	}
	row("session.revokeSession", "revokedSession "+sidPhone+", status revoked, expiredAt set, logoutAt unset")
	got = getJSON(t, http.MethodGet, appURL+"/admin/sessions/ses_1", "")
	if got["grpcStatus"] != 5.0 || got["errorCode"] != "NOT_FOUND" {
		t.Errorf("session.getSession of an unknown session: %v, want gRPC NotFound", got)
	}
	row("session.getSession (unknown ses_1)", fmt.Sprintf("error: %v (gRPC %v, %v)", got["error"], got["grpcStatus"], got["errorCode"]))

	// getLogoutUrl and the navigation: the fake ends its session, sends the
	// browser back to /login, which sends it to the fake, which shows the
	// form.
	resp, err = laptop.Get(appURL + "/logout")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if at := resp.Request.URL; resp.StatusCode != http.StatusOK || at.Path != "/oauth/authorize" || !strings.HasPrefix(at.String(), fake.URL) || !bytes.Contains(page, []byte(`id="signin-title"`)) {
		t.Errorf("after logout the browser is at %s (%d); want the fake's sign-in form", at, resp.StatusCode)
	}
	logoutURL := str(results(), "getLogoutUrl", "url")
	if u, _ := url.Parse(logoutURL); !strings.HasPrefix(logoutURL, fake.URL+"/oidc/logout?") || u.Query().Get("id_token_hint") == "" || u.Query().Get("post_logout_redirect_uri") != appURL+"/login" {
		t.Errorf("getLogoutUrl: %s", logoutURL)
	}
	if ses, _ := fake.Session(sidLaptop); ses.Status != scalekittest.StatusLogout {
		t.Errorf("fake's session after the logout navigation: %s, want logout", ses.Status)
	}
	lr := fake.LogoutRequests()
	if len(lr) != 1 || !lr[0].HadCookie || lr[0].EndedSession != sidLaptop || lr[0].RedirectedTo != appURL+"/login" {
		t.Errorf("the fake's record of the logout: %+v", lr)
	}
	if u, _ := url.Parse(appURL); len(laptop.Jar.Cookies(u)) > 1 { // authRequest from the new /login only
		t.Errorf("app cookies after logout: %v", laptop.Jar.Cookies(u))
	}
	row("getLogoutUrl + navigation", "fake ended "+sidLaptop+" (status logout), redirected to /login; the next sign-in showed the form")

	// revokeAllUserSessions touches only active sessions.
	tablet := scalekittest.NewBrowser()
	signInTo(t, ctx, fake, tablet, appURL+"/login", email)
	sidTablet := str(results(), "validateToken", "sid")
	got = getJSON(t, http.MethodPost, appURL+"/admin/users/"+user.ID+"/revoke", "")
	if rs := list(got, "revokedSessions"); got["totalRevoked"] != 1.0 || len(rs) != 1 || rs[0].(map[string]any)["sessionId"] != sidTablet {
		t.Errorf("session.revokeAllUserSessions: %v, want only %s", got, sidTablet)
	}
	row("session.revokeAllUserSessions", "totalRevoked 1: only the active "+sidTablet)

	// verifyWebhookPayload on the user.logout events the fake sent: one per
	// ended session.
	if err := fake.WaitDeliveries(ctx); err != nil {
		t.Fatal(err)
	}
	hooks := list(results(), "webhooks")
	want := map[string]string{sidPhone: "REVOKED", sidLaptop: "LOGOUT", sidTablet: "REVOKED"}
	for _, h := range hooks {
		h := h.(map[string]any)
		ses, u := obj(h, "session"), obj(h, "user")
		status := want[fmt.Sprint(ses["session_id"])]
		profile := obj(u, "user_profile")
		switch {
		case h["valid"] != true || h["type"] != "user.logout" || h["displayName"] != "User Logout" || status != ses["status"]:
			t.Errorf("webhook %v", h)
		case (status == "LOGOUT") != (ses["logout_at"] != nil) || (status == "LOGOUT") == (ses["expired_at"] != nil):
			t.Errorf("webhook of a %s session: logout_at %v, expired_at %v", status, ses["logout_at"], ses["expired_at"])
		case u["id"] != user.ID || u["email"] != email || !strings.HasPrefix(fmt.Sprint(profile["id"]), "usp_") || ses["device"] == nil:
			t.Errorf("webhook's user %v, session %v", u, ses)
		}
	}
	for _, d := range fake.Deliveries() {
		if !d.Delivered || d.Attempts != 1 || d.LastStatus != http.StatusCreated {
			t.Errorf("delivery %+v, want delivered at once with 201", d)
		}
	}
	if len(hooks) != 3 {
		t.Errorf("%d webhooks reached the app, want 3", len(hooks))
	}
	row("verifyWebhookPayload (3 user.logout events from the fake)", "true for each: REVOKED and LOGOUT as the reference's example spells them, expired_at or logout_at, data.user with its usp_ profile")
	if status := postForgedWebhook(t, appURL+"/webhooks/scalekit"); status != http.StatusBadRequest {
		t.Errorf("a webhook signed with another secret: app answered %d, want 400", status)
	}
	if h := list(results(), "webhooks"); len(h) != 4 || h[3].(map[string]any)["valid"] != false {
		t.Errorf("verifyWebhookPayload of a forged webhook: %v", h)
	}
	row("verifyWebhookPayload (signed with another secret)", "false (WebhookVerificationError)")

	// getAuthorizationUrl's routing options send a user of sso.example to
	// the upstream provider; prompt=login, not forwarded, gets the fake's
	// form and the upstream passes through on its session.
	up := fake.Upstreams()[0]
	sso := scalekittest.NewBrowser()
	routes := []struct {
		browser *http.Client
		query   string
		params  string // what the SDK puts in the URL, among the rest
		forms   []scalekittest.Form
	}{
		{sso, "domainHint=sso.example", "domain_hint=sso.example&domain=sso.example", []scalekittest.Form{scalekittest.UpstreamForm}},
		{sso, "organizationId=" + up.OrganizationID + "&prompt=login", "organization_id=" + up.OrganizationID + "&prompt=login", []scalekittest.Form{scalekittest.ScalekitForm}},
		{scalekittest.NewBrowser(), "connectionId=" + up.ConnectionID, "connection_id=" + up.ConnectionID, []scalekittest.Form{scalekittest.UpstreamForm}},
		{scalekittest.NewBrowser(), "loginHint=grace%40sso.example", "login_hint=grace%40sso.example", []scalekittest.Form{scalekittest.UpstreamForm}},
	}
	for _, r := range routes {
		resp, forms, err := fake.SignInForms(ctx, r.browser, appURL+"/login?"+r.query, "grace@sso.example")
		if err != nil {
			t.Fatalf("%s: %v", r.query, err)
		}
		page := decode(t, resp)
		authURL := str(results(), "getAuthorizationUrl", "url")
		a := fake.Authorizations()[len(fake.Authorizations())-1]
		sent, _ := url.Parse(authURL)
		want, _ := url.ParseQuery(r.params)
		for k := range want {
			if got := sent.Query().Get(k); got != want.Get(k) {
				t.Errorf("%s: the SDK sent %s=%q, want %q", r.query, k, got, want.Get(k))
			}
		}
		if page["signedIn"] != true || !slices.Equal(forms, r.forms) || !a.Upstream {
			t.Errorf("%s: signed in %v, forms %v, upstream %v; want %v through the upstream", r.query, page["signedIn"], forms, a.Upstream, r.forms)
		}
		row("getAuthorizationUrl ("+r.query+")", fmt.Sprintf("%s in the URL; forms %v, through the upstream (routed by %s)", r.params, forms, a.RoutedBy))
	}

	t.Logf("Node SDK conformance, @scalekit-sdk/node 2.11.0 against scalekittest (npm ci %v, whole test %v):", installed.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	t.Log("| SDK call | result |")
	t.Log("|---|---|")
	for _, r := range table {
		t.Logf("| %s | %s |", r[0], r[1])
	}
}

// startApp runs app.js and waits until it listens.
func startApp(t *testing.T, node, dir string, env []string) {
	t.Helper()
	cmd := exec.Command(node, "app.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("app.js stderr:\n%s", stderr.String())
		}
	})
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && !strings.HasPrefix(line, "listening on ") {
			err = fmt.Errorf("unexpected first line %q", line)
		}
		ready <- err
		io.Copy(io.Discard, stdout)
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("app.js did not start: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("app.js did not start within 30s\n%s", stderr.String())
	}
}

func signInTo(t *testing.T, ctx context.Context, fake *scalekittest.Server, browser *http.Client, loginURL, email string) map[string]any {
	t.Helper()
	resp, err := fake.SignIn(ctx, browser, loginURL, email)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, resp)
}

func getJSON(t *testing.T, method, target, body string) map[string]any {
	t.Helper()
	return getJSONWith(t, http.DefaultClient, method, target, body)
}

func getJSONWith(t *testing.T, c *http.Client, method, target, body string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(method, target, strings.NewReader(body))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, resp)
}

func decode(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s %s: status %d, not JSON: %.300s", resp.Request.Method, resp.Request.URL, resp.StatusCode, b)
	}
	return out
}

// obj returns m[key] as an object (m itself for ""); list, as an array.
func obj(m map[string]any, key string) map[string]any {
	if key == "" {
		return m
	}
	v, _ := m[key].(map[string]any)
	return v
}

func list(m map[string]any, key string) []any {
	v, _ := m[key].([]any)
	return v
}

func str(m map[string]any, key, field string) string {
	v, _ := obj(m, key)[field].(string)
	return v
}

// postForgedWebhook sends a well-formed user.logout event signed with a
// secret that is not the fake's.
func postForgedWebhook(t *testing.T, target string) int {
	t.Helper()
	body := `{"id":"evt_1","type":"user.logout","data":{}}`
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte("not-the-secret"))
	mac.Write([]byte("evt_1." + ts + "." + body))
	req, _ := http.NewRequest(http.MethodPost, target, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", "evt_1")
	req.Header.Set("webhook-timestamp", ts)
	req.Header.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
