// SPDX-License-Identifier: Apache-2.0

package scalekittest

// The signing keys: rotation, the JWKS at /keys, and signing and verifying
// the environment's own tokens.

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

// RotateKey starts signing with a new key. The old keys stay published, so
// tokens signed before stay valid; apps see a kid they do not know yet.
func (s *Server) RotateKey() {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append([]*signingKey{{id: "snk_" + digits(18), key: k}}, s.keys...)
}

// Sign signs claims as a JWT with the current key (RS256), adding the typ
// header when typ is not empty. Tests use it to build tokens of their own.
func (s *Server) Sign(claims map[string]any, typ string) (string, error) {
	s.mu.Lock()
	k := s.keys[0]
	s.mu.Unlock()
	opts := (&jose.SignerOptions{}).WithHeader(jose.HeaderKey("kid"), k.id)
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k.key}, opts)
	if err != nil {
		return "", err
	}
	return jwt.Signed(signer).Claims(claims).Serialize()
}

// PublicKey returns the current signing key's public half, for tests that
// forge tokens with it (an HS256 token keyed with the public key, say).
func (s *Server) PublicKey() *rsa.PublicKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &s.keys[0].key.PublicKey
}

func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	var set jose.JSONWebKeySet
	for _, k := range s.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.key.PublicKey, KeyID: k.id, Algorithm: "RS256", Use: "sig"})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, set)
}

// verifyOwnToken accepts a JWT this server signed with any published key. It
// checks nothing about time: an id_token_hint may have expired, as OpenID
// Connect RP-Initiated Logout allows, and callers that care check exp.
func (s *Server) verifyOwnToken(raw string) (map[string]any, error) {
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil, errors.New("not a signed JWT")
	}
	s.mu.Lock()
	keys := slices.Clone(s.keys)
	s.mu.Unlock()
	for _, k := range keys {
		var claims map[string]any
		if err := tok.Claims(&k.key.PublicKey, &claims); err == nil {
			if claims["iss"] != s.URL {
				return nil, errors.New("not issued here")
			}
			return claims, nil
		}
	}
	return nil, errors.New("bad signature")
}

// expired reports whether claims carry an exp at or before now.
func expired(claims map[string]any, now time.Time) bool {
	exp, ok := claims["exp"].(float64)
	return !ok || !now.Before(time.Unix(int64(exp), 0))
}

func audience(claims map[string]any) []string {
	switch a := claims["aud"].(type) {
	case string:
		return []string{a}
	case []any:
		var out []string
		for _, v := range a {
			if s, ok := v.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
