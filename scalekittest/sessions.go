// SPDX-License-Identifier: Apache-2.0

package scalekittest

// The environment's sessions: their states, the policy that expires them,
// and the session API's operations on them, whichever protocol asks.

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Session statuses, as the session API reports them.
const (
	StatusActive  = "active"
	StatusExpired = "expired" // ended by the idle or absolute timeout
	StatusRevoked = "revoked" // ended through the session API (or a reused refresh token)
	StatusLogout  = "logout"  // ended by the user at /oidc/logout
)

// Session is a snapshot of one of the environment's sessions.
type Session struct {
	ID             string // ses_ and digits
	UserID         string
	OrganizationID string
	Status         string   // StatusActive, StatusExpired, StatusRevoked or StatusLogout
	Clients        []string // the clients signed in through it, in order
	CreatedAt      time.Time
	LastActiveAt   time.Time
	// EndedAt is when it stopped being active; zero while it is.
	EndedAt time.Time
	// AbsoluteExpiresAt is when the absolute timeout ends it.
	// IdleExpiresAt is when it ends if it stays idle: the idle timeout
	// after LastActiveAt, or AbsoluteExpiresAt when that comes first or
	// the idle timeout is off ([Config.NoIdleTimeout]).
	IdleExpiresAt     time.Time
	AbsoluteExpiresAt time.Time
	UserAgent         string
	IPAddress         string
	// ConnectionID is the connection that signed the user in, as the ID
	// token's amr claim names it: an upstream provider's, or the
	// environment's own for its sign-in form.
	ConnectionID string
	// UpstreamSessionID is the upstream provider's session that signed
	// the user in, or "" when the user signed in at the environment.
	UpstreamSessionID string
}

type session struct {
	id, userAgent, ip string
	conn              string // the connection that signed it in
	upstream          string // the upstream session that signed it in, or ""
	user              *User
	clients           []string
	created, active   time.Time
	status            string
	ended             time.Time
}

// Sessions returns a snapshot of the user's sessions, newest first.
func (s *Server) Sessions(userID string) []Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Session
	for _, ses := range s.userSessions(userID) {
		out = append(out, s.snapshot(ses))
	}
	return out
}

// Session returns a snapshot of one session.
func (s *Server) Session(sessionID string) (Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ses := s.sessions[sessionID]
	if ses == nil {
		return Session{}, fmt.Errorf("%w: session %s", ErrNotFound, sessionID)
	}
	s.applyPolicy(ses)
	return s.snapshot(ses), nil
}

// ActiveSessions lists the IDs of the user's active sessions, sorted.
func (s *Server) ActiveSessions(userID string) []string {
	var out []string
	for _, ses := range s.Sessions(userID) {
		if ses.Status == StatusActive {
			out = append(out, ses.ID)
		}
	}
	slices.Sort(out)
	return out
}

// RevokeSession ends a session as the session API does, and notifies every
// client it signed into, in the background ([Server.WaitDeliveries] waits).
// Revoking an ended session is an error unless
// [Config.RevokeEndedSessionSucceeds] is set.
func (s *Server) RevokeSession(sessionID string) (Session, error) {
	ses, apiErr := s.revokeSession(sessionID)
	if apiErr != nil {
		return Session{}, apiErr
	}
	return ses, nil
}

// RevokeUserSessions revokes every active session of the user, as the
// session API does, and returns them.
func (s *Server) RevokeUserSessions(userID string) ([]Session, error) {
	out, apiErr := s.revokeUserSessions(userID)
	if apiErr != nil {
		return nil, apiErr
	}
	return out, nil
}

// ExpireSession ends an active session as its timeout would (status
// expired), and notifies its clients.
func (s *Server) ExpireSession(sessionID string) (Session, error) {
	s.mu.Lock()
	ses := s.sessions[sessionID]
	if ses == nil {
		s.mu.Unlock()
		return Session{}, fmt.Errorf("%w: session %s", ErrNotFound, sessionID)
	}
	s.applyPolicy(ses)
	if ses.status != StatusActive {
		s.mu.Unlock()
		return Session{}, fmt.Errorf("scalekittest: session %s has already ended (%s)", sessionID, ses.status)
	}
	s.end(ses, StatusExpired, s.now())
	snap := s.snapshot(ses)
	s.mu.Unlock()
	return snap, nil
}

func (s *Server) newSession(user *User, conn, userAgent, ip string) *session {
	now := s.now()
	user.LastLoginAt = now
	ses := &session{id: newID("ses_"), user: user, conn: conn, created: now, active: now, status: StatusActive, userAgent: userAgent, ip: ip}
	s.sessions[ses.id] = ses
	return ses
}

// live returns the session if it is still active after the policy had its
// say, or nil. The caller holds s.mu.
func (s *Server) live(id string) *session {
	ses := s.sessions[id]
	if ses == nil {
		return nil
	}
	s.applyPolicy(ses)
	if ses.status != StatusActive {
		return nil
	}
	return ses
}

// touch records activity on an active session: a sign-in or a refresh.
func (s *Server) touch(ses *session) { ses.active = s.now() }

// applyPolicy ends an active session whose idle or absolute timeout has
// passed, as of the moment it passed. The caller holds s.mu.
func (s *Server) applyPolicy(ses *session) {
	if ses.status != StatusActive {
		return
	}
	if _, at := s.expiry(ses); !s.now().Before(at) {
		s.end(ses, StatusExpired, at)
	}
}

// expiry returns when the session's timeouts end it: absolute, after its
// absolute timeout, and idle, if it sees no more activity (absolute at the
// latest).
func (s *Server) expiry(ses *session) (absolute, idle time.Time) {
	absolute = ses.created.Add(s.cfg.AbsoluteTimeout)
	idle = absolute
	if at := ses.active.Add(s.cfg.IdleTimeout); !s.cfg.NoIdleTimeout && at.Before(absolute) {
		idle = at
	}
	return absolute, idle
}

// sweepInterval is how often expired sessions are found without anyone
// asking, so apps hear of them.
func (s *Server) sweepInterval() time.Duration {
	shortest := s.cfg.AbsoluteTimeout
	if !s.cfg.NoIdleTimeout {
		shortest = min(shortest, s.cfg.IdleTimeout)
	}
	return min(max(shortest/4, 50*time.Millisecond), time.Second)
}

func (s *Server) sweepEvery(d time.Duration) {
	defer s.bg.Done()
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.mu.Lock()
			for _, ses := range s.sessions {
				s.applyPolicy(ses)
			}
			s.mu.Unlock()
		}
	}
}

// end sets a final status and notifies every client the session signed
// into (by back channel), the one whose logout ended it included, and every
// webhook. The upstream session behind it lives on: only a logout in the
// browser can take the user through the upstream's own logout (see
// [UpstreamConfig.IDPLogoutRequired]). The caller holds s.mu.
func (s *Server) end(ses *session, status string, at time.Time) {
	ses.status, ses.ended = status, at
	for tok, g := range s.refresh {
		if g.session == ses {
			delete(s.refresh, tok)
		}
	}
	s.notifyLocked(s.snapshot(ses))
}

func (s *Server) userSessions(userID string) []*session {
	var out []*session
	for _, ses := range s.sessions {
		if ses.user.ID == userID {
			s.applyPolicy(ses)
			out = append(out, ses)
		}
	}
	slices.SortFunc(out, func(a, b *session) int {
		if c := b.created.Compare(a.created); c != 0 {
			return c
		}
		return strings.Compare(b.id, a.id)
	})
	return out
}

func (s *Server) snapshot(ses *session) Session {
	out := Session{
		ID: ses.id, UserID: ses.user.ID, OrganizationID: ses.user.OrganizationID, Status: ses.status,
		Clients: slices.Clone(ses.clients), CreatedAt: ses.created, LastActiveAt: ses.active, EndedAt: ses.ended,
		UserAgent: ses.userAgent, IPAddress: ses.ip, ConnectionID: ses.conn, UpstreamSessionID: ses.upstream,
	}
	out.AbsoluteExpiresAt, out.IdleExpiresAt = s.expiry(ses)
	return out
}

// apiError is an error of the session API, with its gRPC code; REST answers
// carry the matching HTTP status.
type apiError struct {
	code int
	msg  string
}

func (e *apiError) Error() string { return "scalekittest: " + e.msg }

func (e *apiError) Unwrap() error {
	if e.code == codeNotFound {
		return ErrNotFound
	}
	return nil
}

// The gRPC status codes the session API answers with.
const (
	codeOK                 = 0
	codeInvalidArgument    = 3
	codeNotFound           = 5
	codeFailedPrecondition = 9
	codeUnimplemented      = 12
	codeInternal           = 13
	codeUnauthenticated    = 16
)

var errNoAPIToken = &apiError{codeUnauthenticated, "a Bearer token from the client_credentials grant is required"}

func (s *Server) getSession(id string) (Session, *apiError) {
	if !validID(id, "ses_") {
		return Session{}, &apiError{codeInvalidArgument, "session_id must match ^ses_[0-9]+$"}
	}
	ses, err := s.Session(id)
	if err != nil {
		return Session{}, &apiError{codeNotFound, "session not found"}
	}
	return ses, nil
}

func (s *Server) revokeSession(id string) (Session, *apiError) {
	if !validID(id, "ses_") {
		return Session{}, &apiError{codeInvalidArgument, "session_id must match ^ses_[0-9]+$"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ses := s.sessions[id]
	if ses == nil {
		return Session{}, &apiError{codeNotFound, "session not found"}
	}
	s.applyPolicy(ses)
	if ses.status == StatusActive {
		s.end(ses, StatusRevoked, s.now())
	} else if !s.cfg.RevokeEndedSessionSucceeds {
		return Session{}, &apiError{codeFailedPrecondition, "session has already ended (" + ses.status + ")"}
	}
	return s.snapshot(ses), nil
}

func (s *Server) revokeUserSessions(userID string) ([]Session, *apiError) {
	if !validID(userID, "usr_") {
		return nil, &apiError{codeInvalidArgument, "user_id must match ^usr_[0-9]+$"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.userByID[userID] == nil {
		return nil, &apiError{codeNotFound, "user not found"}
	}
	out := []Session{}
	now := s.now()
	for _, ses := range s.userSessions(userID) {
		if ses.status == StatusActive {
			s.end(ses, StatusRevoked, now)
			out = append(out, s.snapshot(ses))
		}
	}
	return out, nil
}

// sessionQuery is a page of a user's sessions, as GetUserSessions asks.
type sessionQuery struct {
	userID     string
	pageSize   int
	pageToken  string
	statuses   []string
	start, end time.Time
}

type sessionPage struct {
	sessions   []Session
	next, prev string
	total      int
}

const defaultPageSize = 50

func (s *Server) userSessionPage(q sessionQuery) (sessionPage, *apiError) {
	if !validID(q.userID, "usr_") {
		return sessionPage{}, &apiError{codeInvalidArgument, "user_id must match ^usr_[0-9]+$"}
	}
	// The schema spells the statuses in lower case (developer-docs
	// openapi/scalekit.yaml, sessionsUserSessionFilter status; the same in
	// the Node SDK's jsdoc of getUserSessions), while the reference's code
	// samples for GetUserSessions, in all four languages, send
	// status: ['ACTIVE'] (openapi/scalekit.yaml, x-codeSamples of
	// /api/v1/users/{user_id}/sessions). Both spellings are taken, over
	// REST and gRPC alike.
	statuses := make([]string, len(q.statuses))
	for i, st := range q.statuses {
		statuses[i] = strings.ToLower(st)
		if !slices.Contains([]string{StatusActive, StatusExpired, StatusRevoked, StatusLogout}, statuses[i]) {
			return sessionPage{}, &apiError{codeInvalidArgument, "filter.status must be active, expired, revoked or logout"}
		}
	}
	q.statuses = statuses
	if !q.start.IsZero() && !q.end.IsZero() && !q.end.After(q.start) {
		return sessionPage{}, &apiError{codeInvalidArgument, "filter.end_time must be after filter.start_time"}
	}
	offset, err := decodePageToken(q.pageToken)
	if err != nil {
		return sessionPage{}, &apiError{codeInvalidArgument, "invalid page_token"}
	}
	size := q.pageSize
	if size <= 0 {
		size = defaultPageSize
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.userByID[q.userID] == nil {
		return sessionPage{}, &apiError{codeNotFound, "user not found"}
	}
	var all []Session
	for _, ses := range s.userSessions(q.userID) {
		switch {
		case len(q.statuses) > 0 && !slices.Contains(q.statuses, ses.status):
		case !q.start.IsZero() && ses.created.Before(q.start):
		// Both ends inclusive: created "on or after" start_time and "on
		// or before" end_time (developer-docs openapi/scalekit.yaml,
		// sessionsUserSessionFilter).
		case !q.end.IsZero() && ses.created.After(q.end):
		default:
			all = append(all, s.snapshot(ses))
		}
	}
	page := sessionPage{total: len(all), sessions: []Session{}}
	if offset < len(all) {
		page.sessions = all[offset:min(offset+size, len(all))]
	}
	if offset+size < len(all) {
		page.next = encodePageToken(offset + size)
	}
	if offset > 0 {
		page.prev = encodePageToken(max(offset-size, 0))
	}
	return page, nil
}
