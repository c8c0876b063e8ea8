// SPDX-License-Identifier: Apache-2.0

package scalekittest

// The fake's own inspection API: read-only JSON under /_fake/v1/ for tests
// in any language to see what the fake saw and did. Scalekit has no such
// endpoints; nothing here imitates it.

import (
	"cmp"
	"crypto/subtle"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// InspectionPath is where the inspection API is served. Every answer is
// JSON and carries the header X-Scalekittest: inspection.
const InspectionPath = "/_fake/v1"

func (s *Server) inspectionRoutes(mux *http.ServeMux) {
	routes := map[string]func(*http.Request) (any, bool){
		"":                 s.inspectIndex,
		"/sessions":        s.inspectSessions,
		"/sessions/{id}":   s.inspectSession,
		"/users":           s.inspectUsers,
		"/organizations":   s.inspectOrganizations,
		"/connections":     s.inspectConnections,
		"/logout-requests": s.inspectLogoutRequests,
		"/authorizations":  s.inspectAuthorizations,
		"/deliveries":      s.inspectDeliveries,
	}
	for path, fn := range routes {
		mux.HandleFunc("GET "+InspectionPath+path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Scalekittest", "inspection")
			if !s.inspectionAllowed(r) {
				w.Header().Set("WWW-Authenticate", `Basic realm="scalekittest inspection"`)
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized",
					"error_description": "Basic auth with a registered client's ID and secret, or a client_credentials Bearer token"})
				return
			}
			v, ok := fn(r)
			if !ok {
				writeJSON(w, http.StatusNotFound, map[string]string{"error": "not_found"})
				return
			}
			writeJSON(w, http.StatusOK, v)
		})
	}
}

// inspectionAllowed accepts what the session API accepts, a Bearer token from
// the client_credentials grant, and also a confidential client's ID and
// secret in Basic auth, so that one curl call does.
func (s *Server) inspectionAllowed(r *http.Request) bool {
	if id, secret, ok := r.BasicAuth(); ok {
		s.mu.Lock()
		c := s.clients[id]
		s.mu.Unlock()
		return c != nil && !c.public() && subtle.ConstantTimeCompare([]byte(c.Secret), []byte(secret)) == 1
	}
	return s.authorizeAPI(r) == nil
}

func (s *Server) inspectIndex(*http.Request) (any, bool) {
	return map[string]any{
		"about": "The inspection API of scalekittest, a fake Scalekit environment for tests. Scalekit has no such endpoints.",
		"endpoints": []string{
			InspectionPath + "/sessions", InspectionPath + "/sessions/{session_id}", InspectionPath + "/users",
			InspectionPath + "/organizations", InspectionPath + "/connections", InspectionPath + "/logout-requests",
			InspectionPath + "/authorizations", InspectionPath + "/deliveries",
		},
	}, true
}

type inspectedSession struct {
	SessionID         string                    `json:"session_id"`
	UserID            string                    `json:"user_id"`
	Email             string                    `json:"email"`
	OrganizationID    string                    `json:"organization_id"`
	Status            string                    `json:"status"`
	ConnectionID      string                    `json:"connection_id"`
	Clients           []string                  `json:"clients"`
	CreatedAt         *time.Time                `json:"created_at"`
	LastActiveAt      *time.Time                `json:"last_active_at"`
	IdleExpiresAt     *time.Time                `json:"idle_expires_at"`
	AbsoluteExpiresAt *time.Time                `json:"absolute_expires_at"`
	ExpiredAt         *time.Time                `json:"expired_at"`
	LogoutAt          *time.Time                `json:"logout_at"`
	UserAgent         string                    `json:"user_agent"`
	IP                string                    `json:"ip"`
	Upstream          *inspectedUpstreamSession `json:"upstream"`
}

type inspectedUpstreamSession struct {
	SessionID    string     `json:"session_id"`
	ConnectionID string     `json:"connection_id"`
	Email        string     `json:"email"`
	Active       bool       `json:"active"`
	CreatedAt    *time.Time `json:"created_at"`
	EndedAt      *time.Time `json:"ended_at"`
}

// inspectSessions lists every session, newest first, or those of one user
// (user_id or email) or of some statuses (status, repeatable).
func (s *Server) inspectSessions(r *http.Request) (any, bool) {
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	userID := q.Get("user_id")
	if email := q.Get("email"); email != "" {
		u := s.users[email]
		if u == nil {
			return map[string]any{"sessions": []inspectedSession{}}, true
		}
		userID = u.ID
	}
	all := make([]*session, 0, len(s.sessions))
	for _, ses := range s.sessions {
		s.applyPolicy(ses)
		if (userID == "" || ses.user.ID == userID) && (len(q["status"]) == 0 || slices.Contains(q["status"], ses.status)) {
			all = append(all, ses)
		}
	}
	slices.SortFunc(all, func(a, b *session) int {
		return cmp.Or(b.created.Compare(a.created), strings.Compare(b.id, a.id))
	})
	out := make([]inspectedSession, len(all))
	for i, ses := range all {
		out[i] = s.inspectedLocked(ses)
	}
	return map[string]any{"sessions": out}, true
}

func (s *Server) inspectSession(r *http.Request) (any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ses := s.sessions[r.PathValue("id")]
	if ses == nil {
		return nil, false
	}
	s.applyPolicy(ses)
	return s.inspectedLocked(ses), true
}

// inspectedLocked is a session as the inspection API shows it. The caller
// holds s.mu.
func (s *Server) inspectedLocked(ses *session) inspectedSession {
	snap := s.snapshot(ses)
	d := revokedOf(snap)
	out := inspectedSession{
		SessionID: snap.ID, UserID: snap.UserID, Email: ses.user.Email, OrganizationID: snap.OrganizationID,
		Status: snap.Status, ConnectionID: snap.ConnectionID, Clients: snap.Clients,
		CreatedAt: d.CreatedAt, LastActiveAt: d.LastActiveAt, IdleExpiresAt: d.IdleExpiresAt,
		AbsoluteExpiresAt: d.AbsoluteExpiresAt, ExpiredAt: d.ExpiredAt, LogoutAt: d.LogoutAt,
		UserAgent: snap.UserAgent, IP: snap.IPAddress,
	}
	if out.Clients == nil {
		out.Clients = []string{}
	}
	if up := s.upByConn[ses.conn]; up != nil {
		if u := up.sessions[ses.upstream]; u != nil {
			out.Upstream = inspectedUpstream(up, u)
		}
	}
	return out
}

func inspectedUpstream(up *Upstream, u *upstreamSession) *inspectedUpstreamSession {
	return &inspectedUpstreamSession{SessionID: u.id, ConnectionID: up.ConnectionID, Email: u.email,
		Active: u.ended.IsZero(), CreatedAt: timePtr(u.created), EndedAt: timePtr(u.ended)}
}

func (s *Server) inspectUsers(*http.Request) (any, bool) {
	type user struct {
		ID             string            `json:"id"`
		Email          string            `json:"email"`
		GivenName      string            `json:"given_name"`
		FamilyName     string            `json:"family_name"`
		OrganizationID string            `json:"organization_id"`
		ExternalID     string            `json:"external_id"`
		Metadata       map[string]string `json:"metadata"`
		Roles          []string          `json:"roles"`
		Permissions    []string          `json:"permissions"`
		ProfileID      string            `json:"profile_id"`
		CreatedAt      *time.Time        `json:"create_time"`
		LastLoginAt    *time.Time        `json:"last_login_time"`
	}
	var out []user
	for _, u := range s.Users() {
		out = append(out, user{u.ID, u.Email, u.GivenName, u.FamilyName, u.OrganizationID, u.ExternalID,
			u.Metadata, u.Roles, u.Permissions, u.ProfileID, timePtr(u.CreatedAt), timePtr(u.LastLoginAt)})
	}
	return map[string]any{"users": orEmpty(out)}, true
}

func (s *Server) inspectOrganizations(*http.Request) (any, bool) {
	type org struct {
		ID          string `json:"id"`
		DisplayName string `json:"display_name"`
		ExternalID  string `json:"external_id"`
		Default     bool   `json:"default"`
	}
	var out []org
	for _, o := range s.Organizations() {
		out = append(out, org{o.ID, o.DisplayName, o.ExternalID, o.ID == s.orgID})
	}
	return map[string]any{"organizations": out}, true
}

// inspectConnections lists the environment's connections: its own sign-in
// form's, then each upstream's with its sessions, newest first.
func (s *Server) inspectConnections(*http.Request) (any, bool) {
	type connection struct {
		ID                string                      `json:"id"`
		Type              string                      `json:"type"`
		OrganizationID    string                      `json:"organization_id,omitempty"`
		URL               string                      `json:"url,omitempty"`
		Domains           []string                    `json:"domains,omitempty"`
		IDPLogoutRequired bool                        `json:"idp_logout_required"`
		ForwardPrompt     bool                        `json:"forward_prompt"`
		SessionCookie     string                      `json:"session_cookie,omitempty"`
		Sessions          []*inspectedUpstreamSession `json:"sessions,omitempty"`
	}
	out := []connection{{ID: s.connID, Type: "PASSWORDLESS"}}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, up := range s.ups {
		c := connection{ID: up.ConnectionID, Type: "OIDC", OrganizationID: up.OrganizationID, URL: up.URL,
			Domains: up.domains, IDPLogoutRequired: up.IDPLogoutRequired, ForwardPrompt: up.cfg.ForwardPrompt,
			SessionCookie: up.SessionCookie, Sessions: []*inspectedUpstreamSession{}}
		for _, u := range up.sessions {
			c.Sessions = append(c.Sessions, inspectedUpstream(up, u))
		}
		slices.SortFunc(c.Sessions, func(a, b *inspectedUpstreamSession) int {
			return cmp.Or(b.CreatedAt.Compare(*a.CreatedAt), strings.Compare(b.SessionID, a.SessionID))
		})
		out = append(out, c)
	}
	return map[string]any{"connections": out}, true
}

func (s *Server) inspectLogoutRequests(*http.Request) (any, bool) {
	type logoutRequest struct {
		Method            string              `json:"method"`
		Params            map[string][]string `json:"params"`
		HadCookie         bool                `json:"had_cookie"`
		SecFetchMode      string              `json:"sec_fetch_mode"`
		SecFetchDest      string              `json:"sec_fetch_dest"`
		IDTokenSubject    string              `json:"id_token_subject"`
		ClientID          string              `json:"client_id"`
		EndedSession      string              `json:"ended_session"`
		Status            int                 `json:"status"`
		RedirectedTo      string              `json:"redirected_to"`
		Error             string              `json:"error"`
		IDPLogout         string              `json:"idp_logout"`
		IDPLogoutURL      string              `json:"idp_logout_url"`
		IDPLogoutReturned bool                `json:"idp_logout_returned"`
	}
	var out []logoutRequest
	for _, l := range s.LogoutRequests() {
		out = append(out, logoutRequest{l.Method, redacted(l.Params), l.HadCookie, l.SecFetchMode, l.SecFetchDest,
			l.IDTokenSubject, l.ClientID, l.EndedSession, l.Status, l.RedirectedTo, l.Error,
			l.IDPLogout, l.IDPLogoutURL, l.IDPLogoutReturned})
	}
	return map[string]any{"logout_requests": orEmpty(out)}, true
}

func (s *Server) inspectAuthorizations(*http.Request) (any, bool) {
	type authorization struct {
		ClientID          string              `json:"client_id"`
		Params            map[string][]string `json:"params"`
		Forms             []Form              `json:"forms"`
		PassedThrough     bool                `json:"passed_through"`
		Upstream          bool                `json:"upstream"`
		ConnectionID      string              `json:"connection_id"`
		RoutedBy          string              `json:"routed_by"`
		PromptForwarded   bool                `json:"prompt_forwarded"`
		Email             string              `json:"email"`
		SessionID         string              `json:"session_id"`
		UpstreamSessionID string              `json:"upstream_session_id"`
		Error             string              `json:"error"`
	}
	var out []authorization
	for _, a := range s.Authorizations() {
		out = append(out, authorization{a.ClientID, redacted(a.Params), orEmpty(a.Forms), a.PassedThrough(), a.Upstream,
			a.ConnectionID, a.RoutedBy, a.PromptForwarded, a.Email, a.SessionID, a.UpstreamSessionID, a.Error})
	}
	return map[string]any{"authorizations": orEmpty(out)}, true
}

// inspectDeliveries lists every webhook and back-channel delivery with each
// attempt's answer. A webhook's body is shown; a back-channel delivery's,
// which holds a logout token, is not.
func (s *Server) inspectDeliveries(*http.Request) (any, bool) {
	type attempt struct {
		At     time.Time `json:"at"`
		Status int       `json:"status"`
		Error  string    `json:"error"`
	}
	type delivery struct {
		Kind      DeliveryKind `json:"kind"`
		URL       string       `json:"url"`
		ClientID  string       `json:"client_id"`
		SessionID string       `json:"session_id"`
		UserID    string       `json:"user_id"`
		Body      string       `json:"body,omitempty"`
		Attempts  []attempt    `json:"attempts"`
		Delivered bool         `json:"delivered"`
		Done      bool         `json:"done"`
	}
	var out []delivery
	for _, d := range s.Deliveries() {
		row := delivery{Kind: d.Kind, URL: d.URL, ClientID: d.ClientID, SessionID: d.SessionID, UserID: d.UserID,
			Attempts: []attempt{}, Delivered: d.Delivered, Done: d.Done}
		if d.Kind == WebhookDelivery {
			row.Body = d.Body
		}
		for _, a := range d.History {
			row.Attempts = append(row.Attempts, attempt{a.At.UTC(), a.Status, a.Error})
		}
		out = append(out, row)
	}
	return map[string]any{"deliveries": orEmpty(out)}, true
}

// redacted copies request parameters, with the value of id_token_hint
// replaced: the inspection API shows no token.
func redacted(v url.Values) map[string][]string {
	out := cloneValues(v)
	for _, name := range []string{"id_token_hint"} {
		if _, ok := out[name]; ok {
			out[name] = []string{"[redacted]"}
		}
	}
	return out
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
