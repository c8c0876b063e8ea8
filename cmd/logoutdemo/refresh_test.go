// SPDX-License-Identifier: Apache-2.0

package main

import (
	"strings"
	"testing"
	"time"

	"github.com/endsession/logout/scalekittest"
)

// TestRefreshEndsRevokedSession: access tokens that expire within the
// demo's refresh margin make every page refresh them; once the provider
// session is revoked (and the app is not told), the next page's refresh is
// refused and the app session ends with it.
func TestRefreshEndsRevokedSession(t *testing.T) {
	for _, store := range []string{"redis", "cookie"} {
		t.Run(store, func(t *testing.T) {
			d := startDemo(t, options{Store: store, Unnotified: true, Fake: scalekittest.Config{AccessTokenLifetime: 30 * time.Second}})
			c := browserlessClient(t)
			const email = "ada@example.com"
			if page := body(t, follow(t, c, d.AppURL+"/login?login_hint="+email)); !signedInPage(page, email) {
				t.Fatalf("not signed in after the sign-in:\n%s", page)
			}
			if page := body(t, follow(t, c, d.AppURL+"/")); !signedInPage(page, email) {
				t.Fatalf("a refresh signed the user out:\n%s", page)
			}
			sid := d.Fake.ActiveSessions(d.Fake.User(email).ID)[0]
			if _, err := d.Fake.RevokeSession(sid); err != nil {
				t.Fatal(err)
			}
			if page := body(t, follow(t, c, d.AppURL+"/")); !strings.Contains(page, `id="signed-out"`) {
				t.Errorf("after the provider revoked the session, the next page still signs the user in:\n%s", page)
			}
			if page := body(t, follow(t, c, d.AppURL+"/")); signedInPage(page, email) {
				t.Error("the app session came back")
			}
		})
	}
}
