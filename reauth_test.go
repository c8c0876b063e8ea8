package logout_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/endsession/logout"
)

// After a logout with re-authentication asked, and after every "sign out
// everywhere", the next sign-in on that browser sends prompt=login, once; a
// plain logout, and other browsers, are left alone.
func TestReauthenticateAfterLogout(t *testing.T) {
	tests := []struct {
		name       string
		reauth     bool
		everywhere bool
		want       bool
	}{
		{"plain logout", false, false, false},
		{"ReauthenticateAfterLogout", true, false, true},
		{"sign out everywhere", false, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := newHandler(t, newMiniStore(t), func(c *logout.Config) { c.ReauthenticateAfterLogout = tt.reauth })
			cookies := signIn(t, h, testSession())
			var endpoint http.Handler = h
			if tt.everywhere {
				endpoint = h.Everywhere()
			}
			resp := serve(endpoint, logoutRequest(http.MethodPost, cookies))
			marker, set := setCookies(resp)["__Host-session-reauth"]
			if set != tt.want {
				t.Fatalf("marker set = %v, want %v: %v", set, tt.want, resp.Header.Values("Set-Cookie"))
			}
			if !tt.want {
				return
			}
			for _, attr := range []string{"secure", "httponly"} {
				if _, ok := marker[attr]; !ok {
					t.Errorf("marker lacks %s: %v", attr, marker)
				}
			}
			if marker["path"] != "/" || marker["samesite"] != "Lax" || marker["max-age"] == "0" || marker["max-age"] == "" {
				t.Errorf("marker attributes %v", marker)
			}

			// The browser that signed out: its next sign-in asks again.
			login := httptest.NewRequest(http.MethodGet, testAppOrigin+"/login", nil)
			login.AddCookie(&http.Cookie{Name: "__Host-session-reauth", Value: "1"})
			if !h.PromptLogin(login) {
				t.Error("PromptLogin = false for the browser that signed out")
			}
			// Another browser is not affected.
			if h.PromptLogin(httptest.NewRequest(http.MethodGet, testAppOrigin+"/login", nil)) {
				t.Error("PromptLogin = true for a browser without the marker")
			}
			// Signing in clears the mark: only the first sign-in asks.
			rec := httptest.NewRecorder()
			if err := h.StartSession(rec, login, testSession()); err != nil {
				t.Fatal(err)
			}
			if got := setCookies(rec.Result())["__Host-session-reauth"]; got["max-age"] != "0" {
				t.Errorf("sign-in left the marker: %v", got)
			}
		})
	}
}
