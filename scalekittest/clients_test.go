package scalekittest_test

import (
	"strings"
	"testing"

	"github.com/endsession/logout/scalekittest"
)

// Callback and post-logout URIs follow the dashboard's redirects guide: no
// query, no fragment, at most 256 characters, a custom scheme allowed; the
// error names the rule.
func TestRedirectURIRules(t *testing.T) {
	long := "https://app.example.com/" + strings.Repeat("a", 256-len("https://app.example.com/"))
	tests := []struct {
		uri  string
		rule string // "" when accepted
	}{
		{"https://app.example.com/callback", ""},
		{"http://localhost:3000/callback", ""},
		{"myapp://callback", ""},
		{"com.example.app:/oauth2redirect", ""},
		{long, ""},
		{long + "a", "at most 256"},
		{"https://app.example.com/callback?next=1", "no query"},
		{"https://app.example.com/callback?", "no query"},
		{"https://app.example.com/callback#top", "no fragment"},
		{"/callback", "absolute"},
		{"https:///callback", "host"},
		{"myapp:", "host or a path"},
	}
	s := scalekittest.NewServer()
	defer s.Close()
	for _, tt := range tests {
		for _, field := range []string{"redirect", "post-logout"} {
			c := scalekittest.Client{ID: "skc_1"}
			if field == "redirect" {
				c.RedirectURIs = []string{tt.uri}
			} else {
				c.PostLogoutRedirectURIs = []string{tt.uri}
			}
			err := s.AddClient(c)
			switch {
			case tt.rule == "" && err != nil:
				t.Errorf("%s URI %q: %v, want it accepted", field, tt.uri, err)
			case tt.rule != "" && (err == nil || !strings.Contains(err.Error(), tt.rule)):
				t.Errorf("%s URI %q: %v, want an error naming %q", field, tt.uri, err, tt.rule)
			}
		}
	}
}
