// SPDX-License-Identifier: Apache-2.0

package scalekittest_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/endsession/logout/scalekittest"
)

func refresh(t testing.TB, s *scalekittest.Server, token string) tokenReply {
	t.Helper()
	return postToken(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}})
}

func TestRefreshTokensRotate(t *testing.T) {
	s := newServer(t, scalekittest.Config{})
	_, first := signIn(t, s, "ada@example.com")
	second := refresh(t, s, first.RefreshToken)
	if second.status != http.StatusOK || second.AccessToken == "" || second.IDToken == "" || second.RefreshToken == "" || second.RefreshToken == first.RefreshToken {
		t.Fatalf("refresh: status %d, error %q; want new access, ID and refresh tokens", second.status, second.Error)
	}
	if a, b := claimsOf(t, first.IDToken)["sid"], claimsOf(t, second.IDToken)["sid"]; a != b {
		t.Errorf("refreshed ID token names session %v, want %v", b, a)
	}
	if again := refresh(t, s, first.RefreshToken); again.status != http.StatusBadRequest || again.Error != "invalid_grant" {
		t.Errorf("reusing a refresh token: %d %q, want 400 invalid_grant", again.status, again.Error)
	}
	// The reuse did not end the session: the newest token still works.
	if third := refresh(t, s, second.RefreshToken); third.status != http.StatusOK {
		t.Errorf("refresh with the rotated token after a reuse: %d %q, want 200", third.status, third.Error)
	}
	if other := postToken(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"rt_made_up"}}); other.Error != "invalid_grant" {
		t.Errorf("unknown refresh token: %q, want invalid_grant", other.Error)
	}
}

func TestRefreshReuseRevokesSessionOption(t *testing.T) {
	s := newServer(t, scalekittest.Config{RefreshReuseRevokesSession: true})
	_, first := signIn(t, s, "ada@example.com")
	second := refresh(t, s, first.RefreshToken)
	if again := refresh(t, s, first.RefreshToken); again.Error != "invalid_grant" {
		t.Fatalf("reuse: %q, want invalid_grant", again.Error)
	}
	ses, _ := s.Session(claimsOf(t, first.IDToken)["sid"].(string))
	if ses.Status != scalekittest.StatusRevoked {
		t.Errorf("session %s after a reuse, want revoked", ses.Status)
	}
	if third := refresh(t, s, second.RefreshToken); third.Error != "invalid_grant" {
		t.Errorf("the rotated token after the session was revoked: %q, want invalid_grant", third.Error)
	}
}

func TestNoRefreshTokenWithoutOfflineAccess(t *testing.T) {
	s := newServer(t, scalekittest.Config{})
	tok := exchange(t, s, authorize(t, s, userAgent(), "skc_1", "ada@example.com", url.Values{"scope": {"openid email"}}))
	if tok.RefreshToken != "" {
		t.Error("a refresh token without offline_access")
	}
}

// Every way a session ends makes its refresh tokens fail.
func TestRefreshFailsAfterTheSessionEnds(t *testing.T) {
	clk := newClock()
	s := newServer(t, scalekittest.Config{IdleTimeout: time.Hour, Now: clk.Now})
	tests := []struct {
		name string
		end  func(t *testing.T, c *http.Client, tok tokenReply)
	}{
		{"logout", func(t *testing.T, c *http.Client, tok tokenReply) {
			logout(t, s, c, url.Values{"id_token_hint": {tok.IDToken}})
		}},
		{"revoke", func(t *testing.T, c *http.Client, tok tokenReply) {
			s.RevokeSession(claimsOf(t, tok.IDToken)["sid"].(string))
		}},
		{"revoke the user's sessions", func(t *testing.T, c *http.Client, tok tokenReply) {
			s.RevokeUserSessions(claimsOf(t, tok.IDToken)["sub"].(string))
		}},
		{"ExpireSession", func(t *testing.T, c *http.Client, tok tokenReply) {
			s.ExpireSession(claimsOf(t, tok.IDToken)["sid"].(string))
		}},
		{"idle timeout", func(t *testing.T, c *http.Client, tok tokenReply) { clk.Advance(time.Hour) }},
	}
	for _, tt := range tests {
		c, tok := signIn(t, s, "ada@example.com")
		tt.end(t, c, tok)
		if got := refresh(t, s, tok.RefreshToken); got.status != http.StatusBadRequest || got.Error != "invalid_grant" {
			t.Errorf("%s: refresh got %d %q, want 400 invalid_grant", tt.name, got.status, got.Error)
		}
	}
}
