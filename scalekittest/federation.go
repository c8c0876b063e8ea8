// SPDX-License-Identifier: Apache-2.0

package scalekittest

// The environment's side of its upstream providers: which sign-ins go there,
// the browser's round trip there and back, and the record of each
// authorization that tests read through [Server.Authorizations].

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// authorization is an [Authorization] with the ID its forms carry, so that
// a form post and a return from the upstream find their record.
type authorization struct {
	Authorization
	id string
}

// federation is a sign-in sent to an upstream and not yet back, under the
// state sent with it.
type federation struct {
	up      *Upstream
	query   url.Values
	authz   *authorization
	expires time.Time
}

// federationLifetime is how long the user has to finish at the upstream.
const federationLifetime = 10 * time.Minute

func (s *Server) newAuthorization(clientID string, q url.Values) *authorization {
	a := &authorization{Authorization: Authorization{ClientID: clientID, Params: cloneValues(q)}, id: "az_" + randomText()}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.authzs = append(s.authzs, a)
	s.authzByID[a.id] = a
	return a
}

// formAuthorization finds the record of the request a form was shown for;
// a form posted without one (built by hand, say) starts a record of its own.
func (s *Server) formAuthorization(id, clientID string, q url.Values) *authorization {
	s.mu.Lock()
	a := s.authzByID[id]
	s.mu.Unlock()
	if a != nil && a.ClientID == clientID {
		return a
	}
	return s.newAuthorization(clientID, q)
}

// upstreamRoute returns the upstream provider an authorization request goes
// to, if any, and which parameter decided. Scalekit's SDKs let apps name a
// connection, an organization or a domain; failing those, the domain of
// the login_hint, or of the address typed into the form (which then stands
// in for the hint), decides ("Scalekit extracts the email domain from
// login_hint and routes the user to the matching organization's SSO
// connection": developer-docs src/content/docs/authenticate/fsa/
// implement-login.mdx). The first of these a request carries decides
// alone, in that order, so a request for another organization does not go
// upstream whatever its hint says.
func (s *Server) upstreamRoute(q url.Values, typed string) (*Upstream, string) {
	if len(s.ups) == 0 {
		return nil, ""
	}
	switch {
	case q.Get("connection_id") != "":
		return s.upByConn[q.Get("connection_id")], "connection_id"
	case q.Get("organization_id") != "":
		for _, up := range s.ups {
			if up.OrganizationID == q.Get("organization_id") {
				return up, "organization_id"
			}
		}
		return nil, "organization_id"
	case q.Get("domain_hint") != "":
		return s.upstreamOfDomainName(q.Get("domain_hint")), "domain_hint"
	case q.Get("domain") != "":
		return s.upstreamOfDomainName(q.Get("domain")), "domain"
	case typed != "":
		return s.upstreamOfDomain(typed), "email"
	case strings.Contains(q.Get("login_hint"), "@"):
		return s.upstreamOfDomain(q.Get("login_hint")), "login_hint"
	}
	return nil, ""
}

// upstreamOfDomain is the upstream whose domains hold email's, or nil.
func (s *Server) upstreamOfDomain(email string) *Upstream {
	_, domain, ok := strings.Cut(email, "@")
	if !ok {
		return nil
	}
	return s.upstreamOfDomainName(domain)
}

func (s *Server) upstreamOfDomainName(domain string) *Upstream {
	for _, up := range s.ups {
		if up.routesDomainName(domain) {
			return up
		}
	}
	return nil
}

// federate sends the browser to the upstream's authorization endpoint, with
// a state of the environment's own, the user's address as a login_hint,
// and prompt=login only when the environment forwards it.
func (s *Server) federate(w http.ResponseWriter, r *http.Request, q url.Values, a *authorization, up *Upstream, by, email string) {
	state := "sks_" + randomText()
	params := url.Values{"client_id": {up.clientID()}, "redirect_uri": {up.redirectURI()}, "response_type": {"code"},
		"scope": {"openid email profile"}, "state": {state}}
	if strings.Contains(email, "@") {
		params.Set("login_hint", email)
	}
	forward := slices.Contains(strings.Fields(q.Get("prompt")), "login") && up.cfg.ForwardPrompt
	if forward {
		params.Set("prompt", "login")
	}
	now := s.now()
	s.mu.Lock()
	for st, f := range s.pending {
		if !now.Before(f.expires) {
			delete(s.pending, st)
		}
	}
	s.pending[state] = &federation{up: up, query: q, authz: a, expires: now.Add(federationLifetime)}
	a.Upstream, a.ConnectionID, a.RoutedBy, a.PromptForwarded = true, up.ConnectionID, by, forward
	s.mu.Unlock()
	redirect(w, r, up.URL+"/authorize?"+params.Encode())
}

// ssoCallback is where an upstream sends the browser back, at the redirect
// URI of its connection: the state names the sign-in it went for (once),
// the code the upstream session that authenticated the user. The
// environment then signs the user in with a session of its own, as after
// its own form.
func (s *Server) ssoCallback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	up := s.upByConn[r.PathValue("connection_id")]
	if up == nil {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	f := s.pending[q.Get("state")]
	delete(s.pending, q.Get("state"))
	s.mu.Unlock()
	if f == nil || f.up != up || !s.now().Before(f.expires) {
		errorPage(w, "invalid_request: unknown or expired state")
		return
	}
	via, ok := up.redeem(q.Get("code"))
	if !ok {
		errorPage(w, "invalid_grant: the upstream's code is unknown, used or expired")
		return
	}
	client, err := s.checkClient(f.query)
	if err != nil {
		errorPage(w, err.Error())
		return
	}
	s.finishAuthorize(w, r, client, s.signIn(w, r, via.email, up, via), f.query, f.authz)
}

// noteUpstreamForm records that an upstream showed its form for the
// sign-in it was sent with state.
func (s *Server) noteUpstreamForm(state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.pending[state]; f != nil {
		f.authz.Forms = append(f.authz.Forms, UpstreamForm)
	}
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}
