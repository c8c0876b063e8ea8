// SPDX-License-Identifier: Apache-2.0

package scalekittest

// A browser for tests: a client that navigates as a user would, and SignIn,
// which fills in whichever sign-in form shows.

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
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
// server's /oauth/authorize; SignIn fills in whichever sign-in form shows
// with email (and, on the upstream provider's form, a password), this
// server's or the upstream's; the browser then follows the redirects back
// to the app. When the browser still has a session here, or at the upstream
// for a sign-in that goes there, no form shows and the app signs in that
// session's user (single sign-on), as with Scalekit.
//
// It returns the app's last response, with its body unread; an error if the
// flow stopped on this server or the upstream (an error page) or the app
// answered with an error status.
func (s *Server) SignIn(ctx context.Context, browser *http.Client, loginURL, email string) (*http.Response, error) {
	resp, _, err := s.SignInForms(ctx, browser, loginURL, email)
	return resp, err
}

// SignInForms is [Server.SignIn] that also reports the forms it filled in,
// in order: none when the sign-in passed straight through.
func (s *Server) SignInForms(ctx context.Context, browser *http.Client, loginURL, email string) (*http.Response, []Form, error) {
	if browser.Jar == nil {
		return nil, nil, errors.New("scalekittest: SignIn needs a browser with a cookie jar")
	}
	resp, err := navigate(ctx, browser, http.MethodGet, loginURL, nil)
	if err != nil {
		return nil, nil, err
	}
	var forms []Form
	for {
		form, ok := s.formOn(resp)
		if !ok {
			break
		}
		// Each form shows once in a sign-in; more means one keeps coming
		// back, and filling it in again would not end.
		if len(forms) == 3 {
			resp.Body.Close()
			return nil, forms, fmt.Errorf("scalekittest: sign-in showed %v and then the %s form again", forms, form)
		}
		forms = append(forms, form)
		action, fields, err := readForm(resp)
		if err != nil {
			return nil, forms, err
		}
		fields.Set("email", email)
		if form == UpstreamForm {
			fields.Set("password", "any password")
		}
		resp, err = navigate(ctx, browser, http.MethodPost, action, strings.NewReader(fields.Encode()))
		if err != nil {
			return nil, forms, err
		}
	}
	at := resp.Request.URL
	onProvider := strings.HasPrefix(at.String(), s.URL+"/")
	for _, up := range s.ups {
		onProvider = onProvider || strings.HasPrefix(at.String(), up.URL+"/")
	}
	if onProvider || resp.StatusCode >= 400 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		resp.Body.Close()
		return nil, forms, fmt.Errorf("scalekittest: sign-in stopped at %s with status %d: %s", at.Redacted(), resp.StatusCode, b)
	}
	return resp, forms, nil
}

// formOn reports which sign-in form resp shows, if any.
func (s *Server) formOn(resp *http.Response) (Form, bool) {
	if resp.StatusCode != http.StatusOK {
		return "", false
	}
	u := resp.Request.URL
	origin := u.Scheme + "://" + u.Host
	if origin == s.URL && u.Path == "/oauth/authorize" {
		return ScalekitForm, true
	}
	for _, up := range s.ups {
		if origin == up.URL && u.Path == "/authorize" {
			return UpstreamForm, true
		}
	}
	return "", false
}

var (
	formAction  = regexp.MustCompile(`<form method="post" action="([^"]*)">`)
	hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)
)

// readForm reads a sign-in page of this package, as a browser would: the
// form's action, resolved against the page, and its hidden fields. It
// closes the body.
func readForm(resp *http.Response) (action string, fields url.Values, err error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return "", nil, fmt.Errorf("scalekittest: reading the sign-in form: %w", err)
	}
	m := formAction.FindSubmatch(b)
	if m == nil {
		return "", nil, fmt.Errorf("scalekittest: no form on the sign-in page at %s", resp.Request.URL.Redacted())
	}
	target, err := resp.Request.URL.Parse(html.UnescapeString(string(m[1])))
	if err != nil {
		return "", nil, fmt.Errorf("scalekittest: the sign-in form's action: %w", err)
	}
	fields = url.Values{}
	for _, f := range hiddenInput.FindAllSubmatch(b, -1) {
		fields.Add(html.UnescapeString(string(f[1])), html.UnescapeString(string(f[2])))
	}
	return target.String(), fields, nil
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
