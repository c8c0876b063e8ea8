// SPDX-License-Identifier: Apache-2.0

package scalekittest

// The token endpoint: the authorization-code, refresh-token and
// client-credentials grants, and the tokens they issue.

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
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
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	client, errCode, msg := s.authenticateClient(r)
	if client == nil {
		status := http.StatusBadRequest
		if errCode == "invalid_client" {
			status = http.StatusUnauthorized
			w.Header().Set("WWW-Authenticate", `Basic realm="token"`)
		}
		oauthError(w, status, errCode, msg)
		return
	}
	switch r.PostFormValue("grant_type") {
	case "authorization_code":
		s.codeGrant(w, r, client)
	case "refresh_token":
		s.refreshGrant(w, r, client)
	case "client_credentials":
		if client.public() {
			oauthError(w, http.StatusBadRequest, "unauthorized_client", "a public client cannot use client_credentials")
			return
		}
		s.clientCredentialsGrant(w, client)
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "")
	}
}

// authenticateClient finds the client a token request is from. A
// confidential client sends its secret in the form (client_secret_post, as
// every SDK and guide does: scalekit-sdk-node src/scalekit.ts; developer-docs
// src/content/docs/guides/authenticate-scalekit-api.mdx) or in Basic auth
// (client_secret_basic, as the MCP guide registers a client:
// authenticate/mcp/additional-reading.mdx), never both (RFC 6749 section
// 2.3). A public client sends its client_id alone; an empty client_secret,
// as the Node SDK sends for a client built without one, counts as none.
func (s *Server) authenticateClient(r *http.Request) (client *Client, errCode, msg string) {
	if err := r.ParseForm(); err != nil {
		return nil, "invalid_request", "malformed form"
	}
	clientID, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if id, sec, ok := r.BasicAuth(); ok {
		if secret != "" {
			return nil, "invalid_request", "client credentials in both the form and Basic auth"
		}
		// RFC 6749 section 2.3.1: both are form-encoded before base64.
		id, err1 := url.QueryUnescape(id)
		sec, err2 := url.QueryUnescape(sec)
		if err1 != nil || err2 != nil || (clientID != "" && clientID != id) {
			return nil, "invalid_client", "malformed Basic auth"
		}
		clientID, secret = id, sec
	}
	s.mu.Lock()
	client = s.clients[clientID]
	s.mu.Unlock()
	switch {
	case client == nil:
		return nil, "invalid_client", "unknown client"
	case client.public() && secret != "":
		return nil, "invalid_client", "a public client has no secret"
	case !client.public() && subtle.ConstantTimeCompare([]byte(client.Secret), []byte(secret)) != 1:
		return nil, "invalid_client", "wrong client secret"
	}
	return client, "", ""
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
	case c.challenge == "" && r.PostFormValue("code_verifier") != "":
		oauthError(w, http.StatusBadRequest, "invalid_grant", "a code_verifier for a code issued without a code_challenge")
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
			s.end(g.session, StatusRevoked, s.now())
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

// clientCredentialsGrant issues the session API's key: a JWT that lives
// [Config.ClientCredentialsLifetime], with the claims of the documented
// machine-to-machine token (client_id, iss, sub, jti as tkn_…, the scopes
// array; developer-docs src/content/docs/authenticate/m2m/
// api-auth-quickstart.mdx), and a reply with scope, as every documented
// example of it shows ("openid": guides/authenticate-scalekit-api.mdx).
func (s *Server) clientCredentialsGrant(w http.ResponseWriter, client *Client) {
	now := s.now()
	jti := newID("tkn_")
	life := s.cfg.ClientCredentialsLifetime
	tok, err := s.Sign(map[string]any{
		"iss": s.URL, "sub": client.ID, "client_id": client.ID, "jti": jti,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(life).Unix(), "scopes": []string{"openid"},
	}, "JWT")
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", "")
		return
	}
	s.mu.Lock()
	s.apiTokens[jti] = now.Add(life)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok, "token_type": "Bearer", "expires_in": int(life.Seconds()), "scope": "openid",
	})
}

// issue answers a code or refresh grant with an access token, an ID token
// and, with offline_access, a new refresh token. The access token carries
// what the guides show of a user's (developer-docs src/content/docs/
// authenticate/fsa/complete-login.mdx, "Decoded access token";
// authenticate/fsa/session-token-claims.mdx): sid, oid, client_id, roles,
// permissions, the granted scope as a string and a tkn_… jti; the scopes
// array is the machine-to-machine tokens' alone. The ID token's amr names
// the connection that signed the user in (complete-login.mdx, "amr":
// ["conn_123"]).
func (s *Server) issue(w http.ResponseWriter, client *Client, ses *session, scopes []string, nonce, code string) {
	now := s.now()
	s.mu.Lock()
	user := ses.user.clone()
	var orgExternalID string
	if org := s.orgs[user.OrganizationID]; org != nil {
		orgExternalID = org.ExternalID
	}
	s.mu.Unlock()
	accessClaims := map[string]any{
		"iss": s.URL, "sub": user.ID, "aud": []string{client.ID}, "client_id": client.ID, "sid": ses.id,
		"oid": user.OrganizationID, "jti": newID("tkn_"), "roles": user.Roles, "permissions": user.Permissions,
		"scope": strings.Join(scopes, " "),
		"iat":   now.Unix(), "nbf": now.Unix(), "exp": now.Add(s.cfg.AccessTokenLifetime).Unix(),
	}
	if user.ExternalID != "" {
		accessClaims["xuid"] = user.ExternalID // "External user ID (if mapped)"
	}
	// xoid is the organization's external ID, "if mapped", in both tokens
	// (complete-login.mdx, the decoded ID and access tokens; a claim
	// Scalekit sets, session-token-claims.mdx, "Reserved claim keys").
	if orgExternalID != "" {
		accessClaims["xoid"] = orgExternalID
	}
	access, err := s.Sign(accessClaims, "JWT")
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", "")
		return
	}
	claims := map[string]any{
		"iss": s.URL, "sub": user.ID, "aud": []string{client.ID}, "azp": client.ID, "client_id": client.ID,
		"oid": user.OrganizationID, "sid": ses.id, "iat": now.Unix(), "exp": now.Add(idTokenLifetime).Unix(),
		"amr": []string{ses.conn}, "at_hash": halfHash(access),
		"email": user.Email, "email_verified": true,
		"name": user.Name(), "given_name": user.GivenName, "family_name": user.FamilyName,
	}
	if orgExternalID != "" {
		claims["xoid"] = orgExternalID
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
