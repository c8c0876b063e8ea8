// SPDX-License-Identifier: Apache-2.0

// The layer panel: which of the three sessions still sign this browser in,
// and why.

package main

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/endsession/logout"
	"github.com/endsession/logout/scalekittest"
)

// The layer panel. A signed-in user has up to three sessions: the app's,
// Scalekit's and, with enterprise SSO, the upstream identity provider's. A
// real app sees only the first. The demo also reads the embedded Scalekit
// and its upstream provider, to show after each action which sessions would
// still sign this browser in, and why.

// ssoDomain and sloDomain are the email domains the embedded Scalekit
// federates to its two upstream identity providers: the first through a
// connection with IdP logout off, whose session outlives Scalekit's, the
// second through one with IdP logout on, whose session a logout ends too.
// Every other domain signs in at Scalekit.
const (
	ssoDomain = "sso.example"
	sloDomain = "slo.example"
)

// lastSignInCookie remembers, for the panel alone, whom this browser signed
// in last and with which Scalekit session, so that the panel can follow
// those sessions after the app's has ended. It holds an email address and
// the ID token's sid claim, an identifier that opens nothing, never a
// token.
const lastSignInCookie = "demo_last_signin"

type lastSignIn struct{ Email, SessionID string }

func rememberSignIn(w http.ResponseWriter, r *http.Request, who lastSignIn) {
	v := url.Values{"email": {who.Email}, "sid": {who.SessionID}}
	http.SetCookie(w, &http.Cookie{Name: lastSignInCookie, Value: v.Encode(), Path: "/",
		MaxAge: 24 * 60 * 60, HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil})
}

func readLastSignIn(r *http.Request) lastSignIn {
	c, err := r.Cookie(lastSignInCookie)
	if err != nil {
		return lastSignIn{}
	}
	v, err := url.ParseQuery(c.Value)
	if err != nil {
		return lastSignIn{}
	}
	return lastSignIn{Email: v.Get("email"), SessionID: v.Get("sid")}
}

// panel is the layer panel of one page.
type panel struct {
	Rows []layerRow
	// Next is what the next sign-in on this browser will do: set once the
	// app session has ended, with the embedded Scalekit.
	Next *layerRow
	// Callout explains the action the page follows, named by its "after"
	// parameter.
	Callout string
	After   string
	// Pending is set while the backstop has yet to end a Scalekit session
	// that a logout left alive; the page reloads the panel until then.
	Pending  bool
	Embedded bool
	// Who is the user this browser signed in as last, or "".
	Who string
}

// layerRow is one layer: Layer and State are the row's data-layer and
// data-state, for people who script against the page (the browser tests
// do); Tone colours it.
type layerRow struct {
	Layer, Title string
	State, Label string
	Detail, Why  string
	Tone         string // "live", "ended", "risk" (alive and signs the browser back in) or "guarded"
}

// Callouts name the demo's actions that leave the browser on the app's own
// pages; they appear above the panel.
const (
	afterFetch     = "fetch"
	afterAbandoned = "abandoned"
	afterRevoked   = "revoked"
)

// backstopGrace is how long after its due time the panel keeps waiting for
// the backstop: its session-API calls, and their retries.
const backstopGrace = 5 * time.Second

func (a *app) layersFragment(w http.ResponseWriter, r *http.Request) {
	s, _ := a.logout.Session(r)
	page(w, "layers", a.panel(r, s))
}

// panel builds the layer panel for the browser of r, whose app session is s
// (zero when it has none).
func (a *app) panel(r *http.Request, s logout.Session) panel {
	alive := s.Subject != ""
	who := readLastSignIn(r)
	if alive {
		who = lastSignIn{Email: s.Email, SessionID: s.SessionID}
	}
	p := panel{Embedded: a.fake != nil, Who: who.Email, Rows: []layerRow{a.appRow(alive, who)}}
	if a.fake == nil {
		return p
	}
	ses, err := a.fake.Session(who.SessionID)
	if who.SessionID == "" || err != nil {
		p.Rows = append(p.Rows,
			layerRow{Layer: "scalekit", Title: "Scalekit", State: "unknown", Label: "none", Tone: "ended",
				Why: "No sign-in on this browser yet."},
			layerRow{Layer: "upstream", Title: "Upstream identity provider", State: "unknown", Label: "none", Tone: "ended",
				Why: "Users of @" + ssoDomain + " and @" + sloDomain + " sign in through one: “Sign in with SSO”."})
		return p
	}
	up, provider, upAlive := a.upstreamSession(ses)
	var next *layerRow
	if !alive {
		next = a.nextSignIn(r, ses, provider, upAlive)
	}
	p.Rows = append(p.Rows, a.scalekitRow(ses, alive, &p), a.upstreamRow(ses, up, provider, upAlive, alive, next))
	p.Next = next
	switch after := r.URL.Query().Get("after"); after {
	case afterFetch:
		p.After, p.Callout = after, "Why fetch() left you signed in at Scalekit: the page sent Scalekit's logout request with fetch(), "+
			"which does not send Scalekit's cookie to Scalekit's origin, so Scalekit could not tell which session to end and ended none. "+
			"Only a navigation, like the Sign out button's form, carries that cookie."
	case afterAbandoned:
		p.After, p.Callout = after, "The app ended its own session and answered the script with Scalekit's logout URL, "+
			"but the browser never went there, as when a tab closes mid-logout: Scalekit's session lives on until the backstop ends it from the server."
	case afterRevoked:
		p.After, p.Callout = after, "Scalekit revoked this session, as an administrator can, and told the app: "+
			a.notifications(ses.ID)+". The app ended its own session on hearing it."
	}
	return p
}

func (a *app) appRow(alive bool, who lastSignIn) layerRow {
	row := layerRow{Layer: "app", Title: "This app", Detail: "on " + a.instance}
	switch {
	case alive && a.storeKind == "cookie":
		row.State, row.Label, row.Tone = "alive", "alive", "live"
		row.Why = "Sealed in this browser's cookie; " + a.instance + " checked its session ID against the revocation list in Redis."
	case alive:
		row.State, row.Label, row.Tone = "alive", "alive", "live"
		row.Why = "A record in Redis that every instance shares, named by this browser's cookie; " + a.instance + " found it for this page."
	case who.SessionID != "":
		row.State, row.Label, row.Tone = "ended", "ended", "ended"
		row.Why = "No session for this browser: the store ended it, so no copy of its cookie opens it again, on any instance."
	default:
		row.State, row.Label, row.Tone, row.Detail = "none", "none", "ended", ""
		row.Why = "No sign-in on this browser yet."
	}
	return row
}

func (a *app) scalekitRow(ses scalekittest.Session, alive bool, p *panel) layerRow {
	row := layerRow{Layer: "scalekit", Title: "Scalekit", State: ses.Status, Label: ses.Status, Detail: ses.ID, Tone: "ended"}
	ended := ses.EndedAt.Local().Format(time.TimeOnly)
	switch ses.Status {
	case scalekittest.StatusActive:
		if alive {
			row.Tone = "live"
			row.Why = "Scalekit's own cookie, on its own site, holds it: other apps of this environment sign you in without a form (single sign-on)."
			break
		}
		row.Tone = "risk"
		switch req, ok := a.lastLogoutRequest(ses.ID); {
		case ok && !req.HadCookie && req.SecFetchMode != "navigate":
			row.Why = "Still active: the logout request Scalekit got for it was a fetch() (Sec-Fetch-Mode: " + req.SecFetchMode +
				"), which carried no Scalekit cookie, so it ended nothing."
		case ok && !req.HadCookie:
			row.Why = "Still active: the logout request Scalekit got for it carried no Scalekit cookie, so it ended nothing."
		default:
			row.Why = "Still active: the browser never went to Scalekit's /oidc/logout, the only place its cookie ends it."
		}
		if due, ok := a.backstops.dueAt(ses.ID); ok {
			if time.Now().Before(due.Add(backstopGrace)) {
				p.Pending = true
				row.Why += " The backstop ends it from the server at " + due.Local().Format(time.TimeOnly) + "; this panel reloads until then."
			} else {
				row.Why += " The backstop was due at " + due.Local().Format(time.TimeOnly) + " and has not ended it: see the app's log."
			}
		}
	case scalekittest.StatusLogout:
		row.Why = "Ended at " + ended + " by this browser's visit to /oidc/logout, which carried Scalekit's cookie."
	case scalekittest.StatusRevoked:
		row.Why = "Ended at " + ended + " from a server, through Scalekit's session API: the backstop, “sign out everywhere”, or an administrator."
	case scalekittest.StatusExpired:
		row.Why = "Ended at " + ended + " by Scalekit's idle or absolute timeout."
	}
	return row
}

// upstreamSession is the upstream provider's session that signed ses in,
// the provider, and whether the session is still alive.
func (a *app) upstreamSession(ses scalekittest.Session) (scalekittest.UpstreamSession, *scalekittest.Upstream, bool) {
	up := a.fake.UpstreamOf(ses.ConnectionID)
	if ses.UpstreamSessionID == "" || up == nil {
		return scalekittest.UpstreamSession{}, nil, false
	}
	for _, u := range up.Sessions() {
		if u.ID == ses.UpstreamSessionID {
			return u, up, u.Active
		}
	}
	return scalekittest.UpstreamSession{}, up, false
}

func (a *app) upstreamRow(ses scalekittest.Session, up scalekittest.UpstreamSession, provider *scalekittest.Upstream, upAlive, alive bool, next *layerRow) layerRow {
	row := layerRow{Layer: "upstream", Title: "Upstream identity provider", Detail: up.ID}
	if provider == nil {
		row.State, row.Label, row.Tone = "direct", "not used", "ended"
		row.Why = "This user signed in at Scalekit directly; only @" + ssoDomain + " and @" + sloDomain + " go through an upstream provider."
		return row
	}
	row.Title += " (@" + strings.Join(provider.Domains, ", @") + ")"
	switch {
	case upAlive:
		row.State, row.Label = "alive", "alive"
		row.Why = "Its own cookie, on its own site (" + provider.URL + "), holds it for " + up.Email + ". "
		switch {
		case provider.IDPLogoutRequired && alive:
			row.Why += "This connection has IdP logout on (Scalekit's idp_logout_required): “Sign out” will take the browser through this provider's own logout too."
		case provider.IDPLogoutRequired:
			row.Why += "This connection has IdP logout on, but Scalekit's session did not end at /oidc/logout in this browser, so the browser never went through this provider's logout."
		default:
			row.Why += "This connection has IdP logout off (Scalekit's idp_logout_required): no logout of the app or of Scalekit ends it. That is single sign-on."
		}
		switch {
		case alive:
			row.Tone = "live"
		case next != nil && next.State == "upstream-form":
			row.Tone = "guarded"
		default:
			row.Tone = "risk"
		}
	case a.idpLogoutEnded(ses.ID):
		row.State, row.Label, row.Tone = "none", "none", "ended"
		row.Why = "Ended at " + up.EndedAt.Local().Format(time.TimeOnly) + " with Scalekit's session: this connection has IdP logout on, " +
			"so Scalekit's /oidc/logout sent the browser through this provider's own logout (" + provider.URL + "/logout) and back."
	default:
		row.State, row.Label, row.Tone = "none", "none", "ended"
		row.Why = "Ended at " + up.EndedAt.Local().Format(time.TimeOnly) + ": signed out there, or replaced by a newer sign-in in this browser."
	}
	return row
}

// idpLogoutEnded reports whether the logout that ended Scalekit session sid
// went through the upstream provider's own logout and came back.
func (a *app) idpLogoutEnded(sid string) bool {
	for _, l := range a.fake.LogoutRequests() {
		if l.EndedSession == sid && l.IDPLogout != "" && l.IDPLogoutReturned {
			return true
		}
	}
	return false
}

// nextSignIn says what the next sign-in on this browser will show, by the
// rules the embedded Scalekit and its upstream follow: a live session
// passes the browser through unless prompt=login asks for a fresh sign-in,
// which reaches the upstream only when Scalekit forwards it.
func (a *app) nextSignIn(r *http.Request, ses scalekittest.Session, provider *scalekittest.Upstream, upAlive bool) *layerRow {
	prompt := a.logout.PromptLogin(r)
	federated := provider != nil
	row := &layerRow{Layer: "next", Title: "Next sign-in"}
	switch {
	case ses.Status == scalekittest.StatusActive && !prompt:
		row.State, row.Label, row.Tone = "pass-through", "no form: straight back in", "risk"
		row.Why = "Scalekit's session is still active and nothing asks for a fresh sign-in: “Sign in” passes straight through."
	case federated && upAlive && !prompt:
		row.State, row.Label, row.Tone = "pass-through", "no form: straight back in", "risk"
		row.Why = "Scalekit's session ended, but the upstream provider's lives on and nothing asks for a fresh sign-in (-reauth=false): " +
			"“Sign in with SSO” passes through both without a password. On a shared computer, the next person walks into this account."
	case federated && upAlive && !provider.ForwardPrompt:
		row.State, row.Label, row.Tone = "scalekit-form", "Scalekit's form: email only", "risk"
		row.Why = "The sign-in sends prompt=login, so Scalekit asks for the email again, but it does not pass prompt=login on " +
			"(-upstream-forward-prompt=false): the upstream provider's live session signs you in without a password."
	case federated && upAlive:
		row.State, row.Label, row.Tone = "upstream-form", "the upstream's form: password", "live"
		row.Why = "This browser signed out with re-authentication asked, so the sign-in sends prompt=login and Scalekit passes it on: " +
			"the upstream provider asks for the password although its session lives."
	case federated && a.idpLogoutEnded(ses.ID):
		row.State, row.Label, row.Tone = "upstream-form", "the upstream's form: password", "live"
		row.Why = "The upstream provider's session ended with Scalekit's, through IdP logout: it asks for the password, whatever the sign-in sends."
	case federated:
		row.State, row.Label, row.Tone = "upstream-form", "the upstream's form: password", "live"
		row.Why = "The upstream provider's session has ended: it asks for the password."
	case prompt && ses.Status == scalekittest.StatusActive:
		row.State, row.Label, row.Tone = "scalekit-form", "Scalekit's form", "live"
		row.Why = "Scalekit's session is alive, but this browser signed out with re-authentication asked: the sign-in sends prompt=login, " +
			"and Scalekit asks for the email address. Another app of this Scalekit environment would still sign you in without a form."
	case prompt:
		row.State, row.Label, row.Tone = "scalekit-form", "Scalekit's form", "live"
		row.Why = "The sign-in sends prompt=login: Scalekit asks for the email address again."
	default:
		row.State, row.Label, row.Tone = "scalekit-form", "Scalekit's form", "live"
		row.Why = "Scalekit's session has ended: it asks for the email address."
	}
	return row
}

// lastLogoutRequest is the newest request to Scalekit's /oidc/logout whose
// id_token_hint names session sid.
func (a *app) lastLogoutRequest(sid string) (scalekittest.LogoutRequest, bool) {
	reqs := a.fake.LogoutRequests()
	for i := len(reqs) - 1; i >= 0; i-- {
		if hintSession(reqs[i].Params.Get("id_token_hint")) == sid {
			return reqs[i], true
		}
	}
	return scalekittest.LogoutRequest{}, false
}

// hintSession reads the sid claim of an ID token without checking it: the
// token comes from the embedded Scalekit's own record, and the panel only
// matches it to a session it already knows.
func hintSession(idToken string) string {
	parts := strings.Split(idToken, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims struct {
		SID string `json:"sid"`
	}
	json.Unmarshal(payload, &claims)
	return claims.SID
}

// notifications says which of Scalekit's notifications about session sid
// reached the app.
func (a *app) notifications(sid string) string {
	var out []string
	for _, d := range a.fake.Deliveries() {
		if d.SessionID != sid {
			continue
		}
		what := "a back-channel logout token"
		if d.Kind == scalekittest.WebhookDelivery {
			what = "a user.logout webhook"
		}
		if d.Delivered {
			out = append(out, what+" (delivered)")
		} else {
			out = append(out, what+" (not delivered yet)")
		}
	}
	if len(out) == 0 {
		return "no notification was sent"
	}
	return strings.Join(out, " and ")
}

// backstopLog remembers when the backstop looks at each Scalekit session a
// logout on this instance ended, so that the panel can say when a session
// left alive will end.
type backstopLog struct {
	delay time.Duration
	mu    sync.Mutex
	due   map[string]time.Time
}

func newBackstopLog(delay time.Duration) *backstopLog {
	return &backstopLog{delay: delay, due: map[string]time.Time{}}
}

func (b *backstopLog) scheduled(sid string) {
	if sid == "" {
		return
	}
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, t := range b.due {
		if now.Sub(t) > time.Minute {
			delete(b.due, id)
		}
	}
	b.due[sid] = now.Add(b.delay)
}

func (b *backstopLog) dueAt(sid string) (time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.due[sid]
	return t, ok
}
