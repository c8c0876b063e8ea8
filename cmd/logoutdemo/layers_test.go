// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/endsession/logout/scalekittest"
)

// demoFlags is the demo's options as its command line gives them: the
// flags' defaults, then args. The environment is not read, so a REDIS_URL
// meant for other tests does not reach the demo.
func demoFlags(t *testing.T, args ...string) options {
	t.Helper()
	fs := flag.NewFlagSet("logoutdemo", flag.ContinueOnError)
	o := newFlags(fs, func(string) string { return "" })
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return *o
}

// The demo's defaults are what its README and flag help promise: the next
// sign-in after a logout asks for credentials again, the embedded Scalekit
// forwards prompt=login to the upstream providers (the reading under which
// that shows as the upstream's password form), and it has two connections,
// for sso.example with IdP logout off and for slo.example with it on.
func TestDemoFlagDefaults(t *testing.T) {
	o := demoFlags(t)
	if !o.Reauthenticate || !o.ForwardPrompt || o.Store != "redis" {
		t.Errorf("defaults: reauth %v, forward prompt %v, store %s; want true, true, redis", o.Reauthenticate, o.ForwardPrompt, o.Store)
	}
	d := startDemo(t, o)
	ups := d.Fake.Upstreams()
	if len(ups) != 2 || !slices.Equal(ups[0].Domains, []string{ssoDomain}) || ups[0].IDPLogoutRequired ||
		!slices.Equal(ups[1].Domains, []string{sloDomain}) || !ups[1].IDPLogoutRequired || !ups[0].ForwardPrompt || !ups[1].ForwardPrompt {
		t.Errorf("connections %+v, want %s with IdP logout off and %s with it on, both forwarding prompt=login", ups, ssoDomain, sloDomain)
	}
}

// layers maps a row of the layer panel (app, scalekit, upstream, next) to
// its state.
type layers map[string]string

// shownPanel is the layer panel as the page shows it.
type shownPanel struct {
	Rows    map[string]struct{ State, Detail, Why string }
	Pending bool
	Callout string
}

func (p shownPanel) states() layers {
	out := layers{}
	for name, r := range p.Rows {
		if name != "next" {
			out[name] = r.State
		}
	}
	return out
}

// readPanel reads the layer panel from the page's DOM.
func readPanel(t *testing.T, ctx context.Context) shownPanel {
	t.Helper()
	var p shownPanel
	run(t, ctx, chromedp.Evaluate(`(() => {
		const panel = document.getElementById('layers');
		const rows = {};
		for (const tr of panel.querySelectorAll('tr[data-layer]')) {
			rows[tr.dataset.layer] = {state: tr.dataset.state, detail: tr.dataset.detail, why: tr.querySelector('td:last-child').textContent};
		}
		const callout = document.getElementById('layers-callout');
		return {rows, pending: panel.dataset.pending === 'true', callout: callout ? callout.textContent : ''};
	})()`, &p))
	return p
}

// appCookies are the cookies the browser holds for the app.
func appCookies(t *testing.T, ctx context.Context, d *demo) []*http.Cookie {
	t.Helper()
	var cookies []*network.Cookie
	run(t, ctx, chromedp.ActionFunc(func(ctx context.Context) (err error) {
		cookies, err = network.GetCookies().WithURLs([]string{d.AppURL}).Do(ctx)
		return err
	}))
	var out []*http.Cookie
	for _, c := range cookies {
		out = append(out, &http.Cookie{Name: c.Name, Value: c.Value})
	}
	return out
}

// storeOpens asks the demo's session store, not its pages, whether cookies
// open session sid.
func storeOpens(d *demo, cookies []*http.Cookie, sid string) bool {
	r := httptest.NewRequest(http.MethodGet, d.AppURL+"/", nil)
	for _, c := range cookies {
		r.AddCookie(c)
	}
	s, err := d.Logout.Session(r)
	return err == nil && s.SessionID == sid
}

// layersSeen is each layer's state as the test finds it: the app's in the
// store, for the cookies the browser holds now and for those it got when
// it signed in with sid (an app session has ended only if a copy of its
// cookie no longer opens it); Scalekit's in the embedded Scalekit's record
// of sid; the upstream provider's in its record of the session the
// browser's cookie there names, when that session signed sid in.
func layersSeen(t *testing.T, ctx context.Context, d *demo, sid string, signedIn []*http.Cookie) layers {
	t.Helper()
	if sid == "" {
		return layers{"app": "none", "scalekit": "unknown", "upstream": "unknown"}
	}
	seen := layers{"app": "ended"}
	switch now := appCookies(t, ctx, d); {
	case storeOpens(d, now, sid):
		seen["app"] = "alive"
	case storeOpens(d, signedIn, sid):
		seen["app"] = "ended in the browser alone: a copy of its cookie still opens it"
	}
	ses, err := d.Fake.Session(sid)
	if err != nil {
		t.Fatal(err)
	}
	seen["scalekit"] = ses.Status
	seen["upstream"] = "direct"
	if ses.UpstreamSessionID != "" {
		seen["upstream"] = "none"
		up := d.Fake.UpstreamOf(ses.ConnectionID)
		var cookies []*network.Cookie
		run(t, ctx, chromedp.ActionFunc(func(ctx context.Context) (err error) {
			cookies, err = network.GetCookies().WithURLs([]string{up.URL}).Do(ctx)
			return err
		}))
		for _, c := range cookies {
			if c.Name != up.SessionCookie || c.Value != ses.UpstreamSessionID {
				continue
			}
			if u, ok := up.ActiveSession(sessionEmail(t, d, sid)); ok && u.ID == c.Value {
				seen["upstream"] = "alive"
			}
		}
	}
	return seen
}

// sessionEmail is the email of the user of Scalekit session sid.
func sessionEmail(t *testing.T, d *demo, sid string) string {
	t.Helper()
	for _, a := range d.Fake.Authorizations() {
		if a.SessionID == sid {
			return a.Email
		}
	}
	t.Fatalf("no sign-in made session %s", sid)
	return ""
}

// checkLayers reads the layer panel and checks it against what the test
// finds in the store and the embedded Scalekit, and both against want. It
// returns the panel.
func checkLayers(t *testing.T, ctx context.Context, d *demo, sid string, signedIn []*http.Cookie, want layers) shownPanel {
	t.Helper()
	seen := layersSeen(t, ctx, d, sid, signedIn)
	p := readPanel(t, ctx)
	if got := p.states(); !maps.Equal(got, seen) || !maps.Equal(seen, want) {
		t.Fatalf("layer panel %v; the store and Scalekit say %v; want %v", got, seen, want)
	}
	if sid == "" {
		return p
	}
	ses, _ := d.Fake.Session(sid)
	if got, want := p.Rows["app"].Detail, "on "+strings.TrimPrefix(d.AppURL, "http://"); got != want {
		t.Errorf("app layer detail %q, want %q", got, want)
	}
	if got := p.Rows["scalekit"].Detail; got != sid {
		t.Errorf("Scalekit layer detail %q, want %s", got, sid)
	}
	if got := p.Rows["upstream"].Detail; got != ses.UpstreamSessionID {
		t.Errorf("upstream layer detail %q, want %q", got, ses.UpstreamSessionID)
	}
	return p
}

// signInStop waits for where a sign-in the browser started stops: a
// sign-in form ("scalekit-form", "upstream-form") or, with no form, the
// app's signed-in page ("pass-through"), the names the panel's "next" row
// uses.
func signInStop(t *testing.T, ctx context.Context) string {
	t.Helper()
	var where string
	run(t, ctx,
		chromedp.WaitVisible("#upstream-title, #signin-title, #sign-out", chromedp.ByQuery),
		chromedp.Evaluate(`document.getElementById('upstream-title') ? 'upstream-form' :
			document.getElementById('signin-title') ? 'scalekit-form' : 'pass-through'`, &where),
	)
	return where
}

// signInUpstream fills in the form of the upstream provider of email's
// domain, which the browser shows, and waits for the app's signed-in page.
func signInUpstream(t *testing.T, ctx context.Context, d *demo, email string) {
	t.Helper()
	var origin string
	run(t, ctx, chromedp.Evaluate(`location.origin`, &origin))
	_, domain, _ := strings.Cut(email, "@")
	var want string
	for _, up := range d.Fake.Upstreams() {
		if slices.Contains(up.Domains, domain) {
			want = up.URL
		}
	}
	if origin != want {
		t.Fatalf("the upstream's form is at %s, want the own origin of @%s's provider, %s", origin, domain, want)
	}
	run(t, ctx,
		chromedp.SetValue("#upstream-email", email, chromedp.ByID),
		chromedp.SetValue("#upstream-password", "any password", chromedp.ByID),
		chromedp.Click("#upstream-sign-in", chromedp.ByID),
		chromedp.WaitVisible("#sign-out", chromedp.ByID),
	)
}

func lastAuthorization(t *testing.T, d *demo) scalekittest.Authorization {
	t.Helper()
	all := d.Fake.Authorizations()
	if len(all) == 0 {
		t.Fatal("the embedded Scalekit recorded no sign-in")
	}
	return all[len(all)-1]
}

// docsShots is where the README's screenshots go: LOGOUT_SCREENSHOTS, a
// folder relative to the module's root (LOGOUT_SCREENSHOTS=docs writes
// docs/*.png), or nowhere when it is unset or take is false.
func docsShots(t *testing.T, take bool) func(name string, png []byte) {
	dir := os.Getenv("LOGOUT_SCREENSHOTS")
	if dir == "" || !take {
		return func(string, []byte) {}
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join("..", "..", dir) // this package is cmd/logoutdemo
	}
	return func(name string, png []byte) { writeFile(t, filepath.Join(dir, name), png) }
}

// screenshot captures the page's content, cropped to it, in the few colours
// a page of text and flat buttons has.
func screenshot(t *testing.T, ctx context.Context) []byte {
	t.Helper()
	return screenshotOf(t, ctx, "#page")
}

// screenshotOf captures the element of the page that sel selects, as
// screenshot does the page.
func screenshotOf(t *testing.T, ctx context.Context, sel string) []byte {
	t.Helper()
	var shot []byte
	run(t, ctx, chromedp.Screenshot(sel, &shot, chromedp.ByQuery))
	small, err := fewerColours(shot, 64)
	if err != nil {
		t.Fatal(err)
	}
	return small
}

// fewerColours re-encodes a PNG with a palette of its n most frequent
// colours, each other pixel taking the nearest: a screenshot of text loses
// nothing a reader sees, and its file shrinks to a third.
func fewerColours(shot []byte, n int) ([]byte, error) {
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		return nil, err
	}
	b := img.Bounds()
	counts := map[color.RGBA]int{}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			counts[color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)]++
		}
	}
	common := slices.SortedFunc(maps.Keys(counts), func(a, b color.RGBA) int {
		if c := counts[b] - counts[a]; c != 0 {
			return c
		}
		return rgb(a) - rgb(b) // ties in a fixed order, so that a page gives one file
	})
	// The most frequent colours first, skipping those close to one already
	// in: anti-aliased text has hundreds of greys, and a small status dot
	// would otherwise lose its colour to them.
	palette := make(color.Palette, 0, n)
	for _, c := range common {
		if len(palette) == n {
			break
		}
		if len(palette) == 0 || distance(c, palette.Convert(c).(color.RGBA)) > 12 {
			palette = append(palette, c)
		}
	}
	out := image.NewPaletted(b, palette)
	draw.Draw(out, b, img, b.Min, draw.Src)
	var buf bytes.Buffer
	err = (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&buf, out)
	return buf.Bytes(), err
}

func rgb(c color.RGBA) int { return int(c.R)<<16 | int(c.G)<<8 | int(c.B) }

func distance(a, b color.RGBA) float64 {
	dr, dg, db := float64(a.R)-float64(b.R), float64(a.G)-float64(b.G), float64(a.B)-float64(b.B)
	return math.Sqrt(dr*dr + dg*dg + db*db)
}

// For a user of a federated domain, in a real browser, with each store: the
// first sign-in asks for the upstream provider's password; after "Sign out"
// the app's and Scalekit's sessions have ended. Through the connection with
// IdP logout off the upstream's session lives on, so the next sign-in asks
// for the password again with the re-authentication switch on, and passes
// straight through without any form with it off. Through the connection
// with IdP logout on, "Sign out" took the browser through the upstream's
// own logout, which ended its session: the next sign-in asks for the
// password even with the switch off. At each step the layer panel shows
// what the store and the embedded Scalekit hold, and its "next sign-in" row
// says what the next sign-in then does.
func TestBrowserSSOSignInAfterSignOut(t *testing.T) {
	tests := []struct {
		store     string
		reauth    bool
		idpLogout bool // sign in through the connection with IdP logout on
	}{
		{"redis", true, false},
		{"redis", false, false},
		{"cookie", true, false},
		{"cookie", false, false},
		{"redis", false, true},
		{"cookie", false, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/reauth=%t/idp-logout=%t", tt.store, tt.reauth, tt.idpLogout), func(t *testing.T) {
			d := startDemo(t, demoFlags(t, "-store="+tt.store, fmt.Sprintf("-reauth=%t", tt.reauth), "-backstop-delay=300ms"))
			ctx := newBrowser(t)
			shots := docsShots(t, tt.store == "redis" && tt.reauth)
			email, button := "grace@"+ssoDomain, "#sign-in-sso"
			if tt.idpLogout {
				email, button = "grace@"+sloDomain, "#sign-in-sso-slo"
			}

			run(t, ctx, chromedp.Navigate(d.AppURL), chromedp.WaitVisible(button, chromedp.ByQuery))
			checkLayers(t, ctx, d, "", nil, layers{"app": "none", "scalekit": "unknown", "upstream": "unknown"})

			// The first sign-in asks for the upstream provider's password.
			run(t, ctx, chromedp.Click(button, chromedp.ByQuery))
			if got := signInStop(t, ctx); got != "upstream-form" {
				t.Fatalf("the first sign-in stopped at %s, want the upstream-form", got)
			}
			signInUpstream(t, ctx, d, email)
			first := lastAuthorization(t, d)
			if !first.Upstream || first.Email != email || !slices.Equal(first.Forms, []scalekittest.Form{scalekittest.UpstreamForm}) {
				t.Fatalf("first sign-in %+v, want %s through the upstream, with its form alone", first, email)
			}
			signedIn := appCookies(t, ctx, d)
			checkLayers(t, ctx, d, first.SessionID, signedIn, layers{"app": "alive", "scalekit": "active", "upstream": "alive"})
			shots("signed-in.png", screenshot(t, ctx))

			// Sign out ends the app's and Scalekit's sessions; the
			// upstream's lives on unless its connection has IdP logout on.
			run(t, ctx, chromedp.Click("#sign-out", chromedp.ByID), chromedp.WaitVisible("#logged-out", chromedp.ByID))
			upstream := map[bool]string{false: "alive", true: "none"}[tt.idpLogout]
			p := checkLayers(t, ctx, d, first.SessionID, signedIn, layers{"app": "ended", "scalekit": "logout", "upstream": upstream})
			lr := d.Fake.LogoutRequests()
			if last := lr[len(lr)-1]; last.EndedSession != first.SessionID || (last.IDPLogout != "") != tt.idpLogout || last.IDPLogoutReturned != tt.idpLogout {
				t.Errorf("Scalekit's record of the logout %+v; want IdP logout through the upstream: %v", last, tt.idpLogout)
			}
			wantNext := "pass-through"
			if tt.reauth || tt.idpLogout {
				wantNext = "upstream-form"
			}
			if got := p.Rows["next"].State; got != wantNext {
				t.Errorf("the panel says the next sign-in shows %q, want %q", got, wantNext)
			}
			shots("signed-out.png", screenshot(t, ctx))

			// The next sign-in does what the panel said.
			run(t, ctx, chromedp.Click(button, chromedp.ByQuery))
			got := signInStop(t, ctx)
			if got != p.Rows["next"].State || got != wantNext {
				t.Fatalf("the next sign-in stopped at %s; the panel said %s; want %s", got, p.Rows["next"].State, wantNext)
			}
			if got == "upstream-form" {
				signInUpstream(t, ctx, d, email)
			}
			second := lastAuthorization(t, d)
			prompt := map[bool]string{true: "login", false: ""}[tt.reauth]
			switch {
			case second.Email != email || second.SessionID == first.SessionID:
				t.Fatalf("second sign-in %+v, want %s with a new Scalekit session", second, email)
			case second.Params.Get("prompt") != prompt || second.PromptForwarded != tt.reauth:
				t.Errorf("second sign-in sent prompt=%q (forwarded upstream: %v), want %q", second.Params.Get("prompt"), second.PromptForwarded, prompt)
			case got == "upstream-form" && !slices.Equal(second.Forms, []scalekittest.Form{scalekittest.UpstreamForm}):
				t.Errorf("second sign-in showed %v, want the upstream's form alone", second.Forms)
			case got == "pass-through" && (!second.PassedThrough() || second.UpstreamSessionID != first.UpstreamSessionID):
				t.Errorf("second sign-in %+v, want no form, on the upstream session %s", second, first.UpstreamSessionID)
			}
			checkLayers(t, ctx, d, second.SessionID, appCookies(t, ctx, d), layers{"app": "alive", "scalekit": "active", "upstream": "alive"})
		})
	}
}

// The two connections side by side, in one real browser, with each store:
// a user of each signs in and out in turn, and after each "Sign out" the
// layer panel shows the difference: through the connection with IdP logout
// off the upstream provider's session is alive, and through the one with it
// on it has ended, by a round trip through that provider's own logout; the
// first provider's session is untouched by the second's logout.
func TestBrowserTwoConnections(t *testing.T) {
	for _, store := range []string{"redis", "cookie"} {
		t.Run(store, func(t *testing.T) {
			d := startDemo(t, demoFlags(t, "-store="+store, "-reauth=false"))
			ctx := newBrowser(t)
			shots := docsShots(t, store == "redis")
			off, on := d.Fake.Upstreams()[0], d.Fake.Upstreams()[1]
			signInOut := func(button, email string, up *scalekittest.Upstream) (scalekittest.Authorization, shownPanel) {
				t.Helper()
				run(t, ctx, chromedp.Navigate(d.AppURL), chromedp.Click(button, chromedp.ByQuery))
				if got := signInStop(t, ctx); got != "upstream-form" {
					t.Fatalf("%s: the sign-in stopped at %s, want the upstream's form", email, got)
				}
				signInUpstream(t, ctx, d, email)
				a := lastAuthorization(t, d)
				if a.ConnectionID != up.ConnectionID {
					t.Fatalf("%s signed in through %s, want %s", email, a.ConnectionID, up.ConnectionID)
				}
				signedIn := appCookies(t, ctx, d)
				run(t, ctx, chromedp.Click("#sign-out", chromedp.ByID), chromedp.WaitVisible("#logged-out", chromedp.ByID))
				want := map[bool]string{false: "alive", true: "none"}[up.IDPLogoutRequired]
				return a, checkLayers(t, ctx, d, a.SessionID, signedIn, layers{"app": "ended", "scalekit": "logout", "upstream": want})
			}

			grace, p := signInOut("#sign-in-sso", "grace@"+ssoDomain, off)
			if why := p.Rows["upstream"].Why; !strings.Contains(why, "IdP logout off") {
				t.Errorf("after signing out of the connection with IdP logout off the panel says %q", why)
			}
			if p.Rows["next"].State != "pass-through" {
				t.Errorf("next sign-in through it: %s, want pass-through", p.Rows["next"].State)
			}
			shots("idp-logout-off.png", screenshotOf(t, ctx, "#layers"))

			alan, p := signInOut("#sign-in-sso-slo", "alan@"+sloDomain, on)
			if why := p.Rows["upstream"].Why; !strings.Contains(why, "IdP logout on") || !strings.Contains(why, on.URL+"/logout") {
				t.Errorf("after signing out of the connection with IdP logout on the panel says %q", why)
			}
			if p.Rows["next"].State != "upstream-form" {
				t.Errorf("next sign-in through it: %s, want the upstream's form", p.Rows["next"].State)
			}
			shots("idp-logout-on.png", screenshotOf(t, ctx, "#layers"))

			if _, ok := off.ActiveSession("grace@" + ssoDomain); !ok {
				t.Errorf("the first provider's session of %s ended with the second's logout", grace.Email)
			}
			if _, ok := on.ActiveSession("alan@" + sloDomain); ok {
				t.Errorf("the second provider's session of %s lives on after IdP logout", alan.Email)
			}
		})
	}
}

// Each of the demo's actions, for a user who signs in at Scalekit directly,
// in a real browser with each store, with the demo's defaults: the layer
// panel shows what each leaves behind, as the store and the embedded
// Scalekit hold it. A fetch() logout and an abandoned one end the app's
// session and leave Scalekit's alive, and the panel says why, until the
// backstop ends it, which the panel shows by reloading itself; a revocation
// at Scalekit reaches the app by back-channel and webhook; sign out
// everywhere ends both sessions.
func TestBrowserLayersAfterEachAction(t *testing.T) {
	for _, store := range []string{"redis", "cookie"} {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			// The backstop waits long enough for the test to see Scalekit's
			// session alive after a logout that did not end it.
			d := startDemo(t, demoFlags(t, "-store="+store, "-backstop-delay=2s"))
			ctx := newBrowser(t)
			shots := docsShots(t, store == "redis")
			const email = "ada@example.com"
			signIn := func() (string, []*http.Cookie) {
				t.Helper()
				run(t, ctx,
					chromedp.Navigate(d.AppURL),
					chromedp.Click("#sign-in", chromedp.ByID),
					chromedp.WaitVisible("#signin-title", chromedp.ByID),
					chromedp.SetValue("#email", email, chromedp.ByID),
					chromedp.Click("#continue", chromedp.ByID),
					chromedp.WaitVisible("#sign-out", chromedp.ByID),
				)
				a := lastAuthorization(t, d)
				if a.Upstream || a.Email != email {
					t.Fatalf("sign-in %+v, want %s at Scalekit directly", a, email)
				}
				cookies := appCookies(t, ctx, d)
				checkLayers(t, ctx, d, a.SessionID, cookies, layers{"app": "alive", "scalekit": "active", "upstream": "direct"})
				return a.SessionID, cookies
			}

			// fetch(): the app's session ends, Scalekit's does not, and the
			// panel says why in so many words.
			sid, cookies := signIn()
			run(t, ctx, chromedp.Click("#fetch-logout", chromedp.ByID), chromedp.WaitVisible("#layers-callout", chromedp.ByID))
			p := checkLayers(t, ctx, d, sid, cookies, layers{"app": "ended", "scalekit": "active", "upstream": "direct"})
			logouts := d.Fake.LogoutRequests()
			if len(logouts) != 1 || logouts[0].HadCookie || logouts[0].EndedSession != "" {
				t.Fatalf("Scalekit's record of the logout requests: %+v; want one, without its cookie, that ended nothing", logouts)
			}
			if !p.Pending || !strings.Contains(p.Callout, "fetch()") || !strings.Contains(p.Callout, "cookie") {
				t.Errorf("after a fetch() logout the panel is pending=%v and says %q; want it waiting for the backstop and explaining the cookie", p.Pending, p.Callout)
			}
			shots("fetch-logout.png", screenshot(t, ctx))

			// An abandoned logout: Scalekit's session lives until the
			// backstop ends it, and the panel reloads itself to show it.
			sid, cookies = signIn()
			run(t, ctx, chromedp.Click("#abandon-logout", chromedp.ByID), chromedp.WaitVisible("#layers-callout", chromedp.ByID))
			if p := checkLayers(t, ctx, d, sid, cookies, layers{"app": "ended", "scalekit": "active", "upstream": "direct"}); !p.Pending {
				t.Error("after an abandoned logout the panel does not wait for the backstop")
			}
			if n := len(d.Fake.LogoutRequests()); n != 1 {
				t.Fatalf("Scalekit saw %d logout requests, want still the fetch()'s alone", n)
			}
			run(t, ctx, chromedp.WaitVisible(`#layers tr[data-layer="scalekit"][data-state="revoked"]`, chromedp.ByQuery))
			if p := checkLayers(t, ctx, d, sid, cookies, layers{"app": "ended", "scalekit": "revoked", "upstream": "direct"}); p.Pending {
				t.Error("the panel still waits for the backstop after it ended the session")
			}

			// A revocation at Scalekit reaches the app by back-channel
			// logout and by webhook.
			sid, cookies = signIn()
			run(t, ctx, chromedp.Click("#revoke", chromedp.ByID), chromedp.WaitVisible("#layers-callout", chromedp.ByID))
			p = checkLayers(t, ctx, d, sid, cookies, layers{"app": "ended", "scalekit": "revoked", "upstream": "direct"})
			kinds := map[scalekittest.DeliveryKind]bool{}
			for _, dl := range d.Fake.Deliveries() {
				if dl.SessionID == sid && dl.Delivered {
					kinds[dl.Kind] = true
				}
			}
			if !kinds[scalekittest.BackChannelDelivery] || !kinds[scalekittest.WebhookDelivery] {
				t.Errorf("notifications delivered for %s: %v; want a back-channel logout and a webhook", sid, kinds)
			}
			if !strings.Contains(p.Callout, "back-channel logout token (delivered)") || !strings.Contains(p.Callout, "user.logout webhook (delivered)") {
				t.Errorf("after the revocation the panel says %q; want both notifications delivered", p.Callout)
			}

			// Sign out everywhere ends both sessions; the next sign-in asks.
			sid, cookies = signIn()
			run(t, ctx, chromedp.Click("#sign-out-everywhere", chromedp.ByID), chromedp.WaitVisible("#logged-out", chromedp.ByID))
			p = checkLayers(t, ctx, d, sid, cookies, layers{"app": "ended", "scalekit": "logout", "upstream": "direct"})
			run(t, ctx, chromedp.Click("#sign-in", chromedp.ByID))
			if got := signInStop(t, ctx); got != p.Rows["next"].State || got != "scalekit-form" {
				t.Errorf("after sign out everywhere the next sign-in stopped at %s; the panel said %s; want Scalekit's form", got, p.Rows["next"].State)
			}
		})
	}
}
