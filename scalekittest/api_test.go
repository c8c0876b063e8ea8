// SPDX-License-Identifier: Apache-2.0

package scalekittest_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/endsession/logout/scalekittest"
)

func apiToken(t testing.TB, s *scalekittest.Server) string {
	t.Helper()
	tok := postToken(t, s, url.Values{"grant_type": {"client_credentials"}})
	if tok.status != http.StatusOK || tok.AccessToken == "" {
		t.Fatalf("client_credentials: %d %q", tok.status, tok.Error)
	}
	return tok.AccessToken
}

// rest calls the session API and decodes its JSON answer.
func rest(t testing.TB, s *scalekittest.Server, token, method, path string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, s.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.StatusCode, out
}

func TestSessionAPIREST(t *testing.T) {
	s := newServer(t, scalekittest.Config{})
	token := apiToken(t, s)
	_, a := signIn(t, s, "ada@example.com")
	_, b := signIn(t, s, "ada@example.com")
	_, c := signIn(t, s, "ada@example.com")
	user := claimsOf(t, a.IDToken)["sub"].(string)
	sidA, sidB, sidC := claimsOf(t, a.IDToken)["sid"].(string), claimsOf(t, b.IDToken)["sid"].(string), claimsOf(t, c.IDToken)["sid"].(string)

	status, got := rest(t, s, token, "GET", "/api/v1/sessions/"+sidA)
	if status != 200 || got["session_id"] != sidA || got["user_id"] != user || got["status"] != "active" || got["logout_at"] != nil {
		t.Fatalf("get: %d %v", status, got)
	}
	if clients := got["authenticated_clients"].([]any); len(clients) != 1 || clients[0].(map[string]any)["client_id"] != "skc_1" {
		t.Errorf("authenticated_clients %v", clients)
	}
	// The default policy gives every session both expiry times, and the
	// device a location object (empty: the fake has no geolocation).
	if loc, ok := got["device"].(map[string]any)["location"].(map[string]any); got["idle_expires_at"] == nil || got["absolute_expires_at"] == nil || !ok || loc["city"] != "" {
		t.Errorf("idle_expires_at %v, absolute_expires_at %v, device %v; want both times and a location", got["idle_expires_at"], got["absolute_expires_at"], got["device"])
	}

	status, got = rest(t, s, token, "POST", "/api/v1/sessions/"+sidB+"/revoke")
	revoked := got["revoked_session"].(map[string]any)
	// An administrator's revocation sets expired_at and leaves logout_at
	// null (openapi/scalekit.yaml, sessionsRevokedSessionDetails).
	if status != 200 || revoked["session_id"] != sidB || revoked["status"] != "revoked" || revoked["expired_at"] == nil || revoked["logout_at"] != nil {
		t.Fatalf("revoke: %d %v", status, got)
	}
	if _, got := rest(t, s, token, "GET", "/api/v1/sessions/"+sidB); got["expired_at"] != revoked["expired_at"] || got["logout_at"] != nil {
		t.Errorf("get after the revocation: %v; want the same expired_at and no logout_at", got)
	}

	status, got = rest(t, s, token, "GET", "/api/v1/users/"+user+"/sessions?page_size=2")
	page := got["sessions"].([]any)
	if status != 200 || len(page) != 2 || got["total_size"] != 3.0 || got["next_page_token"] == "" {
		t.Fatalf("list page 1: %d %v", status, got)
	}
	if page[0].(map[string]any)["session_id"] != sidC {
		t.Errorf("first listed %v, want the newest, %s", page[0].(map[string]any)["session_id"], sidC)
	}
	_, got = rest(t, s, token, "GET", "/api/v1/users/"+user+"/sessions?page_size=2&page_token="+got["next_page_token"].(string))
	if page := got["sessions"].([]any); len(page) != 1 || got["next_page_token"] != "" || got["prev_page_token"] == "" {
		t.Errorf("list page 2: %v", got)
	}
	_, got = rest(t, s, token, "GET", "/api/v1/users/"+user+"/sessions?filter.status=revoked&filter.status=logout")
	if page := got["sessions"].([]any); len(page) != 1 || page[0].(map[string]any)["session_id"] != sidB {
		t.Errorf("filter.status=revoked: %v", got)
	}
	future := url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339))
	if _, got = rest(t, s, token, "GET", "/api/v1/users/"+user+"/sessions?filter.start_time="+future); got["total_size"] != 0.0 {
		t.Errorf("filter.start_time in the future: %v", got)
	}
	// Both ends of the time filter are inclusive: a session created at
	// end_time is in.
	ses, _ := s.Session(sidA)
	start := url.QueryEscape(ses.CreatedAt.Add(-time.Hour).Format(time.RFC3339Nano))
	end := url.QueryEscape(ses.CreatedAt.Format(time.RFC3339Nano))
	_, got = rest(t, s, token, "GET", "/api/v1/users/"+user+"/sessions?filter.start_time="+start+"&filter.end_time="+end)
	if page := got["sessions"].([]any); got["total_size"] != 1.0 || page[0].(map[string]any)["session_id"] != sidA {
		t.Errorf("filter.end_time at %s's creation: %v; want it alone", sidA, got)
	}

	status, got = rest(t, s, token, "POST", "/api/v1/users/"+user+"/sessions/revoke")
	if list := got["revoked_sessions"].([]any); status != 200 || got["total_revoked"] != 2.0 || len(list) != 2 {
		t.Errorf("revoke all: %d %v; want the two active sessions", status, got)
	}
	if n := len(s.ActiveSessions(user)); n != 0 {
		t.Errorf("%d sessions active after revoking all", n)
	}
}

func TestSessionAPIErrors(t *testing.T) {
	s := newServer(t, scalekittest.Config{})
	token := apiToken(t, s)
	_, tok := signIn(t, s, "ada@example.com")
	sid := claimsOf(t, tok.IDToken)["sid"].(string)
	s.RevokeSession(sid)
	tests := []struct {
		name, token, method, path string
		status, code              int
	}{
		{"no token", "", "GET", "/api/v1/sessions/" + sid, 401, 16},
		{"a user's access token", tok.AccessToken, "GET", "/api/v1/sessions/" + sid, 401, 16},
		{"unknown session", token, "GET", "/api/v1/sessions/ses_123", 404, 5},
		{"malformed session ID", token, "GET", "/api/v1/sessions/abc", 400, 3},
		{"revoke unknown session", token, "POST", "/api/v1/sessions/ses_123/revoke", 404, 5},
		{"revoke ended session", token, "POST", "/api/v1/sessions/" + sid + "/revoke", 400, 9},
		{"unknown user", token, "GET", "/api/v1/users/usr_123/sessions", 404, 5},
		{"unknown status filter", token, "GET", "/api/v1/users/" + claimsOf(t, tok.IDToken)["sub"].(string) + "/sessions?filter.status=gone", 400, 3},
		{"bad page token", token, "GET", "/api/v1/users/" + claimsOf(t, tok.IDToken)["sub"].(string) + "/sessions?page_token=%25", 400, 3},
	}
	for _, tt := range tests {
		status, got := rest(t, s, tt.token, tt.method, tt.path)
		if status != tt.status || got["code"] != float64(tt.code) || got["message"] == "" {
			t.Errorf("%s: got %d %v, want %d with code %d", tt.name, status, got, tt.status, tt.code)
		}
	}
}

func TestRevokeEndedSessionSucceedsOption(t *testing.T) {
	s := newServer(t, scalekittest.Config{RevokeEndedSessionSucceeds: true})
	c, tok := signIn(t, s, "ada@example.com")
	sid := claimsOf(t, tok.IDToken)["sid"].(string)
	logout(t, s, c, url.Values{"id_token_hint": {tok.IDToken}})
	status, got := rest(t, s, apiToken(t, s), "POST", "/api/v1/sessions/"+sid+"/revoke")
	if revoked, _ := got["revoked_session"].(map[string]any); status != 200 || revoked["status"] != "logout" {
		t.Errorf("revoking a logged-out session: %d %v; want 200 and the session unchanged (logout)", status, got)
	}
}

// grpcCall makes a unary gRPC call over HTTP/2 without TLS and returns the
// reply message and the grpc-status.
func grpcCall(t testing.TB, s *scalekittest.Server, token, method string, msg []byte) ([]byte, string) {
	t.Helper()
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	c := &http.Client{Transport: &http.Transport{Protocols: &protocols}}
	frame := binary.BigEndian.AppendUint32([]byte{0}, uint32(len(msg)))
	req, _ := http.NewRequest("POST", s.URL+"/scalekit.v1.sessions.SessionService/"+method, bytes.NewReader(append(frame, msg...)))
	req.Header.Set("Content-Type", "application/grpc+proto")
	req.Header.Set("TE", "trailers")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
		t.Fatalf("%s: %s %d", method, resp.Proto, resp.StatusCode)
	}
	status := resp.Trailer.Get("Grpc-Status")
	if status == "" {
		status = resp.Header.Get("Grpc-Status") // trailers-only
	}
	if len(body) < 5 {
		return nil, status
	}
	return body[5:], status
}

// pbString is a protobuf string field, for building requests by hand.
func pbString(num int, v string) []byte {
	b := binary.AppendUvarint(nil, uint64(num)<<3|2)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func TestSessionAPIGRPC(t *testing.T) {
	s := newServer(t, scalekittest.Config{})
	token := apiToken(t, s)
	_, tok := signIn(t, s, "ada@example.com")
	sid, user := claimsOf(t, tok.IDToken)["sid"].(string), claimsOf(t, tok.IDToken)["sub"].(string)
	tests := []struct {
		name, token, method string
		msg                 []byte
		status              string
		contains            []string // strings the reply must carry
	}{
		{"get", token, "GetSession", pbString(1, sid), "0", []string{sid, user, "active", "skc_1"}},
		{"list", token, "GetUserSessions", pbString(1, user), "0", []string{sid, "active"}},
		{"list filtered out", token, "GetUserSessions", append(pbString(1, user), pbString(4, string(pbString(1, "logout")))...), "0", nil},
		{"no token", "", "GetSession", pbString(1, sid), "16", nil},
		{"unknown session", token, "GetSession", pbString(1, "ses_1"), "5", nil},
		{"malformed ID", token, "GetSession", pbString(1, "nope"), "3", nil},
		{"unknown method", token, "DeleteSession", pbString(1, sid), "12", nil},
		{"revoke", token, "RevokeSession", pbString(1, sid), "0", []string{sid, "revoked"}},
		{"revoke again", token, "RevokeSession", pbString(1, sid), "9", nil},
		{"revoke all, none left", token, "RevokeAllUserSessions", pbString(1, user), "0", nil},
	}
	for _, tt := range tests {
		reply, status := grpcCall(t, s, tt.token, tt.method, tt.msg)
		if status != tt.status {
			t.Errorf("%s: grpc-status %s, want %s", tt.name, status, tt.status)
		}
		for _, want := range tt.contains {
			if !strings.Contains(string(reply), want) {
				t.Errorf("%s: reply lacks %q", tt.name, want)
			}
		}
		if tt.contains == nil && len(reply) > 0 && tt.name == "list filtered out" {
			t.Errorf("%s: reply %q, want no sessions", tt.name, reply)
		}
	}
	if ses, _ := s.Session(sid); ses.Status != scalekittest.StatusRevoked {
		t.Errorf("status %s after RevokeSession over gRPC", ses.Status)
	}
}

// The status filter takes the schema's lower case and the upper case the
// reference's code samples send, over REST and gRPC alike; a status that is
// none of the four is still refused.
func TestStatusFilterIgnoresCase(t *testing.T) {
	s := newServer(t, scalekittest.Config{})
	token := apiToken(t, s)
	_, live := signIn(t, s, "ada@example.com")
	_, ended := signIn(t, s, "ada@example.com")
	user, sidLive, sidEnded := claimsOf(t, live.IDToken)["sub"].(string), claimsOf(t, live.IDToken)["sid"].(string), claimsOf(t, ended.IDToken)["sid"].(string)
	if _, err := s.RevokeSession(sidEnded); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		filter string
		want   string // the session listed, or "" for an error
	}{
		{"active", sidLive},
		{"ACTIVE", sidLive},
		{"Active", sidLive},
		{"REVOKED", sidEnded},
		{"ACTIVE_", ""},
	}
	for _, tt := range tests {
		status, got := rest(t, s, token, "GET", "/api/v1/users/"+user+"/sessions?filter.status="+tt.filter)
		if tt.want == "" {
			if status != http.StatusBadRequest {
				t.Errorf("REST filter.status=%s: %d %v, want 400", tt.filter, status, got)
			}
		} else if page, _ := got["sessions"].([]any); status != 200 || len(page) != 1 || page[0].(map[string]any)["session_id"] != tt.want {
			t.Errorf("REST filter.status=%s: %d %v, want %s alone", tt.filter, status, got, tt.want)
		}
		reply, code := grpcCall(t, s, token, "GetUserSessions", append(pbString(1, user), pbString(4, string(pbString(1, tt.filter)))...))
		switch {
		case tt.want == "" && code != "3":
			t.Errorf("gRPC filter status %s: grpc-status %s, want 3", tt.filter, code)
		case tt.want != "" && (code != "0" || !strings.Contains(string(reply), tt.want)):
			t.Errorf("gRPC filter status %s: grpc-status %s, reply without %s", tt.filter, code, tt.want)
		}
	}
}
