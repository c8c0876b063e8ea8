// SPDX-License-Identifier: Apache-2.0

package scalekittest_test

import (
	"slices"
	"testing"

	"github.com/endsession/logout/scalekittest"
)

// A preloaded user keeps what the test gave it and signs in under it; what
// it left empty is filled in as a first sign-in would.
func TestPreloadedUsersAndOrganizations(t *testing.T) {
	s := newServer(t, scalekittest.Config{
		Organizations: []scalekittest.Organization{{ID: "org_42", DisplayName: "Acme"}},
		Users: []scalekittest.User{
			{ID: "usr_7", Email: "ada@example.com", GivenName: "Augusta", FamilyName: "King", OrganizationID: "org_42",
				ExternalID: "ext_7", Metadata: map[string]string{"plan": "pro"}, Roles: []string{"admin"}},
			{Email: "alan@example.com"},
		},
	})
	_, tok := signIn(t, s, "ada@example.com")
	claims := claimsOf(t, tok.IDToken)
	if claims["sub"] != "usr_7" || claims["oid"] != "org_42" || claims["name"] != "Augusta King" {
		t.Errorf("ID token of the preloaded user: %v", claims)
	}
	ada, alan := s.User("ada@example.com"), s.User("alan@example.com")
	if ada.LastLoginAt.IsZero() || !alan.LastLoginAt.IsZero() || ada.Metadata["plan"] != "pro" {
		t.Errorf("ada %+v, alan %+v", ada, alan)
	}
	if !scalekitID.MatchString(alan.ID) || alan.OrganizationID != s.DefaultOrganization().ID || alan.GivenName != "Alan" ||
		!slices.Equal(alan.Roles, []string{"member"}) || alan.ProfileID == "" {
		t.Errorf("alan, filled in: %+v", alan)
	}
	if _, err := s.AddUser(scalekittest.User{Email: "ada@example.com"}); err == nil {
		t.Error("AddUser accepted an existing email")
	}
	if _, err := s.AddUser(scalekittest.User{ID: "usr_7", Email: "other@example.com"}); err == nil {
		t.Error("AddUser accepted an existing ID")
	}
	if got := len(s.Users()); got != 2 {
		t.Errorf("%d users, want 2", got)
	}
	if got := len(s.Organizations()); got != 2 {
		t.Errorf("%d organizations, want the default one and Acme", got)
	}
}
