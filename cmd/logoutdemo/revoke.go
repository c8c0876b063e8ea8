// SPDX-License-Identifier: Apache-2.0

// Revoking this browser's Scalekit session as an administrator would.

package main

import (
	"context"
	"net/http"
	"time"
)

// revoke ends this browser's Scalekit session at the embedded Scalekit, as
// an administrator can from Scalekit's dashboard, and waits for the
// notifications that follows (a back-channel logout token and a user.logout
// webhook) to reach the app, which ends its own session on either. The page
// it sends the browser to then shows every layer after the fact.
func (a *app) revoke(w http.ResponseWriter, r *http.Request) {
	s, err := a.logout.Session(r)
	if err != nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	if _, err := a.fake.RevokeSession(s.SessionID); err != nil {
		a.log.Warn("revoking the session at the embedded Scalekit", "sid", s.SessionID, "error", err)
		http.Error(w, "Scalekit could not revoke the session: it has ended already.", http.StatusConflict)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := a.fake.WaitDeliveries(ctx); err != nil {
		a.log.Warn("Scalekit's notifications are still on their way", "error", err)
	}
	http.Redirect(w, r, "/?after="+afterRevoked, http.StatusSeeOther)
}
