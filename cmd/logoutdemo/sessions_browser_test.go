// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"

	"github.com/endsession/logout"
	"github.com/endsession/logout/scalekittest"
)

// shownCard is the "Active sessions" card as the browser shows it.
type shownCard struct {
	App, Provider []shownRow
	// Unlisted is set when the card says the store cannot list sessions.
	Unlisted bool
	// Heard is the reasons of the endings the card says the app heard.
	Heard []string
}

// shownRow is one session of the card: its handle or Scalekit session ID,
// whether it is this device's, and the device the row names.
type shownRow struct {
	ID      string
	Current bool
	Device  string
}

func (c shownCard) current(rows []shownRow) string {
	for _, r := range rows {
		if r.Current {
			return r.ID
		}
	}
	return ""
}

// readCard reads the card from the page's DOM.
func readCard(t *testing.T, ctx context.Context) shownCard {
	t.Helper()
	var c shownCard
	run(t, ctx, chromedp.WaitVisible("#sessions", chromedp.ByID), chromedp.Evaluate(`(() => {
		const rows = (sel, key) => [...document.querySelectorAll(sel)].map(tr => ({
			id: tr.dataset[key], current: tr.dataset.current === 'true',
			device: tr.cells[0].firstChild.textContent.trim(),
		}));
		return {
			app: rows('#app-sessions tr[data-handle]', 'handle'),
			provider: rows('#provider-sessions tr[data-sid]', 'sid'),
			unlisted: !!document.getElementById('sessions-unlisted'),
			heard: [...document.querySelectorAll('#heard li')].map(li => li.dataset.reason),
		};
	})()`, &c))
	return c
}

// devices lists the rows' devices, sorted.
func devices(rows []shownRow) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r.Device)
	}
	slices.Sort(out)
	return out
}

// rowOf is the ID of the row whose device starts with device.
func rowOf(t *testing.T, rows []shownRow, device string) string {
	t.Helper()
	for _, r := range rows {
		if strings.HasPrefix(r.Device, device) {
			return r.ID
		}
	}
	t.Fatalf("no row for %s in %v", device, rows)
	return ""
}

// secondTab opens another tab in the browser of ctx: the same cookies,
// the same origin's BroadcastChannel, as a user's second tab has.
func secondTab(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	c := chromedp.FromContext(ctx)
	browser := cdp.WithExecutor(chromium.ctx, chromedp.FromContext(chromium.ctx).Browser)
	info, err := target.GetTargetInfo().WithTargetID(c.Target.TargetID).Do(browser)
	if err != nil {
		t.Fatal(err)
	}
	// A window of its own, so that neither tab waits in the background.
	tab, err := target.CreateTarget("about:blank").WithBrowserContextID(info.BrowserContextID).WithNewWindow(true).Do(browser)
	if err != nil {
		t.Fatal(err)
	}
	tabCtx, closeTab := chromedp.NewContext(chromium.ctx, chromedp.WithTargetID(tab))
	tabCtx, cancel := context.WithTimeout(tabCtx, 90*time.Second)
	t.Cleanup(func() { cancel(); closeTab() })
	return tabCtx
}

// clickToNextPage clicks the button sel selects and waits until the page
// it leads to has loaded, its scripts run.
func clickToNextPage(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	run(t, ctx, chromedp.Evaluate(`window.before = true`, nil), chromedp.Click(sel, chromedp.ByQuery))
	waitFor(t, "on the next page", func() bool {
		// An evaluation fails while the browser is between pages.
		var loaded bool
		err := chromedp.Run(ctx, chromedp.Evaluate(`!window.before && document.readyState === "complete"`, &loaded))
		return err == nil && loaded
	})
}

// waitFor polls cond until it holds, for at most 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s, still not %s", what)
		}
		<-time.After(20 * time.Millisecond)
	}
}

// The "Active sessions" card, with each store: one user signed in on two
// browsers (a laptop and a phone) and a third client over HTTP. The card
// lists the three (with Redis; the cookie store says it cannot) and their
// three Scalekit sessions. Signing out of one device's session from the
// laptop ends exactly that one; "Sign out of other devices" leaves the
// laptop's alone, in the app and at Scalekit, so that the phone's and the
// client's next sign-in shows Scalekit's form; a logout in the laptop's
// first tab shows in its second tab without a reload. The app's
// OnSessionEnd hook heard of each ended session once, with its reason.
func TestBrowserActiveSessions(t *testing.T) {
	for _, store := range []string{"redis", "cookie"} {
		t.Run(store, func(t *testing.T) {
			// Credentials of its own, as -client-id and -client-secret give
			// them, so that a screenshot of the card shows no random secret.
			d := startDemo(t, options{Store: store, ClientID: "skc_demo_app", ClientSecret: "demo-secret"})
			browsers := newBrowsers(t, 2)
			laptop, phone := browsers[0], browsers[1]
			shots := docsShots(t, store == "redis")
			const email = "ada@example.com"
			const chrome, goClient = "Headless Chrome on Linux", "Go-http-client"
			signInWithForm(t, laptop, d, email)
			signInWithForm(t, phone, d, email)
			client := browserlessClient(t)
			follow(t, client, d.AppURL+"/login?login_hint="+email)
			user := d.Fake.User(email)

			run(t, laptop, chromedp.Navigate(d.AppURL))
			card := readCard(t, laptop)
			var laptopSID string
			run(t, laptop, chromedp.Text("#sid", &laptopSID, chromedp.ByID))
			if got, want := devices(card.Provider), []string{goClient + ", 127.0.0.1", chrome + ", 127.0.0.1", chrome + ", 127.0.0.1"}; !slices.Equal(got, want) || card.current(card.Provider) != laptopSID {
				t.Fatalf("Scalekit sessions %v, want %v with the laptop's (%s) marked", card.Provider, want, laptopSID)
			}
			clientSID := rowOf(t, card.Provider, goClient)
			var clientHandle string
			switch store {
			case "redis":
				if got, want := devices(card.App), []string{goClient, chrome, chrome}; !slices.Equal(got, want) || card.current(card.App) == "" || card.Unlisted {
					t.Fatalf("app sessions %+v, want %v with this device marked", card.App, want)
				}
				clientHandle = currentHandle(t, body(t, follow(t, client, d.AppURL+"/")))
				if rowOf(t, card.App, goClient) != clientHandle {
					t.Fatalf("the laptop lists the client's session as %s, the client as %s", rowOf(t, card.App, goClient), clientHandle)
				}
				shots("active-sessions.png", screenshotOf(t, laptop, "#sessions"))

				// Sign out of the client's session, by its handle.
				clickToNextPage(t, laptop, fmt.Sprintf(`#app-sessions tr[data-handle="%s"] button`, clientHandle))
				if card = readCard(t, laptop); len(card.App) != 2 || slices.ContainsFunc(card.App, func(r shownRow) bool { return r.ID == clientHandle }) {
					t.Fatalf("after signing out of the client, the laptop lists %+v", card.App)
				}
				if !slices.Equal(card.Heard, []string{string(logout.EndByUser)}) {
					t.Errorf("the card says the app heard of %v, want the one session ended by the user", card.Heard)
				}
			case "cookie":
				if !card.Unlisted || len(card.App) != 0 {
					t.Fatalf("with sealed cookies the card lists %+v and says it cannot list: %v; want no list, and that said", card.App, card.Unlisted)
				}
				// Sign out of the client's Scalekit session: Scalekit tells
				// the app, which ends the client's app session too.
				clickToNextPage(t, laptop, fmt.Sprintf(`#provider-sessions tr[data-sid="%s"] button`, clientSID))
				card = readCard(t, laptop)
				if slices.ContainsFunc(card.Provider, func(r shownRow) bool { return r.ID == clientSID }) {
					t.Error("the laptop still lists the client's Scalekit session")
				}
				if !slices.Contains(card.Heard, string(logout.EndBackChannel)) || !slices.Contains(card.Heard, string(logout.EndWebhook)) {
					t.Errorf("the card says the app heard of %v, want the back-channel logout and the webhook", card.Heard)
				}
				if ses, _ := d.Fake.Session(clientSID); ses.Status != scalekittest.StatusRevoked {
					t.Errorf("the client's Scalekit session is %s, want revoked", ses.Status)
				}
			}
			if signedInPage(body(t, follow(t, client, d.AppURL+"/")), email) {
				t.Error("the client is still signed in after the laptop signed it out")
			}
			for name, ctx := range map[string]context.Context{"laptop": laptop, "phone": phone} {
				var shown string
				run(t, ctx, chromedp.Navigate(d.AppURL), chromedp.WaitVisible("#email", chromedp.ByID), chromedp.Text("#email", &shown, chromedp.ByID))
				if shown != email {
					t.Errorf("the %s shows %q after the client was signed out, want still %s", name, shown, email)
				}
			}
			phoneHandle := ""
			if store == "redis" {
				shown := readCard(t, phone)
				phoneHandle = shown.current(shown.App)
			}

			// A second tab of the laptop, open on the signed-in page.
			tab := secondTab(t, laptop)
			run(t, tab, chromedp.Navigate(d.AppURL), chromedp.WaitVisible("#sessions", chromedp.ByID), chromedp.Evaluate(`window.notReloaded = true`, nil))

			// Sign out of the other devices: the laptop's sessions alone are
			// left, in the app and, once the handler has ended the others
			// there, at Scalekit.
			clickToNextPage(t, laptop, "#sign-out-others")
			waitFor(t, "the laptop's Scalekit session alone", func() bool { return slices.Equal(d.Fake.ActiveSessions(user.ID), []string{laptopSID}) })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := d.Fake.WaitDeliveries(ctx); err != nil {
				t.Fatal(err)
			}
			run(t, laptop, chromedp.Navigate(d.AppURL))
			card = readCard(t, laptop)
			if len(card.Provider) != 1 || card.current(card.Provider) != laptopSID {
				t.Errorf("after signing out of the other devices the laptop lists at Scalekit %+v, want its own alone", card.Provider)
			}
			if store == "redis" && (len(card.App) != 1 || !card.App[0].Current) {
				t.Errorf("after signing out of the other devices the laptop lists %+v, want its own alone", card.App)
			}
			var signedOut bool
			run(t, phone, chromedp.Navigate(d.AppURL), chromedp.WaitReady("body", chromedp.ByQuery),
				chromedp.Evaluate(`!!document.getElementById("signed-out")`, &signedOut))
			if !signedOut {
				t.Error("the phone's app session survived signing out of the other devices")
			}
			if !nextSignInShowsForm(t, phone, d) {
				t.Error("the phone's next sign-in walked straight back in: its Scalekit session survived")
			}
			if page := body(t, follow(t, client, d.AppURL+"/login")); !strings.Contains(page, `id="signin-title"`) {
				t.Error("the client's next sign-in walked straight back in: its Scalekit session survived")
			}

			// Sign out in the first tab; the second shows it, unreloaded.
			clickToNextPage(t, laptop, "#sign-out")
			run(t, laptop, chromedp.WaitVisible("#logged-out", chromedp.ByID))
			var unreloaded bool
			told, cancelTold := context.WithTimeout(tab, 10*time.Second)
			defer cancelTold()
			run(t, told,
				chromedp.WaitVisible("#signed-out-elsewhere", chromedp.ByID),
				chromedp.WaitNotVisible("#signed-in", chromedp.ByID),
				chromedp.WaitNotVisible("#sessions", chromedp.ByID),
				chromedp.WaitVisible(`#layers tr[data-layer="app"][data-state="ended"]`, chromedp.ByQuery),
				chromedp.Evaluate(`window.notReloaded === true && 'signedOut' in document.documentElement.dataset`, &unreloaded),
			)
			if !unreloaded {
				t.Error("the second tab was reloaded, or its page not marked signed out")
			}
			if err := d.Fake.WaitDeliveries(ctx); err != nil {
				t.Fatal(err)
			}

			// Each ending reached the hook once, with its reason.
			switch got := endingsOf(d, user.ID); store {
			case "redis":
				want := []string{"ended-by-user:" + clientHandle, "other-devices:" + phoneHandle, "logout:" + card.App[0].ID}
				if !slices.Equal(got, want) {
					t.Errorf("the hook heard %v, want %v", got, want)
				}
			case "cookie":
				// A sealed session has no handle the store can name: one
				// event stands for each revocation, and the provider's
				// notifications each bring one of their own.
				for _, reason := range []logout.EndReason{logout.EndOtherDevices, logout.EndLogout} {
					if n := heard(d, user.ID, reason); n != 1 {
						t.Errorf("the hook heard %v: %d %s events, want 1", got, n, reason)
					}
				}
				if !heardFrom(d, clientSID, logout.EndBackChannel) || !heardFrom(d, clientSID, logout.EndWebhook) {
					t.Errorf("the hook did not hear of the client's Scalekit session's end by back-channel and webhook: %v", got)
				}
			}
		})
	}
}

// heard is how many endings of the user's sessions the hook heard for the
// reason given.
func heard(d *demo, subject string, reason logout.EndReason) int {
	n := 0
	for _, e := range d.ends.endings() {
		if e.Subject == subject && e.Reason == reason {
			n++
		}
	}
	return n
}

// heardFrom reports whether the hook heard that Scalekit session sid ended,
// for the reason given.
func heardFrom(d *demo, sid string, reason logout.EndReason) bool {
	return slices.ContainsFunc(d.ends.endings(), func(e ending) bool { return e.SessionID == sid && e.Reason == reason })
}
