// SPDX-License-Identifier: Apache-2.0

package scalekittest

// The session API over REST, as Scalekit's API reference gives it: JSON with
// the protocol's own field names, every field present (null when unset),
// errors as {"code", "message", "details"} with the gRPC code. The gRPC side
// (grpc.go) answers the same calls from the same data.

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

func (s *Server) restGetSession(w http.ResponseWriter, r *http.Request) {
	if apiErr := s.authorizeAPI(r); apiErr != nil {
		writeAPIError(w, apiErr)
		return
	}
	ses, apiErr := s.getSession(r.PathValue("session_id"))
	if apiErr != nil {
		writeAPIError(w, apiErr)
		return
	}
	writeJSON(w, http.StatusOK, detailsOf(ses))
}

func (s *Server) restRevokeSession(w http.ResponseWriter, r *http.Request) {
	if apiErr := s.authorizeAPI(r); apiErr != nil {
		writeAPIError(w, apiErr)
		return
	}
	ses, apiErr := s.revokeSession(r.PathValue("session_id"))
	if apiErr != nil {
		writeAPIError(w, apiErr)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"revoked_session": revokedOf(ses)})
}

func (s *Server) restUserSessions(w http.ResponseWriter, r *http.Request) {
	if apiErr := s.authorizeAPI(r); apiErr != nil {
		writeAPIError(w, apiErr)
		return
	}
	q := r.URL.Query()
	query := sessionQuery{userID: r.PathValue("user_id"), pageToken: q.Get("page_token"), statuses: q["filter.status"]}
	var bad string
	if v := q.Get("page_size"); v != "" {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			bad = "page_size must be a number"
		}
		query.pageSize = int(min(n, 1000))
	}
	for name, t := range map[string]*time.Time{"filter.start_time": &query.start, "filter.end_time": &query.end} {
		if v := q.Get(name); v != "" {
			var err error
			if *t, err = time.Parse(time.RFC3339Nano, v); err != nil {
				bad = name + " must be an RFC 3339 time"
			}
		}
	}
	if bad != "" {
		writeAPIError(w, &apiError{codeInvalidArgument, bad})
		return
	}
	page, apiErr := s.userSessionPage(query)
	if apiErr != nil {
		writeAPIError(w, apiErr)
		return
	}
	out := make([]sessionDetails, len(page.sessions))
	for i, ses := range page.sessions {
		out[i] = detailsOf(ses)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"sessions": out, "next_page_token": page.next, "prev_page_token": page.prev, "total_size": page.total,
	})
}

func (s *Server) restRevokeUserSessions(w http.ResponseWriter, r *http.Request) {
	if apiErr := s.authorizeAPI(r); apiErr != nil {
		writeAPIError(w, apiErr)
		return
	}
	revoked, apiErr := s.revokeUserSessions(r.PathValue("user_id"))
	if apiErr != nil {
		writeAPIError(w, apiErr)
		return
	}
	out := make([]revokedDetails, len(revoked))
	for i, ses := range revoked {
		out[i] = revokedOf(ses)
	}
	writeJSON(w, http.StatusOK, map[string]any{"revoked_sessions": out, "total_revoked": len(out)})
}

// authorizeAPI accepts only an unexpired access token from the
// client_credentials grant; a user's access token is not an API key.
func (s *Server) authorizeAPI(r *http.Request) *apiError {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || raw == "" {
		return errNoAPIToken
	}
	claims, err := s.verifyOwnToken(raw)
	if err != nil || expired(claims, s.now()) {
		return errNoAPIToken
	}
	jti, _ := claims["jti"].(string)
	s.mu.Lock()
	_, issued := s.apiTokens[jti]
	s.mu.Unlock()
	if !issued {
		return errNoAPIToken
	}
	return nil
}

func writeAPIError(w http.ResponseWriter, e *apiError) {
	status := map[int]int{
		codeInvalidArgument: http.StatusBadRequest, codeFailedPrecondition: http.StatusBadRequest,
		codeNotFound: http.StatusNotFound, codeUnauthenticated: http.StatusUnauthorized,
		codeUnimplemented: http.StatusNotImplemented,
	}[e.code]
	if status == 0 {
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, map[string]any{
		"code": e.code, "message": e.msg,
		"details": []map[string]string{{"@type": "type.googleapis.com/" + errorInfoType, "error_code": errorCodeName(e.code)}},
	})
}

// sessionDetails is scalekit.v1.sessions.SessionDetails.
type sessionDetails struct {
	SessionID                  string                 `json:"session_id"`
	UserID                     string                 `json:"user_id"`
	AuthenticatedOrganizations []string               `json:"authenticated_organizations"`
	OrganizationID             string                 `json:"organization_id"`
	CreatedAt                  *time.Time             `json:"created_at"`
	UpdatedAt                  *time.Time             `json:"updated_at"`
	IdleExpiresAt              *time.Time             `json:"idle_expires_at"`
	AbsoluteExpiresAt          *time.Time             `json:"absolute_expires_at"`
	ExpiredAt                  *time.Time             `json:"expired_at"`
	LogoutAt                   *time.Time             `json:"logout_at"`
	Status                     string                 `json:"status"`
	Device                     deviceDetails          `json:"device"`
	LastActiveAt               *time.Time             `json:"last_active_at"`
	AuthenticatedClients       []authenticatedClients `json:"authenticated_clients"`
}

// deviceDetails is scalekit.v1.sessions.DeviceDetails; the fake knows the
// user agent and the address a session was started from, and reads the
// browser, the system and the kind of device from the user agent.
type deviceDetails struct {
	UserAgent      string   `json:"user_agent"`
	OS             string   `json:"os"`
	OSVersion      string   `json:"os_version"`
	Browser        string   `json:"browser"`
	BrowserVersion string   `json:"browser_version"`
	DeviceType     string   `json:"device_type"`
	IP             string   `json:"ip"`
	Location       location `json:"location"`
}

// location is scalekit.v1.sessions.Location, the place Scalekit finds for
// the device's address (developer-docs openapi/scalekit.yaml,
// v1sessionsLocation; an object in the user.logout example). The fake has
// no geolocation: every member is there, empty.
type location struct {
	City              string `json:"city"`
	Latitude          string `json:"latitude"`
	Longitude         string `json:"longitude"`
	Region            string `json:"region"`
	RegionSubdivision string `json:"region_subdivision"`
}

type authenticatedClients struct {
	ClientID       string `json:"client_id"`
	OrganizationID string `json:"organization_id"`
}

// revokedDetails is scalekit.v1.sessions.RevokedSessionDetails.
type revokedDetails struct {
	SessionID         string     `json:"session_id"`
	UserID            string     `json:"user_id"`
	CreatedAt         *time.Time `json:"created_at"`
	UpdatedAt         *time.Time `json:"updated_at"`
	IdleExpiresAt     *time.Time `json:"idle_expires_at"`
	AbsoluteExpiresAt *time.Time `json:"absolute_expires_at"`
	ExpiredAt         *time.Time `json:"expired_at"`
	LogoutAt          *time.Time `json:"logout_at"`
	Status            string     `json:"status"`
	LastActiveAt      *time.Time `json:"last_active_at"`
}

func detailsOf(ses Session) sessionDetails {
	r := revokedOf(ses)
	d := sessionDetails{
		SessionID: r.SessionID, UserID: r.UserID, AuthenticatedOrganizations: []string{ses.OrganizationID},
		OrganizationID: ses.OrganizationID, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		IdleExpiresAt: r.IdleExpiresAt, AbsoluteExpiresAt: r.AbsoluteExpiresAt, ExpiredAt: r.ExpiredAt,
		LogoutAt: r.LogoutAt, Status: r.Status, LastActiveAt: r.LastActiveAt,
		Device:               deviceOf(ses.UserAgent, ses.IPAddress),
		AuthenticatedClients: []authenticatedClients{},
	}
	for _, c := range ses.Clients {
		d.AuthenticatedClients = append(d.AuthenticatedClients, authenticatedClients{ClientID: c, OrganizationID: ses.OrganizationID})
	}
	return d
}

func revokedOf(ses Session) revokedDetails {
	r := revokedDetails{
		SessionID: ses.ID, UserID: ses.UserID, Status: ses.Status,
		CreatedAt: timePtr(ses.CreatedAt), LastActiveAt: timePtr(ses.LastActiveAt),
		IdleExpiresAt: timePtr(ses.IdleExpiresAt), AbsoluteExpiresAt: timePtr(ses.AbsoluteExpiresAt),
		UpdatedAt: timePtr(ses.LastActiveAt),
	}
	if !ses.EndedAt.IsZero() {
		r.UpdatedAt = timePtr(ses.EndedAt)
		// Only the user's own logout sets logout_at; an administrator's
		// revocation and a timeout set expired_at, to the moment it ended
		// (developer-docs openapi/scalekit.yaml: sessionsSessionDetails
		// expired_at "Not set for user-initiated logout", logout_at;
		// sessionsRevokedSessionDetails expired_at "Set to the revocation
		// time when the session is revoked").
		if ses.Status == StatusLogout {
			r.LogoutAt = timePtr(ses.EndedAt)
		} else {
			r.ExpiredAt = timePtr(ses.EndedAt)
		}
	}
	return r
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}
