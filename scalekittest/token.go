package scalekittest

// The token endpoint: the authorization-code, refresh-token and
// client-credentials grants, and the tokens they issue.

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"slices"
	"strings"
	"time"
)

// idTokenLifetime is how long ID tokens live.
const idTokenLifetime = time.Hour

type refreshGrant struct {
	client  string
	scopes  []string
	session *session
	used    bool
}

// token serves /oauth/token: the authorization_code grant (with its PKCE
// verifier), the refresh_token grant, and client_credentials for the API.
// Clients authenticate with their secret in Basic auth or in the form.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	clientID, secret, ok := r.BasicAuth()
	if !ok {
		clientID, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
	}
	s.mu.Lock()
	client := s.clients[clientID]
	s.mu.Unlock()
	if client == nil || client.Secret == "" || client.Secret != secret {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "unknown client or wrong secret")
		return
	}
	switch r.PostFormValue("grant_type") {
	case "authorization_code":
		s.codeGrant(w, r, client)
	case "refresh_token":
		s.refreshGrant(w, r, client)
	case "client_credentials":
		s.clientCredentialsGrant(w, client)
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "")
	}
}

func (s *Server) codeGrant(w http.ResponseWriter, r *http.Request, client *Client) {
	code := r.PostFormValue("code")
	s.mu.Lock()
	c := s.codes[code]
	delete(s.codes, code) // one use only
	live := c != nil && s.live(c.session.id) != nil
	s.mu.Unlock()
	switch {
	case c == nil || c.client != client.ID || c.redirectURI != r.PostFormValue("redirect_uri") || !s.now().Before(c.expires):
		oauthError(w, http.StatusBadRequest, "invalid_grant", "unknown, used or expired code")
		return
	case c.challenge != "" && pkceChallenge(r.PostFormValue("code_verifier")) != c.challenge:
		oauthError(w, http.StatusBadRequest, "invalid_grant", "PKCE verification failed")
		return
	case !live:
		oauthError(w, http.StatusBadRequest, "invalid_grant", "the session has ended")
		return
	}
	s.issue(w, client, c.session, c.scopes, c.nonce, code)
}

// refreshGrant redeems a refresh token once: every use rotates it, and a
// token used before, or whose session has ended, is refused.
func (s *Server) refreshGrant(w http.ResponseWriter, r *http.Request, client *Client) {
	tok := r.PostFormValue("refresh_token")
	s.mu.Lock()
	g := s.refresh[tok]
	switch {
	case g == nil || g.client != client.ID:
		s.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "unknown refresh token")
		return
	case g.used:
		if s.cfg.RefreshReuseRevokesSession && s.live(g.session.id) != nil {
			s.end(g.session, StatusRevoked, s.now(), "")
		}
		s.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "refresh token already used")
		return
	case s.live(g.session.id) == nil:
		s.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "the session has ended")
		return
	}
	g.used = true
	s.touch(g.session)
	s.mu.Unlock()
	s.issue(w, client, g.session, g.scopes, "", "")
}

func (s *Server) clientCredentialsGrant(w http.ResponseWriter, client *Client) {
	now := s.now()
	jti := "jti_" + randomText()
	tok, err := s.Sign(map[string]any{
		"iss": s.URL, "sub": client.ID, "aud": []string{client.ID}, "client_id": client.ID, "jti": jti,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(s.cfg.AccessTokenLifetime).Unix(), "scopes": []string{},
	}, "JWT")
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", "")
		return
	}
	s.mu.Lock()
	s.apiTokens[jti] = now.Add(s.cfg.AccessTokenLifetime)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok, "token_type": "Bearer", "expires_in": int(s.cfg.AccessTokenLifetime.Seconds()),
	})
}

// issue answers a code or refresh grant with an access token, an ID token
// and, with offline_access, a new refresh token.
func (s *Server) issue(w http.ResponseWriter, client *Client, ses *session, scopes []string, nonce, code string) {
	now := s.now()
	user := ses.user
	access, err := s.Sign(map[string]any{
		"iss": s.URL, "sub": user.ID, "aud": []string{client.ID}, "client_id": client.ID, "sid": ses.id,
		"oid": user.OrganizationID, "jti": "jti_" + randomText(), "scopes": scopes,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(s.cfg.AccessTokenLifetime).Unix(),
	}, "JWT")
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", "")
		return
	}
	claims := map[string]any{
		"iss": s.URL, "sub": user.ID, "aud": []string{client.ID}, "azp": client.ID, "client_id": client.ID,
		"oid": user.OrganizationID, "sid": ses.id, "iat": now.Unix(), "exp": now.Add(idTokenLifetime).Unix(),
		"amr": []string{"otp"}, "at_hash": halfHash(access),
		"email": user.Email, "email_verified": true,
		"name": user.Name(), "given_name": user.GivenName, "family_name": user.FamilyName,
	}
	if code != "" {
		claims["c_hash"] = halfHash(code)
	}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	idToken, err := s.Sign(claims, "JWT")
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", "")
		return
	}
	out := map[string]any{
		"access_token": access, "token_type": "Bearer", "expires_in": int(s.cfg.AccessTokenLifetime.Seconds()),
		"id_token": idToken, "scope": strings.Join(scopes, " "),
	}
	if slices.Contains(scopes, "offline_access") {
		rt := "rt_" + randomText()
		s.mu.Lock()
		s.refresh[rt] = &refreshGrant{client: client.ID, scopes: scopes, session: ses}
		s.mu.Unlock()
		out["refresh_token"] = rt
	}
	writeJSON(w, http.StatusOK, out)
}

// halfHash is at_hash and c_hash for RS256: the left half of the SHA-256 of
// the value, base64url without padding.
func halfHash(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

func pkceChallenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func oauthError(w http.ResponseWriter, status int, code, description string) {
	body := map[string]string{"error": code}
	if description != "" {
		body["error_description"] = description
	}
	writeJSON(w, status, body)
}
