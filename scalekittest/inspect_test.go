// SPDX-License-Identifier: Apache-2.0

package scalekittest_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/endsession/logout/scalekittest"
)

// inspect GETs an inspection endpoint with the credentials given (none when
// id is "") and decodes the JSON answer.
func inspect(t *testing.T, s *scalekittest.Server, path, id, secret, bearer string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.URL+scalekittest.InspectionPath+path, nil)
	switch {
	case bearer != "":
		req.Header.Set("Authorization", "Bearer "+bearer)
	case id != "":
		req.SetBasicAuth(id, secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("X-Scalekittest") != "inspection" {
		t.Errorf("%s: no X-Scalekittest: inspection header", path)
	}
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return resp.StatusCode, out
}

// items is the list an inspection answer holds under key, each an object.
func items(t *testing.T, m map[string]any, key string) []map[string]any {
	t.Helper()
	list, ok := m[key].([]any)
	if !ok {
		t.Fatalf("no list %s in %v", key, m)
	}
	out := make([]map[string]any, len(list))
	for i, v := range list {
		out[i] = v.(map[string]any)
	}
	return out
}

// The inspection API shows, as JSON, what the Go helpers show: sessions
// with their state and upstream session, users and organizations as
// preloaded, logout requests, authorizations with their forms, deliveries
// with each attempt's answer. It answers only a registered client's
// credentials, and shows no token.
func TestInspectionAPI(t *testing.T) {
	rc := newReceiver(t)
	rc.failNext("/hook", 1)
	s := newServer(t, scalekittest.Config{
		WebhookURLs:         []string{rc.URL + "/hook"},
		DeliveryRetryDelays: []time.Duration{time.Millisecond},
		Organizations:       []scalekittest.Organization{{ID: "org_42", DisplayName: "Acme", ExternalID: "acme"}},
		Users:               []scalekittest.User{{ID: "usr_7", Email: "ada@example.com", OrganizationID: "org_42", Roles: []string{"admin"}}},
		Upstreams:           []scalekittest.UpstreamConfig{{Domains: []string{"sso.example"}, IDPLogoutRequired: true}},
	})
	if err := s.AddClient(scalekittest.Client{ID: "skc_spa", RedirectURIs: []string{callback}}); err != nil {
		t.Fatal(err)
	}
	app := newApp(t, s, "skc_app")
	up := s.Upstreams()[0]

	// Ada signs in at the environment and is revoked; Grace signs in
	// through the upstream and logs out, which goes through its logout.
	sidAda := signInBody(t, s, scalekittest.NewBrowser(), app.URL+"/login", "ada@example.com")
	if _, err := s.RevokeSession(sidAda); err != nil {
		t.Fatal(err)
	}
	browser := scalekittest.NewBrowser()
	sidGrace := signInBody(t, s, browser, app.URL+"/login?login_hint=grace%40sso.example", "grace@sso.example")
	_, tok := signIn(t, s, "alan@example.com")
	resp, err := browser.Get(s.URL + "/oidc/logout?" + url.Values{"id_token_hint": {tok.IDToken}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	settle(t, s)

	for _, tt := range []struct {
		name, id, secret string
		status           int
	}{
		{"no credentials", "", "", 401},
		{"wrong secret", "skc_1", "nope", 401},
		{"a public client", "skc_spa", "", 401},
		{"a client's credentials", "skc_1", "secret", 200},
	} {
		if status, _ := inspect(t, s, "/sessions", tt.id, tt.secret, ""); status != tt.status {
			t.Errorf("%s: %d, want %d", tt.name, status, tt.status)
		}
	}
	if status, _ := inspect(t, s, "/sessions", "", "", apiToken(t, s)); status != 200 {
		t.Errorf("a client_credentials token: %d, want 200", status)
	}
	get := func(path string) map[string]any {
		t.Helper()
		status, got := inspect(t, s, path, "skc_1", "secret", "")
		if status != 200 {
			t.Fatalf("%s: %d %v", path, status, got)
		}
		return got
	}

	sessions := map[string]map[string]any{}
	for _, ses := range items(t, get("/sessions"), "sessions") {
		sessions[ses["session_id"].(string)] = ses
	}
	ada, grace := sessions[sidAda], sessions[sidGrace]
	switch {
	case ada["status"] != "revoked" || ada["expired_at"] == nil || ada["logout_at"] != nil || ada["user_id"] != "usr_7" || ada["organization_id"] != "org_42":
		t.Errorf("Ada's session %v", ada)
	case grace["status"] != "logout" || grace["logout_at"] == nil || grace["connection_id"] != up.ConnectionID || grace["email"] != "grace@sso.example":
		t.Errorf("Grace's session %v", grace)
	case grace["upstream"] == nil || grace["upstream"].(map[string]any)["active"] != false:
		t.Errorf("Grace's upstream session %v, want ended by the IdP logout", grace["upstream"])
	}
	if one := get("/sessions/" + sidAda); one["session_id"] != sidAda {
		t.Errorf("/sessions/%s: %v", sidAda, one)
	}
	if byEmail := items(t, get("/sessions?email=grace%40sso.example"), "sessions"); len(byEmail) != 1 || byEmail[0]["session_id"] != sidGrace {
		t.Errorf("sessions by email: %v", byEmail)
	}
	if status, _ := inspect(t, s, "/sessions/ses_1", "skc_1", "secret", ""); status != 404 {
		t.Errorf("an unknown session: %d, want 404", status)
	}

	users := map[string]map[string]any{}
	for _, u := range items(t, get("/users"), "users") {
		users[u["email"].(string)] = u
	}
	if u := users["ada@example.com"]; u["id"] != "usr_7" || u["roles"].([]any)[0] != "admin" || u["last_login_time"] == nil {
		t.Errorf("Ada, preloaded: %v", u)
	}
	if u := users["grace@sso.example"]; u["organization_id"] != up.OrganizationID {
		t.Errorf("Grace, created at sign-in: %v, want in %s", u, up.OrganizationID)
	}
	orgs := items(t, get("/organizations"), "organizations")
	if !strings.Contains(jsonOf(t, orgs), `{"default":false,"display_name":"Acme","external_id":"acme","id":"org_42"}`) || len(orgs) != 3 {
		t.Errorf("organizations %v, want the default one, Acme and the upstream's", orgs)
	}
	conns := items(t, get("/connections"), "connections")
	if len(conns) != 2 || conns[1]["id"] != up.ConnectionID || conns[1]["idp_logout_required"] != true || len(conns[1]["sessions"].([]any)) != 1 {
		t.Errorf("connections %v", conns)
	}

	logouts := items(t, get("/logout-requests"), "logout_requests")
	if len(logouts) != 1 || logouts[0]["idp_logout"] != up.ConnectionID || logouts[0]["idp_logout_returned"] != true {
		t.Errorf("logout requests %v", logouts)
	}
	if hint := logouts[0]["params"].(map[string]any)["id_token_hint"].([]any)[0]; hint != "[redacted]" {
		t.Errorf("id_token_hint shown as %v, want [redacted]", hint)
	}
	authzs := items(t, get("/authorizations"), "authorizations")
	var forms []string
	for _, a := range authzs {
		forms = append(forms, jsonOf(t, a["forms"]))
	}
	if len(authzs) != 3 || forms[0] != `["scalekit"]` || forms[1] != `["upstream"]` || authzs[1]["connection_id"] != up.ConnectionID {
		t.Errorf("authorizations %v (forms %v)", authzs, forms)
	}
	deliveries := items(t, get("/deliveries"), "deliveries")
	var webhook map[string]any
	for _, d := range deliveries {
		if d["kind"] == "webhook" && d["session_id"] == sidAda {
			webhook = d
		}
		if d["kind"] == "back-channel" && d["body"] != nil {
			t.Errorf("a back-channel delivery shows its body: %v", d)
		}
	}
	attempts, _ := webhook["attempts"].([]any)
	if webhook["delivered"] != true || len(attempts) != 2 || attempts[0].(map[string]any)["status"] != 503.0 ||
		attempts[1].(map[string]any)["status"] != 200.0 || !strings.Contains(webhook["body"].(string), sidAda) {
		t.Errorf("Ada's webhook %v, want a 503 then a 200", webhook)
	}
	if index := get(""); !strings.Contains(index["about"].(string), "no such endpoints") {
		t.Errorf("index %v", index)
	}

	// Read-only.
	req, _ := http.NewRequest(http.MethodPost, s.URL+scalekittest.InspectionPath+"/sessions", nil)
	req.SetBasicAuth("skc_1", "secret")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %v %v, want 405", resp.StatusCode, err)
	} else {
		resp.Body.Close()
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
