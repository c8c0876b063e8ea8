package scalekittest

// The applications registered with an environment, and the rules their
// redirect URIs follow.

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Client is an application registered with the environment.
type Client struct {
	ID string
	// Secret authenticates the client at /oauth/token; a client without
	// one cannot use the token endpoint.
	Secret string
	// RedirectURIs are the exact callback URLs the client may use.
	RedirectURIs []string
	// PostLogoutRedirectURIs are the exact URLs /oidc/logout may send the
	// browser back to: absolute, without query or fragment, at most 256
	// characters.
	PostLogoutRedirectURIs []string
	// BackChannelLogoutURIs each receive a logout token whenever a session
	// the client signed into ends, unless the client itself asked for it.
	BackChannelLogoutURIs []string
}

// AddClient registers an application, or replaces the one with its ID.
func (s *Server) AddClient(c Client) error {
	if c.ID == "" {
		return errors.New("scalekittest: a client needs an ID")
	}
	for _, u := range slices.Concat(c.RedirectURIs, c.BackChannelLogoutURIs) {
		if !absoluteURL(u) {
			return fmt.Errorf("scalekittest: client %s: %q is not an absolute http(s) URL", c.ID, u)
		}
	}
	for _, u := range c.PostLogoutRedirectURIs {
		if err := checkPostLogoutURI(u); err != nil {
			return fmt.Errorf("scalekittest: client %s: %w", c.ID, err)
		}
	}
	c.RedirectURIs = slices.Clone(c.RedirectURIs)
	c.PostLogoutRedirectURIs = slices.Clone(c.PostLogoutRedirectURIs)
	c.BackChannelLogoutURIs = slices.Clone(c.BackChannelLogoutURIs)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients[c.ID] = &c
	return nil
}

func absoluteURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// checkPostLogoutURI applies Scalekit's rules for post-logout redirect URIs.
func checkPostLogoutURI(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || !absoluteURL(raw):
		return fmt.Errorf("post_logout_redirect_uri %q must be an absolute URL", raw)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#"):
		return fmt.Errorf("post_logout_redirect_uri %q must have no query and no fragment", raw)
	case len(raw) > 256:
		return fmt.Errorf("post_logout_redirect_uri is %d characters; at most 256", len(raw))
	}
	return nil
}
