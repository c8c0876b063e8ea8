// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/endsession/logout"
	"github.com/endsession/logout/internal/testenv"
	"github.com/endsession/logout/scalekittest"
)

// listedSession is one row of the card's list of app sessions, as a page
// shows it.
type listedSession struct {
	Handle, Device string
	Current        bool
}

var appSessionRow = regexp.MustCompile(`<tr data-handle="([0-9a-f]+)" data-current="(true|false)"><td>([^<]*)`)

// listedSessions reads the card's list of app sessions from a page.
func listedSessions(page string) []listedSession {
	var out []listedSession
	for _, m := range appSessionRow.FindAllStringSubmatch(page, -1) {
		out = append(out, listedSession{Handle: m[1], Current: m[2] == "true", Device: strings.TrimSpace(html.UnescapeString(m[3]))})
	}
	return out
}

// currentHandle is the handle of the page's own session in its list.
func currentHandle(t *testing.T, page string) string {
	t.Helper()
	for _, s := range listedSessions(page) {
		if s.Current {
			return s.Handle
		}
	}
	t.Fatalf("no session of the list is this device's: %v", listedSessions(page))
	return ""
}

// postForm POSTs form fields to u from c, as the page's forms do.
func postForm(t *testing.T, c *http.Client, u string, form url.Values, header ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	noteResponse(resp)
	resp.Body.Close()
	return resp
}

// endingsOf is what the demo's OnSessionEnd hook heard of the user subject
// ("": of anyone), as reason:handle.
func endingsOf(d *demo, subject string) []string {
	var out []string
	for _, e := range d.ends.endings() {
		if subject == "" || e.Subject == subject {
			out = append(out, string(e.Reason)+":"+e.Handle)
		}
	}
	return out
}

// The demo's active-sessions endpoints on a real redis-server, from three
// clients signed in as one user and one signed in as another: what the
// list, ending one session and ending the others each cost in Redis
// commands, and what each ends. The provider does not notify the app here,
// so that nothing but the request reaches Redis while it is counted.
func TestDemoSessionsRedisCommands(t *testing.T) {
	srv := testenv.StartRedisServer(t)
	counter := testenv.NewCommandCounter(t, srv.Addr)
	// The backstop's job queue is counted by the package's own tests: its
	// records and its poller's claims are left out here.
	counter.Ignore("{backstop:")
	d := startDemo(t, options{Store: "redis", RedisURL: "redis://" + srv.Addr, Unnotified: true})
	signIn := func(email string) (*http.Client, string) {
		c := browserlessClient(t)
		page := body(t, follow(t, c, d.AppURL+"/login?login_hint="+email))
		if !signedInPage(page, email) {
			t.Fatalf("%s is not signed in:\n%s", email, page)
		}
		return c, currentHandle(t, body(t, follow(t, c, d.AppURL+"/")))
	}
	sameOrigin := []string{"Sec-Fetch-Site", "same-origin"}
	// A user who does it all once first: Redis then holds the scripts, as
	// it does in a running app.
	warm, _ := signIn("warm@example.com")
	_, warmOther := signIn("warm@example.com")
	postForm(t, warm, d.AppURL+"/sessions/end", url.Values{"handle": {warmOther}}, sameOrigin...)
	postForm(t, warm, d.AppURL+"/sessions/others", nil, sameOrigin...)

	const email = "ada@example.com"
	laptop, laptopHandle := signIn(email)
	phone, phoneHandle := signIn(email)
	tablet, tabletHandle := signIn(email)
	eve, _ := signIn("eve@example.com")

	counter.Reset(t)
	page := body(t, follow(t, laptop, d.AppURL+"/"))
	onPage := counter.Count(t)
	list := listedSessions(page)
	handles := []string{}
	for _, s := range list {
		handles = append(handles, s.Handle)
	}
	if want := []string{laptopHandle, phoneHandle, tabletHandle}; len(list) != 3 || !sameSet(handles, want) || currentHandle(t, page) != laptopHandle {
		t.Fatalf("the laptop's list %v, want %v with its own marked", list, want)
	}
	if onPage["eval"] != 1 || testenv.Total(onPage) != 2 {
		t.Errorf("a signed-in page with the list sent Redis %v, want the session's load and one EVAL", onPage)
	}
	t.Logf("a signed-in page with the list of 3 sessions sent Redis: %v", onPage)

	// Another user's handle is refused, and ends nothing.
	counter.Reset(t)
	resp := postForm(t, eve, d.AppURL+"/sessions/end", url.Values{"handle": {phoneHandle}}, sameOrigin...)
	refused := counter.Count(t)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("another user's handle: status %d, want 404", resp.StatusCode)
	}
	if !signedInPage(body(t, follow(t, phone, d.AppURL+"/")), email) || len(listedSessions(body(t, follow(t, laptop, d.AppURL+"/")))) != 3 {
		t.Fatal("another user's request ended a session")
	}
	t.Logf("ending another user's session by its handle (refused) sent Redis: %v", refused)

	// End one: exactly that one.
	counter.Reset(t)
	resp = postForm(t, laptop, d.AppURL+"/sessions/end", url.Values{"handle": {phoneHandle}}, sameOrigin...)
	endOne := counter.Count(t)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != sessionsPage {
		t.Errorf("end one: status %d to %q, want 303 to %s", resp.StatusCode, resp.Header.Get("Location"), sessionsPage)
	}
	if testenv.Total(endOne) != 2 {
		t.Errorf("ending one session sent Redis %v, want the session's load and one command", endOne)
	}
	t.Logf("ending one session by its handle sent Redis: %v", endOne)
	for name, c := range map[string]*http.Client{"laptop": laptop, "phone": phone, "tablet": tablet} {
		if got, want := signedInPage(body(t, follow(t, c, d.AppURL+"/")), email), name != "phone"; got != want {
			t.Errorf("after ending the phone's session, the %s is signed in: %v, want %v", name, got, want)
		}
	}

	// End the others: the caller's alone is left.
	counter.Reset(t)
	resp = postForm(t, tablet, d.AppURL+"/sessions/others", nil, sameOrigin...)
	endOthers := counter.Count(t)
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("end others: status %d, want 303", resp.StatusCode)
	}
	if testenv.Total(endOthers) != 2 {
		t.Errorf("ending the other sessions sent Redis %v, want the session's load and one command", endOthers)
	}
	t.Logf("ending every other session (1 left to end) sent Redis: %v", endOthers)
	if list := listedSessions(body(t, follow(t, tablet, d.AppURL+"/"))); len(list) != 1 || list[0].Handle != tabletHandle {
		t.Errorf("after ending the others the tablet lists %v, want itself alone", list)
	}
	if signedInPage(body(t, follow(t, laptop, d.AppURL+"/")), email) {
		t.Error("the laptop is still signed in after the tablet ended the others")
	}
	if !signedInPage(body(t, follow(t, eve, d.AppURL+"/")), "eve@example.com") {
		t.Error("another user was signed out")
	}

	want := []string{"ended-by-user:" + phoneHandle, "other-devices:" + laptopHandle}
	if got := endingsOf(d, d.Fake.User(email).ID); !slices.Equal(got, want) {
		t.Errorf("the hook heard %v, want %v", got, want)
	}
}

func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

// The card's buttons change state, so another site cannot press them; and
// another user's session, app or provider, is refused and ends nothing.
func TestDemoSessionButtonsRefuse(t *testing.T) {
	d := startDemo(t, options{Store: "redis", Unnotified: true})
	const email = "ada@example.com"
	laptop, phone, eve := browserlessClient(t), browserlessClient(t), browserlessClient(t)
	for c, who := range map[*http.Client]string{laptop: email, phone: email, eve: "eve@example.com"} {
		follow(t, c, d.AppURL+"/login?login_hint="+who)
	}
	phoneHandle := currentHandle(t, body(t, follow(t, phone, d.AppURL+"/")))
	eveHandle := currentHandle(t, body(t, follow(t, eve, d.AppURL+"/")))
	sids := d.Fake.ActiveSessions(d.Fake.User(email).ID)
	eveSID := d.Fake.ActiveSessions(d.Fake.User("eve@example.com").ID)[0]
	tests := []struct {
		path string
		form url.Values
		site string
		want int
	}{
		{"/sessions/end", url.Values{"handle": {phoneHandle}}, "cross-site", http.StatusForbidden},
		{"/sessions/others", nil, "cross-site", http.StatusForbidden},
		{"/sessions/provider/end", url.Values{"sid": {sids[1]}}, "cross-site", http.StatusForbidden},
		{"/sessions/end", url.Values{"handle": {eveHandle}}, "same-origin", http.StatusNotFound},
		{"/sessions/provider/end", url.Values{"sid": {eveSID}}, "same-origin", http.StatusNotFound},
	}
	for _, tt := range tests {
		if resp := postForm(t, laptop, d.AppURL+tt.path, tt.form, "Sec-Fetch-Site", tt.site); resp.StatusCode != tt.want {
			t.Errorf("%s %s: status %d, want %d", tt.site, tt.path, resp.StatusCode, tt.want)
		}
	}
	if n := len(d.Fake.ActiveSessions(d.Fake.User(email).ID)); n != 2 {
		t.Errorf("%d of the user's Scalekit sessions left, want 2", n)
	}
	if ses, _ := d.Fake.Session(eveSID); ses.Status != scalekittest.StatusActive {
		t.Error("another user's Scalekit session ended")
	}
	for c, who := range map[*http.Client]string{laptop: email, phone: email, eve: "eve@example.com"} {
		if !signedInPage(body(t, follow(t, c, d.AppURL+"/")), who) {
			t.Errorf("%s was signed out by a refused request", who)
		}
	}
	if got := endingsOf(d, ""); len(got) != 0 {
		t.Errorf("the hook heard %v, want nothing", got)
	}
}

var revokeCommandTag = regexp.MustCompile(`(?s)<pre id="revoke-command">(.*?)</pre>`)

// The command the signed-in page shows revokes the user's sessions at the
// embedded Scalekit when pasted into a shell as it is, with the client ID
// and secret the demo was given (a secret a shell would mangle unquoted):
// both of the user's devices end at Scalekit, and in the app, which heard
// of it by back-channel logout and webhook.
func TestDemoRevokeCommand(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		testenv.SkipOrFail(t, "curl is not installed: the command the demo shows needs it")
	}
	for _, store := range []string{"redis", "cookie"} {
		t.Run(store, func(t *testing.T) {
			o := demoFlags(t, "-store="+store, "-client-id=skc_4321", `-client-secret=it's "$HOME" \n`)
			d := startDemo(t, o)
			const email = "ada@example.com"
			laptop, phone := browserlessClient(t), browserlessClient(t)
			follow(t, phone, d.AppURL+"/login?login_hint="+email)
			page := body(t, follow(t, laptop, d.AppURL+"/login?login_hint="+email))
			m := revokeCommandTag.FindStringSubmatch(page)
			if m == nil {
				t.Fatalf("the signed-in page shows no revoke command:\n%s", page)
			}
			command := html.UnescapeString(m[1])
			user := d.Fake.User(email)
			for _, part := range []string{d.Issuer + "/oauth/token", "/api/v1/users/" + user.ID + "/sessions/revoke", "skc_4321"} {
				if !strings.Contains(command, part) {
					t.Errorf("the command lacks %q:\n%s", part, command)
				}
			}
			sids := d.Fake.ActiveSessions(user.ID)
			if len(sids) != 2 {
				t.Fatalf("%d Scalekit sessions, want 2", len(sids))
			}

			out, err := exec.Command("sh", "-c", command).CombinedOutput()
			if err != nil {
				t.Fatalf("the command failed: %v\n%s", err, out)
			}
			var revoked struct {
				Total int `json:"total_revoked"`
			}
			if err := json.Unmarshal(out, &revoked); err != nil || revoked.Total != 2 {
				t.Fatalf("the command printed %s, want total_revoked 2", out)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := d.Fake.WaitDeliveries(ctx); err != nil {
				t.Fatal(err)
			}
			if active := d.Fake.ActiveSessions(user.ID); len(active) != 0 {
				t.Errorf("Scalekit sessions still active: %v", active)
			}
			for _, c := range []*http.Client{laptop, phone} {
				if signedInPage(body(t, follow(t, c, d.AppURL+"/")), email) {
					t.Error("a device is still signed in to the app after the revocation")
				}
			}
			heard := map[string]int{}
			for _, e := range d.ends.endings() {
				if e.Subject == user.ID && (e.Reason == logout.EndBackChannel || e.Reason == logout.EndWebhook) {
					heard[e.SessionID]++
				}
			}
			for _, sid := range sids {
				if heard[sid] == 0 {
					t.Errorf("the app heard of no ending of Scalekit session %s: %v", sid, endingsOf(d, user.ID))
				}
			}
		})
	}
}

// The device the demo records for the browsers people use, and for clients
// that are no browser.
func TestDeviceOf(t *testing.T) {
	tests := []struct{ ua, want string }{
		{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", "Chrome on Linux"},
		{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/126.0.0.0 Safari/537.36", "Headless Chrome on Linux"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0", "Edge on Windows"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15", "Safari on macOS"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "Safari on iPhone"},
		{"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36", "Chrome on Android"},
		{"Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0", "Firefox on Linux"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 OPR/111.0.0.0", "Opera on Windows"},
		{"Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", "Chrome on ChromeOS"},
		{"Go-http-client/1.1", "Go-http-client"},
		{"curl/8.5.0", "curl"},
		{"Mozilla/5.0 (X11; Linux x86_64)", "a browser on Linux"},
		{"<script>/1", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := deviceOf(tt.ua); got != tt.want {
			t.Errorf("deviceOf(%q) = %q, want %q", tt.ua, got, tt.want)
		}
	}
}
