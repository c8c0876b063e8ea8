// SPDX-License-Identifier: Apache-2.0

// Signing in: the authorization request with PKCE, and the callback that
// starts the session.

package main

import (
	"crypto/rand"
	"net/http"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/endsession/logout"
	"golang.org/x/oauth2"
)

// The sign-in request's state, nonce and PKCE verifier wait in a short-lived
// cookie until the provider sends the browser back.
const loginCookie = "demo_login"

// login starts a sign-in. A login_hint or an organization_id in its query
// goes on to the provider, as Scalekit's SDKs send them: the organization
// routes the sign-in to that organization's SSO connection. After a logout
// that asked for it, prompt=login makes the provider ask for credentials
// again instead of passing the user through on a session it still has.
func (a *app) login(w http.ResponseWriter, r *http.Request) {
	state, nonce, verifier := rand.Text(), rand.Text(), oauth2.GenerateVerifier()
	http.SetCookie(w, &http.Cookie{
		Name: loginCookie, Value: state + "." + nonce + "." + verifier, Path: "/callback",
		MaxAge: 600, HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil,
	})
	opts := []oauth2.AuthCodeOption{oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)}
	for _, name := range []string{"login_hint", "organization_id"} {
		if v := r.URL.Query().Get(name); v != "" {
			opts = append(opts, oauth2.SetAuthURLParam(name, v))
		}
	}
	if a.logout.PromptLogin(r) {
		opts = append(opts, oauth2.SetAuthURLParam("prompt", "login"))
	}
	http.Redirect(w, r, a.oauth.AuthCodeURL(state, opts...), http.StatusFound)
}

func (a *app) callback(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(loginCookie)
	parts := strings.Split(valueOf(c, err), ".")
	if len(parts) != 3 || r.URL.Query().Get("state") != parts[0] {
		http.Error(w, "sign-in failed: state mismatch; start again at /login", http.StatusBadRequest)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Path: "/callback", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil})
	tok, err := a.oauth.Exchange(r.Context(), r.URL.Query().Get("code"), oauth2.VerifierOption(parts[2]))
	if err != nil {
		a.log.Warn("code exchange failed", "error", err)
		http.Error(w, "sign-in failed: code exchange", http.StatusBadGateway)
		return
	}
	rawID, _ := tok.Extra("id_token").(string)
	idt, err := a.verifier.Verify(r.Context(), rawID)
	if err != nil || idt.Nonce != parts[1] {
		a.log.Warn("ID token rejected", "error", err)
		http.Error(w, "sign-in failed: invalid ID token", http.StatusBadRequest)
		return
	}
	var claims struct {
		SID   string `json:"sid"`
		Email string `json:"email"`
	}
	if err := idt.Claims(&claims); err != nil {
		http.Error(w, "sign-in failed: claims", http.StatusBadRequest)
		return
	}
	err = a.logout.StartSession(w, r, logout.Session{
		Issuer:            idt.Issuer,
		Subject:           idt.Subject,
		SessionID:         claims.SID,
		Email:             claims.Email,
		IDToken:           rawID,
		AccessToken:       tok.AccessToken,
		AccessTokenExpiry: tok.Expiry,
		RefreshToken:      tok.RefreshToken,
		// What the user's list of active sessions shows of this one. The
		// app chooses; the store keeps it readable, unsealed.
		Device: deviceOf(r.UserAgent()),
	})
	if err != nil {
		a.log.Error("starting the session", "error", err)
		http.Error(w, "sign-in failed: session store", http.StatusServiceUnavailable)
		return
	}
	rememberSignIn(w, r, lastSignIn{Email: claims.Email, SessionID: claims.SID})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func valueOf(c *http.Cookie, err error) string {
	if err != nil {
		return ""
	}
	return c.Value
}
