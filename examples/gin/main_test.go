// SPDX-License-Identifier: Apache-2.0

package main

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/endsession/logout"
)

func TestLogoutThroughGin(t *testing.T) {
	gin.SetMode(gin.TestMode)
	store, _ := logout.NewCookieStore(make([]byte, 32))
	h, err := logout.New(t.Context(), logout.Config{
		Store:                 store,
		EndSessionEndpoint:    "https://acme.scalekit.dev/oidc/logout",
		PostLogoutRedirectURI: "https://app.example.com/logged-out",
		IdleTimeout:           15 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	router := newRouter(h)

	rec := httptest.NewRecorder()
	h.StartSession(rec, httptest.NewRequest(http.MethodGet, "/callback", nil), logout.Session{
		Subject: "usr_1", Email: "ada@example.com", IDToken: "header.payload.sig", Expiry: time.Now().Add(time.Hour),
	})
	cookie := rec.Result().Cookies()[0]

	// The middleware hands the session to Gin's handlers.
	req := httptest.NewRequest(http.MethodGet, "https://app.example.com/me", nil)
	req.AddCookie(cookie)
	rec = httptest.NewRecorder()
	router.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || rec.Body.String() != "ada@example.com" {
		t.Fatalf("/me: %d %q, want 200 and the email", rec.Code, rec.Body.String())
	}

	req = httptest.NewRequest(http.MethodPost, "https://app.example.com/logout", nil)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.AddCookie(cookie)
	rec = httptest.NewRecorder()
	router.ServeHTTP(rec, req)
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("status %d, want 303", rec.Code)
	}
	loc, _ := url.Parse(rec.Header().Get("Location"))
	if loc.Host != "acme.scalekit.dev" || loc.Query().Get("id_token_hint") != "header.payload.sig" {
		t.Errorf("Location %s, want the end-session URL with the ID token", loc)
	}
	expired := false
	for _, c := range rec.Result().Cookies() {
		expired = expired || (c.Name == cookie.Name && c.MaxAge == -1)
	}
	if !expired {
		t.Errorf("cookies %v, want %s expired", rec.Result().Cookies(), cookie.Name)
	}

	req = httptest.NewRequest(http.MethodPost, "https://app.example.com/logout", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	rec = httptest.NewRecorder()
	router.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Errorf("cross-site POST through Gin: status %d, want 403", rec.Code)
	}

	rec = httptest.NewRecorder()
	router.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/logout", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET through Gin: status %d, want 405", rec.Code)
	}

	rec = httptest.NewRecorder()
	router.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/me", nil))
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("/me without a session: status %d, want 401", rec.Code)
	}
}
