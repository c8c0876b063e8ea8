// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"net/url"
	"testing"
	"time"
)

// The demo's idle timeout signs an idle user out with its embedded Redis,
// as it does against a real one: the session's record runs out while nobody
// uses it, and the next page is signed out.
func TestDemoIdleTimeoutWithEmbeddedRedis(t *testing.T) {
	const idle = 2 * time.Second
	d := startDemo(t, options{Store: "redis", IdleTimeout: idle})
	c := browserlessClient(t)
	const email = "ada@example.com"
	if page := body(t, follow(t, c, d.AppURL+"/login?login_hint="+email)); !signedInPage(page, email) {
		t.Fatalf("after sign-in the home page does not show %s", email)
	}
	// Wait, without touching the session, until its record is gone.
	deadline := time.Now().Add(idle + 5*time.Second)
	for {
		keys, err := d.Redis.Keys(context.Background(), "logout:*:s:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the session's record is still in the embedded Redis %v after sign-in, with an idle timeout of %v", idle+5*time.Second, idle)
		}
		<-time.After(50 * time.Millisecond)
	}
	appURL, _ := url.Parse(d.AppURL)
	if len(c.Jar.Cookies(appURL)) == 0 {
		t.Fatal("the browser lost its cookie; the test would prove nothing")
	}
	if page := body(t, follow(t, c, d.AppURL+"/")); signedInPage(page, email) {
		t.Error("an idle user is still signed in")
	}
}
