package scalekittest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
)

// NewBrowser returns an *http.Client that acts, for the fake and the app
// under test, like a browser a user clicks through: it keeps cookies per
// site, follows redirects, and marks every request as a top-level
// navigation (Sec-Fetch-Mode: navigate, Sec-Fetch-Dest: document), so
// /oidc/logout sees its cookie and the app answers with redirects rather
// than JSON.
func NewBrowser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Transport: navigation{http.DefaultTransport}}
}

type navigation struct{ next http.RoundTripper }

func (n navigation) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Sec-Fetch-Mode", "navigate")
	r.Header.Set("Sec-Fetch-Dest", "document")
	return n.next.RoundTrip(r)
}

// SignIn signs email in through the real flow, as a user would: browser
// (from [NewBrowser], or any client with a cookie jar that follows
// redirects) opens loginURL, the app's route that redirects to this
// server's /oauth/authorize; when the sign-in form shows, SignIn submits it
// with email; the browser then follows the redirects back to the app. When
// the browser still has a session here, no form shows and the app signs in
// the session's user (single sign-on), as with Scalekit.
//
// It returns the app's last response, with its body unread; an error if the
// flow stopped on this server (an error page) or the app answered with an
// error status.
func (s *Server) SignIn(ctx context.Context, browser *http.Client, loginURL, email string) (*http.Response, error) {
	if browser.Jar == nil {
		return nil, errors.New("scalekittest: SignIn needs a browser with a cookie jar")
	}
	resp, err := navigate(ctx, browser, http.MethodGet, loginURL, nil)
	if err != nil {
		return nil, err
	}
	if s.onSignInForm(resp) {
		request := resp.Request.URL.RawQuery
		resp.Body.Close()
		form := url.Values{"request": {request}, "email": {email}}
		resp, err = navigate(ctx, browser, http.MethodPost, s.URL+"/oauth/authorize", strings.NewReader(form.Encode()))
		if err != nil {
			return nil, err
		}
	}
	if at := resp.Request.URL; strings.HasPrefix(at.String(), s.URL+"/") || resp.StatusCode >= 400 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		resp.Body.Close()
		return nil, fmt.Errorf("scalekittest: sign-in stopped at %s with status %d: %s", at.Redacted(), resp.StatusCode, b)
	}
	return resp, nil
}

func (s *Server) onSignInForm(resp *http.Response) bool {
	u := resp.Request.URL
	return resp.StatusCode == http.StatusOK && resp.Request.Method == http.MethodGet &&
		strings.TrimSuffix(u.Scheme+"://"+u.Host, "/") == s.URL && u.Path == "/oauth/authorize"
}

func navigate(ctx context.Context, c *http.Client, method, target string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scalekittest: %w", err)
	}
	return resp, nil
}
