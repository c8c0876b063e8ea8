// SPDX-License-Identifier: Apache-2.0

// The provider's signing keys, fetched from its JWKS document and refetched
// sparingly.

package logout

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// keyRefetchInterval is the least time between two fetches of the issuer's
// keys that logout tokens cause. Anyone can POST a token naming a key ID the
// set does not hold, so without it every such POST would become a request
// to the provider. It is well under a logout token's lifetime (about two
// minutes, plus the clock skew), so a provider that retries a token refused
// with 503 for its new key still finds it accepted.
const keyRefetchInterval = 30 * time.Second

// keyFetchTimeout bounds one fetch of the keys, whatever the HTTP client.
const keyFetchTimeout = 10 * time.Second

var (
	// errKeyUnavailable means the token names a key the set cannot get
	// right now: the keys were fetched too recently to fetch them again, or
	// the fetch failed. A genuine token may carry it, so the provider is
	// asked to retry.
	errKeyUnavailable = errors.New("signing key unavailable")
	// errUnknownKey means keys fetched after the token arrived do not hold
	// the key it names: no retry can help.
	errUnknownKey = errors.New("unknown signing key")
)

// keySet holds the issuer's RS256 signing keys by key ID, as its JWKS
// document publishes them. A key ID it holds costs no network I/O; an
// unknown one makes it fetch the document again, at most once per
// keyRefetchInterval however many tokens ask, and concurrent tokens share
// that one fetch. It is safe for concurrent use.
type keySet struct {
	uri    string
	client *http.Client

	mu          sync.Mutex
	keys        map[string]*rsa.PublicKey
	lastRefetch time.Time     // when a token last caused a fetch; zero before
	fetching    chan struct{} // closed when the fetch under way ends; nil when none
}

// load fetches the keys once, when the handler is built. A token caused no
// fetch, so the refetch interval does not start.
func (s *keySet) load(ctx context.Context) error {
	keys, err := s.fetch(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.keys = keys
	s.mu.Unlock()
	return nil
}

// key returns the key named kid for a token that arrived at now. A token
// without kid may use the only key of a set that has one; OpenID Connect
// requires a kid whenever the set has several.
func (s *keySet) key(ctx context.Context, kid string, now time.Time) (*rsa.PublicKey, error) {
	s.mu.Lock()
	if k, ok := s.lookup(kid); ok {
		s.mu.Unlock()
		return k, nil
	}
	if kid == "" && len(s.keys) > 1 {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: the token names no kid and the issuer has %d keys", errUnknownKey, len(s.keys))
	}
	if wait := s.fetching; wait != nil {
		s.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: kid %.64q: %w", errKeyUnavailable, kid, ctx.Err())
		}
		s.mu.Lock()
		k, ok := s.lookup(kid)
		s.mu.Unlock()
		if !ok {
			// That fetch may have started before the key was published.
			return nil, fmt.Errorf("%w: kid %.64q is not in the keys fetched meanwhile", errKeyUnavailable, kid)
		}
		return k, nil
	}
	if since := now.Sub(s.lastRefetch); !s.lastRefetch.IsZero() && since < keyRefetchInterval {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: kid %.64q is unknown and the keys were fetched %s ago", errKeyUnavailable, kid, since.Round(time.Millisecond))
	}
	s.lastRefetch = now
	done := make(chan struct{})
	s.fetching = done
	s.mu.Unlock()

	// The fetch serves every token waiting on it: the client that sent this
	// one going away must not cut it short.
	keys, err := s.fetch(context.WithoutCancel(ctx))
	s.mu.Lock()
	if err == nil {
		s.keys = keys
	}
	s.fetching = nil
	close(done)
	k, ok := s.lookup(kid)
	s.mu.Unlock()
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: kid %.64q: %w", errKeyUnavailable, kid, err)
	case !ok:
		return nil, fmt.Errorf("%w: kid %.64q", errUnknownKey, kid)
	}
	return k, nil
}

// lookup must be called with s.mu held.
func (s *keySet) lookup(kid string) (*rsa.PublicKey, bool) {
	if kid == "" && len(s.keys) == 1 {
		for _, k := range s.keys {
			return k, true
		}
	}
	k, ok := s.keys[kid]
	return k, ok
}

// fetch reads the JWKS document and keeps its RSA public keys meant for
// RS256 signatures. Keys of other kinds are skipped, not refused: the
// provider may publish keys for other uses beside them.
func (s *keySet) fetch(ctx context.Context) (map[string]*rsa.PublicKey, error) {
	ctx, cancel := context.WithTimeout(ctx, keyFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.uri, nil)
	if err != nil {
		return nil, fmt.Errorf("keys at %s: %w", s.uri, err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("keys at %s: %w", s.uri, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("keys at %s: status %s", s.uri, resp.Status)
	}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&doc); err != nil {
		return nil, fmt.Errorf("keys at %s: not a JWKS document: %w", s.uri, err)
	}
	keys := map[string]*rsa.PublicKey{}
	for _, raw := range doc.Keys {
		var k jose.JSONWebKey
		if k.UnmarshalJSON(raw) != nil {
			continue
		}
		pub, ok := k.Key.(*rsa.PublicKey)
		if !ok || (k.Use != "" && k.Use != "sig") || (k.Algorithm != "" && k.Algorithm != string(jose.RS256)) {
			continue
		}
		if _, dup := keys[k.KeyID]; !dup {
			keys[k.KeyID] = pub
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("keys at %s: no RS256 signing key among %d", s.uri, len(doc.Keys))
	}
	return keys, nil
}
