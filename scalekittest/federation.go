package scalekittest

// The environment's side of the upstream provider: which sign-ins go there,
// the browser's round trip there and back, and the record of each
// authorization that tests read through [Server.Authorizations].

import (
	"net/http"
	"net/url"
	"strings"
	"time"
)

// authorization is an [Authorization] with the ID its forms carry, so that
// a form post and a return from the upstream find their record.
type authorization struct {
	Authorization
	id string
}

// federation is a sign-in sent to the upstream and not yet back, under the
// state sent with it.
type federation struct {
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

// upstreamRoute reports whether the authorization request goes to the
// upstream provider, and which parameter decided. Scalekit's SDKs let apps
// name a connection, an organization or a domain; failing those, the
// domain of the login_hint, or of the address typed into the form (which
// then stands in for the hint), decides. The first of these a request
// carries decides alone, in that order, so a request for another
// organization does not go upstream whatever its hint says.
func (s *Server) upstreamRoute(q url.Values, typed string) (by string, ok bool) {
	u := s.up
	if u == nil {
		return "", false
	}
	switch {
	case q.Get("connection_id") != "":
		return "connection_id", q.Get("connection_id") == u.ConnectionID
	case q.Get("organization_id") != "":
		return "organization_id", q.Get("organization_id") == u.OrganizationID
	case q.Get("domain_hint") != "":
		return "domain_hint", u.routesDomainName(q.Get("domain_hint"))
	case q.Get("domain") != "":
		return "domain", u.routesDomainName(q.Get("domain"))
	case typed != "":
		return "email", u.routesDomain(typed)
	case strings.Contains(q.Get("login_hint"), "@"):
		return "login_hint", u.routesDomain(q.Get("login_hint"))
	}
	return "", false
}

// federate sends the browser to the upstream's authorization endpoint, with
// a state of the environment's own, the user's address as a login_hint,
// and prompt=login only when the environment forwards it.
func (s *Server) federate(w http.ResponseWriter, r *http.Request, q url.Values, a *authorization, by, email string) {
	state := "sks_" + randomText()
	up := url.Values{"client_id": {s.up.clientID()}, "redirect_uri": {s.up.redirectURI()}, "response_type": {"code"},
		"scope": {"openid email profile"}, "state": {state}}
	if strings.Contains(email, "@") {
		up.Set("login_hint", email)
	}
	forward := q.Get("prompt") == "login" && s.cfg.Upstream.ForwardPrompt
	if forward {
		up.Set("prompt", "login")
	}
	now := s.now()
	s.mu.Lock()
	for st, f := range s.pending {
		if !now.Before(f.expires) {
			delete(s.pending, st)
		}
	}
	s.pending[state] = &federation{query: q, authz: a, expires: now.Add(federationLifetime)}
	a.Upstream, a.RoutedBy, a.PromptForwarded = true, by, forward
	s.mu.Unlock()
	status := http.StatusFound
	if r.Method == http.MethodPost {
		status = http.StatusSeeOther
	}
	http.Redirect(w, r, s.up.URL+"/authorize?"+up.Encode(), status)
}

// ssoCallback is where the upstream sends the browser back: the state names
// the sign-in it went for (once), the code the upstream session that
// authenticated the user. The environment then signs the user in with a
// session of its own, as after its own form.
func (s *Server) ssoCallback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if s.up == nil {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	f := s.pending[q.Get("state")]
	delete(s.pending, q.Get("state"))
	s.mu.Unlock()
	if f == nil || !s.now().Before(f.expires) {
		errorPage(w, "invalid_request: unknown or expired state")
		return
	}
	via, ok := s.up.redeem(q.Get("code"))
	if !ok {
		errorPage(w, "invalid_grant: the upstream's code is unknown, used or expired")
		return
	}
	client, err := s.checkAuthorize(f.query)
	if err != nil {
		errorPage(w, err.Error())
		return
	}
	s.finishAuthorize(w, r, client, s.signIn(w, r, via.email, via), f.query, f.authz)
}

// noteUpstreamForm records that the upstream showed its form for the
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
