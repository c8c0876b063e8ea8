// SPDX-License-Identifier: Apache-2.0

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
	// RedirectURIs are the callback URLs the client may use, and
	// PostLogoutRedirectURIs those /oidc/logout may send the browser back
	// to. Both follow the rules of the dashboard's redirects guide
	// (developer-docs src/content/docs/guides/dashboard/redirects.mdx, "URI
	// validation requirements"): absolute, no query, no fragment, at most
	// 256 characters; a custom scheme such as myapp://callback is allowed,
	// for native apps. A URI must match one exactly, or match one with a
	// wildcard, which the guide allows in development environments, as the
	// fake is, and only in its host name's outermost label:
	// http://*.app.localhost:3000/callback matches
	// http://eu.app.localhost:3000/callback (see "Wildcard usage
	// patterns" there).
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
	// BackChannelLogoutURIs each receive a logout token whenever a session
	// the client signed into ends, however it ended: the client's own
	// logout at /oidc/logout included. They are absolute http(s) URLs: the
	// environment calls them itself.
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
// post-logout URI; the error names the rule broken. A URI with a wildcard
// must follow the guide's wildcard patterns too.
func checkRedirectURI(kind, raw string) error {
	if strings.Contains(raw, "*") {
		if err := checkWildcard(kind, raw); err != nil {
			return err
		}
	}
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

// checkWildcard applies the redirects guide's "Wildcard usage patterns"
// (developer-docs src/content/docs/guides/dashboard/redirects.mdx), which
// allow wildcard domains in development environments: one wildcard per URI,
// in the host name only, in its outermost label (*.auth.example.com, or
// part of it: auth-*.example.com), and never for a whole top-level domain
// (*.com). The fake reads that last rule strictly: the labels after the
// wildcard's must be a domain of at least two labels, so *.localhost, a
// top-level name, is refused too. Wildcard domains are domains: http and
// https URIs only.
func checkWildcard(kind, raw string) error {
	if strings.Count(raw, "*") > 1 {
		return fmt.Errorf("%s %q has more than one wildcard: Scalekit allows one per URI", kind, raw)
	}
	u, err := url.Parse(raw)
	if err != nil || u.User != nil || !strings.Contains(u.Hostname(), "*") {
		return fmt.Errorf("%s %q has a wildcard outside the host name: Scalekit allows one only in the host name, as in https://*.example.com", kind, raw)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%s %q has a wildcard in a %s URI: Scalekit allows wildcard domains in http and https URIs only", kind, raw, u.Scheme)
	}
	labels := strings.Split(u.Hostname(), ".")
	if !strings.Contains(labels[0], "*") {
		return fmt.Errorf("%s %q has a wildcard below the outermost subdomain: Scalekit allows one only there, as in https://*.auth.example.com", kind, raw)
	}
	tld := labels[len(labels)-1]
	if len(labels) < 3 || slices.Contains(labels, "") || strings.Trim(tld, "0123456789") == "" {
		return fmt.Errorf("%s %q puts a wildcard right under a top-level domain: Scalekit allows none there (not *.com, nor *.localhost); use one under a domain, as in https://*.example.com", kind, raw)
	}
	return nil
}

// redirectURIRegistered reports whether uri is one of registered, or
// matches one of them that has a wildcard. A wildcard stands for one or
// more letters, digits or hyphens: part of one DNS label, never a dot, so
// *.example.com matches a.example.com but not a.b.example.com nor
// example.com; the rest of the URI must be the same to the byte.
func redirectURIRegistered(registered []string, uri string) bool {
	for _, r := range registered {
		if r == uri || wildcardMatch(r, uri) {
			return true
		}
	}
	return false
}

func wildcardMatch(pattern, uri string) bool {
	prefix, suffix, ok := strings.Cut(pattern, "*")
	if !ok || len(uri) > maxRedirectURI || len(uri) <= len(prefix)+len(suffix) ||
		!strings.HasPrefix(uri, prefix) || !strings.HasSuffix(uri, suffix) {
		return false
	}
	for _, r := range uri[len(prefix) : len(uri)-len(suffix)] {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// appendQuery adds params to a registered redirect URI, which has no query
// of its own.
func appendQuery(target string, params url.Values) string {
	if len(params) == 0 {
		return target
	}
	return target + "?" + params.Encode()
}
