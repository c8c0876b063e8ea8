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
	// Secret authenticates the client at /oauth/token, in the form
	// (client_secret_post) or in Basic auth (client_secret_basic). Empty
	// makes a public client, a single-page or native app that cannot keep
	// a secret: it must send a PKCE code_challenge with every
	// authorization request, and it redeems its code and refreshes its
	// tokens with its client_id and the code_verifier alone
	// (developer-docs src/content/docs/authenticate/fsa/multiapp/
	// single-page-app.mdx and native-app.mdx). A public client cannot use
	// the client_credentials grant.
	Secret string
	// RedirectURIs are the exact callback URLs the client may use, and
	// PostLogoutRedirectURIs those /oidc/logout may send the browser back
	// to. Both follow the rules of the dashboard's redirects guide
	// (developer-docs src/content/docs/guides/dashboard/redirects.mdx, "URI
	// validation requirements"): absolute, no query, no fragment, at most
	// 256 characters; a custom scheme such as myapp://callback is allowed,
	// for native apps.
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
	// BackChannelLogoutURIs each receive a logout token whenever a session
	// the client signed into ends, unless the client itself asked for it.
	// They are absolute http(s) URLs: the environment calls them itself.
	BackChannelLogoutURIs []string
}

// public reports whether the client is a public one, without a secret.
func (c *Client) public() bool { return c.Secret == "" }

// AddClient registers an application, or replaces the one with its ID. A
// redirect URI that breaks one of Scalekit's rules is refused with an error
// that names the rule.
func (s *Server) AddClient(c Client) error {
	if c.ID == "" {
		return errors.New("scalekittest: a client needs an ID")
	}
	for _, u := range c.RedirectURIs {
		if err := checkRedirectURI("redirect URI", u); err != nil {
			return fmt.Errorf("scalekittest: client %s: %w", c.ID, err)
		}
	}
	for _, u := range c.PostLogoutRedirectURIs {
		if err := checkRedirectURI("post-logout redirect URI", u); err != nil {
			return fmt.Errorf("scalekittest: client %s: %w", c.ID, err)
		}
	}
	for _, u := range c.BackChannelLogoutURIs {
		if !absoluteURL(u) {
			return fmt.Errorf("scalekittest: client %s: back-channel logout URI %q is not an absolute http(s) URL", c.ID, u)
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

// maxRedirectURI is the longest redirect URI Scalekit registers
// (guides/dashboard/redirects.mdx, "URI length limit").
const maxRedirectURI = 256

// checkRedirectURI applies the rules of Scalekit's redirects guide
// (developer-docs src/content/docs/guides/dashboard/redirects.mdx, "URI
// validation requirements" and "Custom URI schemes") to a callback or
// post-logout URI; the error names the rule broken. The guide allows
// wildcards in development environments only; the fake registers none, and
// matches every URI exactly.
func checkRedirectURI(kind, raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Scheme == "":
		return fmt.Errorf("%s %q must be an absolute URI, with a scheme", kind, raw)
	case (u.Scheme == "http" || u.Scheme == "https") && u.Host == "":
		return fmt.Errorf("%s %q must name a host", kind, raw)
	case u.Host == "" && u.Opaque == "" && strings.Trim(u.Path, "/") == "":
		return fmt.Errorf("%s %q must name a host or a path after its scheme", kind, raw)
	case u.RawQuery != "" || u.ForceQuery || strings.Contains(raw, "?"):
		return fmt.Errorf("%s %q must have no query: Scalekit allows none", kind, raw)
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return fmt.Errorf("%s %q must have no fragment: Scalekit allows none", kind, raw)
	case len(raw) > maxRedirectURI:
		return fmt.Errorf("%s is %d characters long: Scalekit allows at most %d", kind, len(raw), maxRedirectURI)
	}
	return nil
}

// appendQuery adds params to a registered redirect URI, which has no query
// of its own.
func appendQuery(target string, params url.Values) string {
	if len(params) == 0 {
		return target
	}
	return target + "?" + params.Encode()
}
