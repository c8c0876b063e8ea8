package scalekittest

// The environment's users: who they are, and how a first sign-in creates one.

import "strings"

// User is a user of the environment.
type User struct {
	ID             string // usr_ and digits
	Email          string
	GivenName      string
	FamilyName     string
	OrganizationID string // org_ and digits
}

// Name is the user's full name, as the name claim carries it.
func (u User) Name() string { return strings.TrimSpace(u.GivenName + " " + u.FamilyName) }

// User returns the user with that email, creating it on first use with a
// name made from the address (ada.lovelace@… is Ada Lovelace). A user of
// one of the upstream provider's domains belongs to its organization.
func (s *Server) User(email string) User {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.userIn(email, "")
}

// userIn returns the user with that email, creating it in organization org
// (or, when org is "", in the one its domain belongs to). The caller holds
// s.mu.
func (s *Server) userIn(email, org string) *User {
	u := s.users[email]
	if u == nil {
		if org == "" {
			org = s.orgID
			if s.up != nil && s.up.routesDomain(email) {
				org = s.up.OrganizationID
			}
		}
		given, family := namesFrom(email)
		u = &User{ID: newID("usr_"), Email: email, GivenName: given, FamilyName: family, OrganizationID: org}
		s.users[email] = u
		s.userByID[u.ID] = u
	}
	return u
}
