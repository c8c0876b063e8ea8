// SPDX-License-Identifier: Apache-2.0

package scalekittest

// The environment's users and organizations: who they are, how a first
// sign-in creates a user, and how a test preloads both.

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// User is a user of the environment. The fields a test leaves empty when it
// preloads one ([Config.Users], [Server.AddUser]) are filled in as a first
// sign-in would: a new ID, a name made from the address, the organization
// of its domain, the member role.
type User struct {
	ID             string // usr_ and digits
	Email          string
	GivenName      string
	FamilyName     string
	OrganizationID string // org_ and digits
	// ExternalID and Metadata are the app's own identifier and key-value
	// data for the user, as a user.logout webhook's data.user carries them
	// (developer-docs openapi/scalekit.yaml, UserAuthEventData).
	ExternalID string
	Metadata   map[string]string
	// Roles and Permissions are what the user's access tokens carry
	// (developer-docs src/content/docs/authenticate/fsa/session-token-claims.mdx).
	// Nil Roles means ["member"], the role users who join an organization
	// get by default (authenticate/authz/assign-roles.mdx).
	Roles       []string
	Permissions []string
	// ProfileID is the user's profile, usp_ and digits, as the webhook's
	// data.user.user_profile.id names it.
	ProfileID string
	// CreatedAt is when the user was created; LastLoginAt when it last
	// signed in (zero before its first sign-in).
	CreatedAt   time.Time
	LastLoginAt time.Time
}

// Name is the user's full name, as the name claim carries it.
func (u User) Name() string { return strings.TrimSpace(u.GivenName + " " + u.FamilyName) }

func (u User) clone() User {
	u.Metadata = maps.Clone(u.Metadata)
	u.Roles = slices.Clone(u.Roles)
	u.Permissions = slices.Clone(u.Permissions)
	return u
}

// Organization is an organization of the environment. Every environment has
// one that users join by default ([Server.DefaultOrganization]), and each
// upstream provider's connection belongs to one.
type Organization struct {
	ID          string // org_ and digits; empty means a new one
	DisplayName string
	ExternalID  string
}

// User returns the user with that email, creating it on first use with a
// name made from the address (ada.lovelace@… is Ada Lovelace). A user of
// one of an upstream provider's domains belongs to its organization.
func (s *Server) User(email string) User {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.userIn(email, "").clone()
}

// Users returns every user, preloaded or created by a sign-in, ordered by
// email address.
func (s *Server) Users() []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]User, 0, len(s.users))
	for _, u := range s.users {
		out = append(out, u.clone())
	}
	slices.SortFunc(out, func(a, b User) int { return strings.Compare(a.Email, b.Email) })
	return out
}

// AddUser creates a user before any sign-in, and returns it with the fields
// it left empty filled in. Its ID and email must be new, and its
// organization one the environment knows.
func (s *Server) AddUser(u User) (User, error) {
	if !strings.Contains(u.Email, "@") {
		return User{}, fmt.Errorf("scalekittest: user %q: an email address is required", u.Email)
	}
	if u.ID != "" && !validID(u.ID, "usr_") {
		return User{}, fmt.Errorf("scalekittest: user %s: the ID must be usr_ followed by digits", u.Email)
	}
	if u.ProfileID != "" && !validID(u.ProfileID, "usp_") {
		return User{}, fmt.Errorf("scalekittest: user %s: the profile ID must be usp_ followed by digits", u.Email)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.users[u.Email] != nil:
		return User{}, fmt.Errorf("scalekittest: user %s exists already", u.Email)
	case u.ID != "" && s.userByID[u.ID] != nil:
		return User{}, fmt.Errorf("scalekittest: user ID %s is taken", u.ID)
	case u.OrganizationID != "" && s.orgs[u.OrganizationID] == nil:
		return User{}, fmt.Errorf("scalekittest: user %s: unknown organization %s", u.Email, u.OrganizationID)
	}
	return s.addUserLocked(u).clone(), nil
}

// AddOrganization creates an organization, with a new ID unless it names
// one, and returns it.
func (s *Server) AddOrganization(o Organization) (Organization, error) {
	if o.ID == "" {
		o.ID = newID("org_")
	} else if !validID(o.ID, "org_") {
		return Organization{}, fmt.Errorf("scalekittest: organization %q: the ID must be org_ followed by digits", o.ID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.orgs[o.ID] != nil {
		return Organization{}, fmt.Errorf("scalekittest: organization %s exists already", o.ID)
	}
	s.orgs[o.ID] = &o
	return o, nil
}

// Organizations returns every organization, ordered by ID.
func (s *Server) Organizations() []Organization {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Organization, 0, len(s.orgs))
	for _, o := range s.orgs {
		out = append(out, *o)
	}
	slices.SortFunc(out, func(a, b Organization) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// DefaultOrganization is the organization users join unless their domain
// or their sign-in puts them in another.
func (s *Server) DefaultOrganization() Organization {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.orgs[s.orgID]
}

// userIn returns the user with that email, creating it in organization org
// (or, when org is "", in the one its domain belongs to). The caller holds
// s.mu.
func (s *Server) userIn(email, org string) *User {
	if u := s.users[email]; u != nil {
		return u
	}
	return s.addUserLocked(User{Email: email, OrganizationID: org})
}

// addUserLocked fills in what u leaves empty and records it. The caller
// holds s.mu and has checked u.
func (s *Server) addUserLocked(u User) *User {
	if u.ID == "" {
		u.ID = newID("usr_")
	}
	if u.ProfileID == "" {
		u.ProfileID = newID("usp_")
	}
	if u.OrganizationID == "" {
		u.OrganizationID = s.orgID
		if up := s.upstreamOfDomain(u.Email); up != nil {
			u.OrganizationID = up.OrganizationID
		}
	}
	if u.GivenName == "" && u.FamilyName == "" {
		u.GivenName, u.FamilyName = namesFrom(u.Email)
	}
	if u.Roles == nil {
		u.Roles = []string{"member"}
	}
	if u.Permissions == nil {
		u.Permissions = []string{}
	}
	if u.Metadata == nil {
		u.Metadata = map[string]string{}
	}
	if u.CreatedAt.IsZero() {
		u.CreatedAt = s.now()
	}
	p := &u
	s.users[u.Email] = p
	s.userByID[u.ID] = p
	return p
}
