// SPDX-License-Identifier: Apache-2.0

// The Active sessions card: the user's sessions in the app and at the
// provider, and the buttons that end them.

package main

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/endsession/logout"
)

// The "Active sessions" card: where the signed-in user is signed in to the
// app, and at the provider, with a button to sign out of each, and one for
// every other device at once.

// sessionsPage is where the card's buttons send the browser back
// (Config.SessionsPage): the signed-in page, at the card.
const sessionsPage = "/#sessions"

// sessionsCard is the card of one signed-in page.
type sessionsCard struct {
	// Listed is set when the store can list the user's app sessions (a
	// RedisStore); a sealed cookie store cannot, and the card says so.
	Listed bool
	App    []appSession
	// More is set when the user has more app sessions than one page of the
	// list holds.
	More bool
	// AppError and ProviderError say why a list could not be read.
	AppError string

	// Provider is set when the app can read the user's sessions at the
	// provider (it has a client secret for the session API).
	Provider      bool
	AtProvider    []providerSession
	ProviderError string

	// Heard is what the app's OnSessionEnd hook heard of this user, newest
	// first.
	Heard []heardEnding

	// RevokeCommand revokes the user's sessions at the embedded Scalekit
	// from a shell; empty against a real provider.
	RevokeCommand string
}

type appSession struct {
	Handle, Device    string
	Started, LastSeen string
	Current           bool
}

type providerSession struct {
	ID, Device, IP      string
	Started, LastActive string
	Current             bool
}

type heardEnding struct {
	At, Reason, Handle, SessionID string
}

// cardShown is how many endings the card shows.
const cardShown = 6

// sessionsCard builds the card for r, whose session is s.
func (a *app) sessionsCard(r *http.Request, s logout.Session) *sessionsCard {
	c := &sessionsCard{Provider: a.sessionAPI}
	if _, ok := a.store.(logout.Lister); ok {
		c.Listed = true
		list, next, err := a.logout.ListSessions(r, "")
		if err != nil {
			a.log.Error("listing the user's sessions", "error", err)
			c.AppError = "The store could not list them: see the app's log."
		}
		c.More = next != ""
		slices.SortFunc(list, func(x, y logout.SessionInfo) int {
			return cmp.Or(trueFirst(x.Current, y.Current), y.CreatedAt.Compare(x.CreatedAt))
		})
		for _, i := range list {
			c.App = append(c.App, appSession{
				Handle: i.Handle, Device: i.Device, Current: i.Current,
				Started: clock(i.CreatedAt), LastSeen: clock(i.LastSeen),
			})
		}
	}
	if c.Provider {
		list, err := a.logout.ProviderSessions(r)
		if err != nil {
			a.log.Warn("reading the user's sessions at the provider", "error", err)
			c.ProviderError = "The provider's session API did not answer: see the app's log."
		}
		slices.SortFunc(list, func(x, y logout.ProviderSession) int {
			return cmp.Or(trueFirst(x.ID == s.SessionID, y.ID == s.SessionID), y.CreatedAt.Compare(x.CreatedAt))
		})
		for _, p := range list {
			c.AtProvider = append(c.AtProvider, providerSession{
				ID: p.ID, Device: deviceOf(p.UserAgent), IP: p.IP, Current: p.ID == s.SessionID,
				Started: clock(p.CreatedAt), LastActive: clock(p.LastActiveAt),
			})
		}
	}
	for _, e := range a.ends.of(s.Subject, cardShown) {
		c.Heard = append(c.Heard, heardEnding{At: clock(e.At), Reason: string(e.Reason), Handle: e.Handle, SessionID: e.SessionID})
	}
	if a.fake != nil {
		c.RevokeCommand = revokeCommand(a.issuer, a.oauth.ClientID, a.oauth.ClientSecret, s.Subject)
	}
	return c
}

// trueFirst orders true before false: this device's session heads its
// list, the others follow, newest first.
func trueFirst(x, y bool) int {
	switch {
	case x == y:
		return 0
	case x:
		return -1
	}
	return 1
}

// clock is a time of day for the card, or "" for an unknown time.
func clock(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format(time.TimeOnly)
}

// endProviderSession signs the user out of one of their sessions at the
// provider: a POST with the session's ID in the form field "sid". Only the
// user's own sessions are ended (404 otherwise). The provider then tells
// the app, by back-channel logout or webhook, and the app ends its own
// session on that device; with the embedded Scalekit the demo waits for
// that, so that the page it returns to shows it.
func (a *app) endProviderSession(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	switch err := a.logout.EndProviderSession(r, r.PostFormValue("sid")); {
	case errors.Is(err, logout.ErrNoSession):
		http.Error(w, "no such session", http.StatusNotFound)
		return
	case err != nil:
		a.log.Error("ending a session at the provider", "error", err)
		http.Error(w, "the provider's session API failed; try again", http.StatusBadGateway)
		return
	}
	if a.fake != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		if err := a.fake.WaitDeliveries(ctx); err != nil {
			a.log.Warn("Scalekit's notifications are still on their way", "error", err)
		}
	}
	http.Redirect(w, r, sessionsPage, http.StatusSeeOther)
}

// revokeCommand is a command for a POSIX shell that revokes every session
// of the user at the provider's session API, as an administrator or a back
// office would: it takes an API token with the app's client credentials,
// then calls the revoke endpoint. sed reads the token out of the JSON, so
// the command needs nothing but curl.
func revokeCommand(issuer, clientID, clientSecret, userID string) string {
	issuer = strings.TrimSuffix(issuer, "/")
	return "token=$(curl -fsS -u " + shellQuote(clientID+":"+clientSecret) +
		" -d grant_type=client_credentials " + shellQuote(issuer+"/oauth/token") +
		` | sed -n 's/.*"access_token" *: *"\([^"]*\)".*/\1/p')` + "\n" +
		`curl -fsS -X POST -H "Authorization: Bearer $token" ` +
		shellQuote(issuer+"/api/v1/users/"+url.PathEscape(userID)+"/sessions/revoke")
}

// shellQuote quotes s as one word for a POSIX shell: in single quotes,
// which keep everything but a single quote, written '\”.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
