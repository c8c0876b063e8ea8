package scalekittest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// revokeUser is POST /api/v1/users/{user}/sessions/revoke.
func (s *Server) revokeUser(w http.ResponseWriter, r *http.Request) {
	if !s.apiAuthorized(r) {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized"})
		return
	}
	ended, err := s.RevokeUserSessions(r.Context(), r.PathValue("user"))
	s.revokeReply(w, ended, err)
}

// revokeSession is POST /api/v1/sessions/{session}/revoke.
func (s *Server) revokeSession(w http.ResponseWriter, r *http.Request) {
	if !s.apiAuthorized(r) {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized"})
		return
	}
	ended, err := s.RevokeSession(r.Context(), r.PathValue("session"))
	s.revokeReply(w, ended, err)
}

func (s *Server) revokeReply(w http.ResponseWriter, ended []string, err error) {
	if err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]any{"revoked_sessions": ended, "error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"revoked_sessions": ended})
}

// apiAuthorized accepts a client_credentials token or a client's own
// credentials in Basic auth.
func (s *Server) apiAuthorized(r *http.Request) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return s.tokens[tok] != ""
	}
	id, secret, ok := r.BasicAuth()
	c := s.clients[id]
	return ok && c != nil && c.Secret == secret
}

// RevokeUserSessions ends every active session of the user, as an admin or a
// policy would, and sends a back-channel logout token for each session to
// every client it signed into. It returns the ended session IDs; the error
// joins the deliveries that failed.
func (s *Server) RevokeUserSessions(ctx context.Context, userID string) ([]string, error) {
	var ids []string
	s.mu.Lock()
	for _, ses := range s.sessions {
		if ses.user.ID == userID && !ses.ended {
			ids = append(ids, ses.id)
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, id := range ids {
		if _, err := s.RevokeSession(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	return ids, errors.Join(errs...)
}

// RevokeSession ends one session and notifies its clients by back channel.
func (s *Server) RevokeSession(ctx context.Context, sessionID string) ([]string, error) {
	s.mu.Lock()
	ses := s.sessions[sessionID]
	if ses == nil || ses.ended {
		s.mu.Unlock()
		return nil, nil
	}
	ses.ended = true
	var targets []*Client
	for _, id := range ses.clients {
		if c := s.clients[id]; c != nil && c.BackChannelLogoutURI != "" {
			targets = append(targets, c)
		}
	}
	userID := ses.user.ID
	s.mu.Unlock()
	var errs []error
	for _, c := range targets {
		token, err := s.LogoutToken(c.ID, userID, sessionID)
		if err == nil {
			err = s.SendLogoutToken(ctx, c.BackChannelLogoutURI, token)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("back-channel logout to %s: %w", c.ID, err))
		}
	}
	return []string{sessionID}, errors.Join(errs...)
}

// LogoutToken returns a signed back-channel logout token for the client,
// naming the user and (when not empty) the session.
func (s *Server) LogoutToken(clientID, userID, sessionID string) (string, error) {
	now := time.Now()
	claims := map[string]any{
		"iss": s.URL, "aud": []string{clientID}, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
		"jti": randomID(), "events": map[string]any{BackChannelLogoutEvent: map[string]any{}},
	}
	if userID != "" {
		claims["sub"] = userID
	}
	if sessionID != "" {
		claims["sid"] = sessionID
	}
	return s.Sign(claims, "logout+jwt")
}

// SendLogoutToken POSTs a logout token to a back-channel logout URI and
// expects 200 or 204.
func (s *Server) SendLogoutToken(ctx context.Context, uri, token string) error {
	client := s.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, strings.NewReader(url.Values{"logout_token": {token}}.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("status %s", resp.Status)
	}
	return nil
}
