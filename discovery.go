// SPDX-License-Identifier: Apache-2.0

// Reading the provider's discovery document, and checking configured URLs.

package logout

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// discoveryTimeout bounds New's fetch of the discovery document, whatever
// the HTTP client and the caller's context.
const discoveryTimeout = 10 * time.Second

// discoverEndSession reads the provider's discovery document once and returns
// its end_session_endpoint. The document must name the same issuer it was
// fetched from, as OpenID Connect Discovery requires.
func discoverEndSession(ctx context.Context, client *http.Client, issuer string) (string, error) {
	wellKnown := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, wellKnown, nil)
	if err != nil {
		return "", fmt.Errorf("logout: discovery: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("logout: discovery at %s: %w", wellKnown, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("logout: discovery at %s: status %s", wellKnown, resp.Status)
	}
	var doc struct {
		Issuer             string `json:"issuer"`
		EndSessionEndpoint string `json:"end_session_endpoint"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&doc); err != nil {
		return "", fmt.Errorf("logout: discovery at %s: not a JSON document: %w", wellKnown, err)
	}
	if strings.TrimSuffix(doc.Issuer, "/") != strings.TrimSuffix(issuer, "/") {
		return "", fmt.Errorf("logout: discovery at %s names issuer %q, want %q", wellKnown, doc.Issuer, issuer)
	}
	if doc.EndSessionEndpoint == "" {
		return "", fmt.Errorf("logout: discovery at %s has no end_session_endpoint; set Config.EndSessionEndpoint", wellKnown)
	}
	return doc.EndSessionEndpoint, nil
}

// checkURL accepts an absolute http(s) URL with a host, no user info and no
// fragment, over https unless the host is a loopback name or address.
func checkURL(field, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return nil, fmt.Errorf("logout: %s is required", field)
	case err != nil:
		return nil, fmt.Errorf("logout: %s %q: %w", field, raw, err)
	case !u.IsAbs() || u.Host == "" || u.Opaque != "":
		return nil, fmt.Errorf("logout: %s %q is not an absolute URL", field, raw)
	case u.User != nil:
		return nil, fmt.Errorf("logout: %s %q has user info", field, raw)
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return nil, fmt.Errorf("logout: %s %q has a fragment", field, raw)
	case u.Scheme == "https":
		return u, nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return u, nil
	case u.Scheme == "http":
		return nil, fmt.Errorf("logout: %s %q must use https (plain http is allowed for localhost only)", field, raw)
	default:
		return nil, fmt.Errorf("logout: %s %q must be an https URL", field, raw)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func defaultHTTPClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second}
}
