// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/endsession/logout/scalekittest"
)

// signInWithForm signs email in through the provider's form in ctx.
func signInWithForm(t *testing.T, ctx context.Context, d *demo, email string) {
	t.Helper()
	run(t, ctx,
		chromedp.Navigate(d.AppURL),
		chromedp.Click("#sign-in", chromedp.ByID),
		chromedp.WaitVisible("#signin-title", chromedp.ByID),
		chromedp.SetValue("#email", email, chromedp.ByID),
		chromedp.Click("#continue", chromedp.ByID),
		chromedp.WaitVisible("#sign-out", chromedp.ByID),
	)
}

// nextSignInShowsForm reports whether "Sign in" in ctx stops at the
// provider's form (true) or walks straight back in (false).
func nextSignInShowsForm(t *testing.T, ctx context.Context, d *demo) bool {
	t.Helper()
	var page string
	run(t, ctx,
		chromedp.Navigate(d.AppURL+"/login"),
		chromedp.WaitReady("body", chromedp.ByQuery),
		chromedp.OuterHTML("html", &page, chromedp.ByQuery),
	)
	return strings.Contains(page, `id="signin-title"`)
}

// providerStatus is the status of the user's only provider session.
func providerStatus(t *testing.T, d *demo, email string) (string, string) {
	t.Helper()
	sessions := d.Fake.Sessions(d.Fake.User(email).ID)
	if len(sessions) == 0 {
		t.Fatalf("no provider session for %s", email)
	}
	last := sessions[len(sessions)-1]
	return last.ID, last.Status
}

// failRequests makes the browser fail every request whose URL matches
// pattern, as a closed tab or a lost network would, and returns how many it
// failed so far.
func failRequests(t *testing.T, ctx context.Context, pattern string) func() int {
	t.Helper()
	var n atomic.Int32
	chromedp.ListenTarget(ctx, func(ev any) {
		if e, ok := ev.(*fetch.EventRequestPaused); ok {
			n.Add(1)
			go func() {
				c := chromedp.FromContext(ctx)
				fetch.FailRequest(e.RequestID, network.ErrorReasonAborted).Do(cdp.WithExecutor(ctx, c.Target))
			}()
		}
	})
	run(t, ctx, fetch.Enable().WithPatterns([]*fetch.RequestPattern{{URLPattern: pattern}}))
	return func() int { return int(n.Load()) }
}

// A logout whose navigation to the provider never happens (the tab closed,
// the network went) still ends the provider session, from the server, once
// the grace period is over: the next sign-in asks for credentials.
func TestBrowserAbandonedLogout(t *testing.T) {
	for _, store := range []string{"redis", "cookie"} {
		t.Run(store, func(t *testing.T) {
			d := startDemo(t, options{Store: store})
			ctx := newBrowser(t)
			const email = "ada@example.com"
			signInWithForm(t, ctx, d, email)
			sid, _ := providerStatus(t, d, email)

			// The browser never reaches the end-session endpoint.
			blocked := failRequests(t, ctx, "*/oidc/logout*")
			start := time.Now()
			run(t, ctx, chromedp.Click("#sign-out", chromedp.ByID))
			deadline := time.Now().Add(10 * time.Second)
			for {
				ses, _ := d.Fake.Session(sid)
				if ses.Status == scalekittest.StatusRevoked {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("provider session still %s 10 s after an abandoned logout", ses.Status)
				}
				<-time.After(20 * time.Millisecond)
			}
			t.Logf("provider session ended %v after the abandoned logout (backstop delay %v)", time.Since(start).Round(time.Millisecond), 300*time.Millisecond)
			if n := len(d.Fake.LogoutRequests()); n != 0 {
				t.Fatalf("the provider saw %d logout requests; the navigation should have been blocked", n)
			}
			if blocked() == 0 {
				t.Fatal("the browser never tried the end-session endpoint")
			}
			run(t, ctx, fetch.Disable())
			if !nextSignInShowsForm(t, ctx, d) {
				t.Error("after an abandoned logout the next sign-in walked straight back in")
			}
		})
	}
}

// "Sign out everywhere" in one browser ends the other browser's sessions
// too, the app's and Scalekit's: its next sign-in asks for credentials.
func TestBrowserSignOutEverywhere(t *testing.T) {
	for _, store := range []string{"redis", "cookie"} {
		t.Run(store, func(t *testing.T) {
			d := startDemo(t, options{Store: store})
			ctxs := newBrowsers(t, 2)
			laptop, phone := ctxs[0], ctxs[1]
			const email = "ada@example.com"
			signInWithForm(t, laptop, d, email)
			signInWithForm(t, phone, d, email)
			if n := len(d.Fake.ActiveSessions(d.Fake.User(email).ID)); n != 2 {
				t.Fatalf("%d provider sessions, want 2", n)
			}
			run(t, laptop,
				chromedp.Click("#sign-out-everywhere", chromedp.ByID),
				chromedp.WaitVisible("#logged-out", chromedp.ByID),
			)
			var signedOut bool
			run(t, phone,
				chromedp.Navigate(d.AppURL),
				chromedp.WaitReady("body", chromedp.ByQuery),
				chromedp.Evaluate(`!!document.getElementById("signed-out")`, &signedOut),
			)
			if !signedOut {
				t.Error("the phone's app session survived sign out everywhere")
			}
			if !nextSignInShowsForm(t, phone, d) {
				t.Error("the phone's next sign-in walked straight back in: its Scalekit session survived")
			}
			if !nextSignInShowsForm(t, laptop, d) {
				t.Error("the laptop's next sign-in walked straight back in")
			}
		})
	}
}
