// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"

	"github.com/endsession/logout/internal/testenv"
	"github.com/endsession/logout/scalekittest"
)

// newBrowser gives the test a browser of its own.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	return newBrowsers(t, 1)[0]
}

// newBrowsers gives the test n browsers, each with cookies of its own, as n
// people's browsers (or n devices) would have. They are browser contexts of
// one headless Chromium that the whole test binary shares: each starts
// empty, like a fresh profile, and costs a tab rather than a process.
func newBrowsers(t *testing.T, n int) []context.Context {
	t.Helper()
	path := testenv.Chromium(t)
	chromium.once.Do(func() { chromium.start(path) })
	if chromium.err != nil {
		t.Fatalf("starting Chromium at %s: %v", path, chromium.err)
	}
	var out []context.Context
	for range n {
		ctx, closeBrowser, err := chromium.newBrowser()
		if err != nil {
			t.Fatalf("opening a browser context in Chromium: %v", err)
		}
		ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
		t.Cleanup(func() { cancelTimeout(); closeBrowser() })
		if err := chromedp.Run(ctx, network.Enable(), chromedp.EmulateViewport(900, 640)); err != nil {
			t.Fatalf("opening a browser context in Chromium: %v", err)
		}
		out = append(out, ctx)
	}
	return out
}

// chromium is the test binary's one Chromium, started by the first test
// that needs a browser and stopped by TestMain.
var chromium sharedChromium

type sharedChromium struct {
	once sync.Once
	ctx  context.Context // its first tab, from which the browser contexts are made
	stop context.CancelFunc
	err  error
}

func (c *sharedChromium) start(path string) {
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
		chromedp.WindowSize(900, 640),
	)
	ctx, cancelCtx := chromedp.NewContext(actx)
	c.ctx, c.stop = ctx, func() { cancelCtx(); cancelAlloc() }
	c.err = chromedp.Run(ctx)
}

// newBrowser opens a tab in a new browser context. It opens it as a window
// of its own: headless Chromium refuses a tab in a context that has no
// window yet, and chromedp's WithNewBrowserContext asks for exactly that.
func (c *sharedChromium) newBrowser() (context.Context, func(), error) {
	browser := cdp.WithExecutor(c.ctx, chromedp.FromContext(c.ctx).Browser)
	id, err := target.CreateBrowserContext().WithDisposeOnDetach(true).Do(browser)
	if err != nil {
		return nil, nil, err
	}
	tab, err := target.CreateTarget("about:blank").WithBrowserContextID(id).WithNewWindow(true).Do(browser)
	if err != nil {
		target.DisposeBrowserContext(id).Do(browser)
		return nil, nil, err
	}
	ctx, cancel := chromedp.NewContext(c.ctx, chromedp.WithTargetID(tab))
	return ctx, func() {
		cancel() // closes the tab
		target.DisposeBrowserContext(id).Do(browser)
	}, nil
}

// close stops Chromium, if a test started it.
func (c *sharedChromium) close() {
	if c.stop != nil {
		c.stop()
	}
}

// requestLog records, from the DevTools protocol, the resource type of every
// request to the provider's end-session endpoint.
type requestLog struct {
	mu    sync.Mutex
	types []network.ResourceType
}

func (l *requestLog) listen(ctx context.Context) {
	chromedp.ListenTarget(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok && strings.Contains(e.Request.URL, "/oidc/logout") {
			l.mu.Lock()
			l.types = append(l.types, e.Type)
			l.mu.Unlock()
		}
	})
}

func (l *requestLog) get() []network.ResourceType {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]network.ResourceType(nil), l.types...)
}

// TestBrowserLogout is the whole three-layer logout in a real browser.
func TestBrowserLogout(t *testing.T) {
	for _, store := range []string{"redis", "cookie"} {
		t.Run(store, func(t *testing.T) {
			d := startDemo(t, options{Store: store})
			ctx := newBrowser(t)
			var reqs requestLog
			reqs.listen(ctx)
			const email = "ada@example.com"

			// Sign in through the provider's form.
			var shown string
			run(t, ctx,
				chromedp.Navigate(d.AppURL),
				chromedp.Click("#sign-in", chromedp.ByID),
				chromedp.WaitVisible("#signin-title", chromedp.ByID),
				chromedp.SendKeys("#email", email, chromedp.ByID),
				chromedp.Click("#continue", chromedp.ByID),
				chromedp.WaitVisible("#sign-out", chromedp.ByID),
				chromedp.Text("#email", &shown, chromedp.ByID),
			)
			if shown != email {
				t.Fatalf("signed-in page shows %q, want %q", shown, email)
			}
			// The embedded Scalekit federates sso.example alone: this user
			// signs in at Scalekit, as before it had an upstream provider.
			signedIn := lastAuthorization(t, d)
			if signedIn.Upstream || !slices.Equal(signedIn.Forms, []scalekittest.Form{scalekittest.ScalekitForm}) {
				t.Errorf("sign-in %+v, want Scalekit's form alone, nothing upstream", signedIn)
			}
			cookies := appCookies(t, ctx, d)
			checkLayers(t, ctx, d, signedIn.SessionID, cookies, layers{"app": "alive", "scalekit": "active", "upstream": "direct"})
			user := d.Fake.User(email)
			if n := len(d.Fake.ActiveSessions(user.ID)); n != 1 {
				t.Fatalf("%d provider sessions after sign-in, want 1", n)
			}
			if !hasCookie(t, ctx, d.AppURL, "session") || !hasCookie(t, ctx, d.Fake.URL, scalekittest.SessionCookie) {
				t.Fatal("the app's and the provider's cookies should both be set after sign-in")
			}

			// Sign out: the browser goes through the provider and back.
			var landed string
			run(t, ctx,
				chromedp.Click("#sign-out", chromedp.ByID),
				chromedp.WaitVisible("#logged-out", chromedp.ByID),
				chromedp.Location(&landed),
			)
			checkLayers(t, ctx, d, signedIn.SessionID, cookies, layers{"app": "ended", "scalekit": "logout", "upstream": "direct"})
			if !strings.HasPrefix(landed, d.AppURL+"/logged-out?state=") {
				t.Errorf("landed on %s, want %s/logged-out?state=…", landed, d.AppURL)
			}
			if hasCookie(t, ctx, d.AppURL, "session") {
				t.Error("the app's session cookie survived logout")
			}
			if hasCookie(t, ctx, d.Fake.URL, scalekittest.SessionCookie) {
				t.Error("the provider's session cookie survived logout")
			}
			logouts := d.Fake.LogoutRequests()
			if len(logouts) != 1 {
				t.Fatalf("provider saw %d logout requests, want 1", len(logouts))
			}
			lr := logouts[0]
			if !lr.HadCookie || lr.SecFetchMode != "navigate" || lr.SecFetchDest != "document" || lr.EndedSession == "" || lr.IDTokenSubject != user.ID {
				t.Errorf("provider's view of the logout request: %+v; want a document navigation with its cookie and the ID token", lr)
			}
			if types := reqs.get(); len(types) != 1 || types[0] != network.ResourceTypeDocument {
				t.Errorf("DevTools saw /oidc/logout requests of types %v, want one Document", types)
			}
			if s := d.Fake.ActiveSessions(user.ID); len(s) != 0 {
				t.Errorf("provider sessions after logout: %v, want none", s)
			}

			// Signing in again shows the provider's form: nothing signs the
			// user straight back in.
			var host string
			run(t, ctx,
				chromedp.Click("#sign-in", chromedp.ByID),
				chromedp.WaitVisible("#signin-title", chromedp.ByID),
				chromedp.Evaluate(`location.origin`, &host),
			)
			if host != d.Fake.URL {
				t.Errorf("sign-in after logout stopped at %s, want the provider's form at %s", host, d.Fake.URL)
			}
			for _, a := range d.Fake.Authorizations() {
				if a.Upstream {
					t.Errorf("a sign-in of %s went to the upstream provider: %+v", email, a)
				}
			}
		})
	}
}

// TestBrowserFetchLeavesProviderSession shows the anti-pattern: a page that
// calls the end-session endpoint with fetch() clears the app's session but
// not the provider's, because fetch does not carry the provider's cookie, and
// the next "Sign in" walks straight back in.
func TestBrowserFetchLeavesProviderSession(t *testing.T) {
	d := startDemo(t, options{Store: "redis"})
	ctx := newBrowser(t)
	const email = "mallory@example.com"
	run(t, ctx,
		chromedp.Navigate(d.AppURL+"/login?login_hint="+email),
		chromedp.WaitVisible("#sign-out", chromedp.ByID),
	)
	user := d.Fake.User(email)
	var outcome string
	run(t, ctx, chromedp.Evaluate(`
		(async () => {
			const r = await fetch('/logout', {method: 'POST'});
			const {location} = await r.json();
			try { await fetch(location); } catch (e) { /* no CORS headers: opaque failure */ }
			return 'fetched ' + new URL(location).pathname;
		})()`, &outcome, func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
	if outcome != "fetched /oidc/logout" {
		t.Fatalf("page script: %q", outcome)
	}
	logouts := d.Fake.LogoutRequests()
	if len(logouts) != 1 || logouts[0].HadCookie || logouts[0].SecFetchMode != "cors" {
		t.Fatalf("provider's view of the fetch: %+v; want one cors request without its cookie", logouts)
	}
	if s := d.Fake.ActiveSessions(user.ID); len(s) != 1 {
		t.Errorf("provider sessions after a fetch() logout: %v, want the session still alive", s)
	}
	// The app session did end (the JSON reply expired its cookie)...
	if hasCookie(t, ctx, d.AppURL, "session") {
		t.Error("app session cookie survived the fetch logout")
	}
	// ...but "Sign in" goes straight through, without the form.
	var shown string
	run(t, ctx,
		chromedp.Navigate(d.AppURL+"/login"),
		chromedp.WaitVisible("#sign-out", chromedp.ByID),
		chromedp.Text("#email", &shown, chromedp.ByID),
	)
	if shown != email {
		t.Errorf("after a fetch() logout, sign-in showed %q, want straight back in as %s", shown, email)
	}
}

func run(t *testing.T, ctx context.Context, actions ...chromedp.Action) {
	t.Helper()
	if err := chromedp.Run(ctx, actions...); err != nil {
		t.Fatal(err)
	}
}

func hasCookie(t *testing.T, ctx context.Context, url, name string) bool {
	t.Helper()
	var cookies []*network.Cookie
	run(t, ctx, chromedp.ActionFunc(func(ctx context.Context) (err error) {
		cookies, err = network.GetCookies().WithURLs([]string{url}).Do(ctx)
		return err
	}))
	for _, c := range cookies {
		if c.Name == name {
			return true
		}
	}
	return false
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
