// SPDX-License-Identifier: Apache-2.0

// The session cookie and its companions: writing, chunking, reading and
// expiring them with the attributes they were set with.

package logout

import (
	"cmp"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Browsers drop a cookie whose name and value pass 4096 bytes, silently. A
// session token longer than one chunk is split across the cookies NAME,
// NAME.1, NAME.2, …; the first chunk then starts with the chunk count and a
// dot ("3.…"), a character that never occurs in a token, so a reader knows
// exactly which cookies to join and ignores leftovers.
const (
	chunkSize         = 3800
	maxChunks         = 4
	maxCookieTokenLen = chunkSize*maxChunks - len("4.")
)

// newCookieJar checks the session cookie's settings, including the rules
// browsers enforce for the __Host- and __Secure- prefixes (Go does not), and
// fills in the defaults.
func newCookieJar(c CookieConfig) (cookieJar, error) {
	j := cookieJar{
		name:        c.Name,
		path:        cmp.Or(c.Path, "/"),
		domain:      c.Domain,
		sameSite:    cmp.Or(c.SameSite, http.SameSiteLaxMode),
		secure:      !c.InsecureHTTP,
		partitioned: c.Partitioned,
	}
	if j.name == "" {
		j.name = "__Host-session"
		if c.InsecureHTTP {
			j.name = "session"
		}
	}
	if j.partitioned && !j.secure {
		return j, errors.New("logout: a Partitioned cookie must be Secure; unset Cookie.InsecureHTTP")
	}
	if j.sameSite == http.SameSiteNoneMode && !j.secure {
		return j, errors.New("logout: a SameSite=None cookie must be Secure; unset Cookie.InsecureHTTP")
	}
	// The chunks' names (NAME.1, …) follow the same rules as the name.
	for _, name := range []string{j.name, j.chunkName(maxChunks - 1)} {
		if err := checkCookie(j.cookie(name, "")); err != nil {
			return j, fmt.Errorf("logout: Config.Cookie: %w", err)
		}
	}
	// The lines every logout sends are the same each time: written once.
	j.expireLine = expired(j.cookie(j.name, "")).String()
	j.signedOutLine = j.signedOutCookie().String()
	return j, nil
}

// checkCookie refuses a cookie Go would write differently from what was asked
// (Go silently drops an invalid Domain, and a deletion without it would miss
// the cookie) or that a browser would ignore.
func checkCookie(c *http.Cookie) error {
	probe := *c
	probe.Value = "x"
	if err := probe.Valid(); err != nil {
		return err
	}
	if probe.Domain != "" && strings.Trim(probe.Domain, ".") == "" {
		return fmt.Errorf("cookie %q: invalid Domain %q", c.Name, c.Domain)
	}
	switch {
	case strings.HasPrefix(c.Name, "__Host-") && (!c.Secure || c.Domain != "" || c.Path != "/"):
		return fmt.Errorf("cookie %q: a __Host- cookie must be Secure, with Path \"/\" and no Domain", c.Name)
	case strings.HasPrefix(c.Name, "__Secure-") && !c.Secure:
		return fmt.Errorf("cookie %q: a __Secure- cookie must be Secure", c.Name)
	}
	return nil
}

// cookieJar writes, reads and expires the session cookie and its chunks, always
// with the same attributes, so a deletion matches what was set.
type cookieJar struct {
	name        string
	path        string
	domain      string
	sameSite    http.SameSite
	secure      bool
	partitioned bool

	expireLine    string // the Set-Cookie line that expires the session cookie
	signedOutLine string // the one that sets the signed-out signal
}

func (j cookieJar) cookie(name, value string) *http.Cookie {
	return &http.Cookie{
		Name:        name,
		Value:       value,
		Path:        j.path,
		Domain:      j.domain,
		Secure:      j.secure,
		HttpOnly:    true,
		SameSite:    j.sameSite,
		Partitioned: j.partitioned,
	}
}

func (j cookieJar) chunkName(i int) string {
	if i == 0 {
		return j.name
	}
	return j.name + "." + strconv.Itoa(i)
}

// carriedCookie is what a request carries of the session cookie, from one
// parse of its Cookie header.
type carriedCookie struct {
	token  string   // the joined token, or "" when absent or inconsistent
	chunks []string // names of the NAME.i cookies present, i >= 1
}

// read finds the session token in the request, joined from its chunks. The
// first chunk's count says exactly which chunks to join; leftovers from an
// earlier, larger session are noted for expiry and otherwise ignored.
func (j cookieJar) read(r *http.Request) carriedCookie {
	var first string
	var found bool
	var parts [maxChunks]string
	var out carriedCookie
	prefix := j.name + "."
	for name, raw := range cookiePairs(r.Header) {
		if name == j.name {
			if !found {
				first, found = cookieValue(raw)
			}
			continue
		}
		idx, ok := strings.CutPrefix(name, prefix)
		if !ok {
			continue
		}
		i, err := strconv.Atoi(idx)
		if err != nil || i < 1 || i >= 100 || strconv.Itoa(i) != idx {
			continue
		}
		value, ok := cookieValue(raw)
		if !ok {
			continue
		}
		// A name sent twice is expired once: the indexes are below 100, so
		// however long the Cookie header, logout sends at most 100
		// Set-Cookie lines.
		if !slices.Contains(out.chunks, name) {
			out.chunks = append(out.chunks, name)
		}
		if i < maxChunks && parts[i] == "" {
			parts[i] = value
		}
	}
	count, rest, chunked := strings.Cut(first, ".")
	if !chunked {
		out.token = first
		return out
	}
	n, err := strconv.Atoi(count)
	if err != nil || n < 2 || n > maxChunks || rest == "" {
		return out
	}
	var b strings.Builder
	b.Grow(n * chunkSize)
	b.WriteString(rest)
	for i := 1; i < n; i++ {
		if parts[i] == "" {
			return out
		}
		b.WriteString(parts[i])
	}
	out.token = b.String()
	return out
}

// write sets the token, in as many chunks as it needs, and expires chunks
// left over from a larger session that the request still carries.
func (j cookieJar) write(w http.ResponseWriter, old carriedCookie, token string, expires time.Time) error {
	if len(token) > maxCookieTokenLen {
		return fmt.Errorf("logout: session token is %d bytes, more than %d cookies can hold", len(token), maxChunks)
	}
	n := (len(token) + chunkSize - 1) / chunkSize
	if n > 1 {
		n = (len(token) + len("4.") + chunkSize - 1) / chunkSize
		token = strconv.Itoa(n) + "." + token
	}
	maxAge := int(time.Until(expires).Seconds())
	for i := 0; i < n; i++ {
		part := token[i*chunkSize : min(len(token), (i+1)*chunkSize)]
		c := j.cookie(j.chunkName(i), part)
		c.MaxAge = max(maxAge, 1)
		c.Expires = expires.UTC()
		http.SetCookie(w, c)
	}
	j.expireChunks(w, old, n)
	return nil
}

// expire removes the session cookie and every chunk the request carried.
func (j cookieJar) expire(w http.ResponseWriter, old carriedCookie) {
	w.Header().Add("Set-Cookie", j.expireLine)
	j.expireChunks(w, old, 1)
}

// expireChunks expires each chunk NAME.i with i >= from that the request
// carried. Only present chunks are touched, so a small session's logout sends
// one Set-Cookie, not maxChunks.
func (j cookieJar) expireChunks(w http.ResponseWriter, old carriedCookie, from int) {
	for _, name := range old.chunks {
		if i, _ := strconv.Atoi(name[len(j.name)+1:]); i >= from {
			http.SetCookie(w, expired(j.cookie(name, "")))
		}
	}
}

// The re-authentication marker: a cookie beside the session cookie, with the
// same attributes, that says "this browser signed out and must sign in with
// credentials". It holds nothing secret.
func (j cookieJar) reauthName() string { return j.name + "-reauth" }

func (j cookieJar) markReauth(w http.ResponseWriter, lifetime time.Duration) {
	c := j.cookie(j.reauthName(), "1")
	c.MaxAge = int(lifetime.Seconds())
	http.SetCookie(w, c)
}

func (j cookieJar) clearReauth(w http.ResponseWriter) {
	http.SetCookie(w, expired(j.cookie(j.reauthName(), "")))
}

func (j cookieJar) reauthMarked(r *http.Request) bool {
	c, err := r.Cookie(j.reauthName())
	return err == nil && c.Value == "1"
}

// The signed-out signal: a cookie the logout response sets for the page
// scripts of this app (it is not HttpOnly, and holds nothing secret), so the
// broadcast script on the next page tells the app's other tabs. It lives a
// minute: long enough for the provider to send the browser back.
func (j cookieJar) signedOutName() string { return j.name + "-signed-out" }

func (j cookieJar) markSignedOut(w http.ResponseWriter) {
	w.Header().Add("Set-Cookie", j.signedOutLine)
}

// clearSignedOut takes the signal back, as a sign-in within its minute
// must: the other tabs would otherwise hear that the browser signed out.
func (j cookieJar) clearSignedOut(w http.ResponseWriter, r *http.Request) {
	if _, err := r.Cookie(j.signedOutName()); err == nil {
		http.SetCookie(w, expired(j.signedOutCookie()))
	}
}

func (j cookieJar) signedOutCookie() *http.Cookie {
	c := j.cookie(j.signedOutName(), "1")
	c.HttpOnly = false
	c.MaxAge = 60
	return c
}

// expired turns c into its own deletion: same name, path, domain and security
// attributes, Max-Age=0 and an Expires in the past for old user agents.
func expired(c *http.Cookie) *http.Cookie {
	d := *c
	d.Value = ""
	d.MaxAge = -1
	d.Expires = time.Unix(0, 0).UTC()
	return &d
}

// cookiePairs yields the name and the raw value of every cookie in the
// request's Cookie headers, in order, split and trimmed as net/http's
// Request.Cookies splits and trims them; cookieValue then reads a value as
// it does. Every request of a signed-in page reads its session cookie, and
// Request.Cookies allocates for each cookie the browser sends and checks
// each byte of every value, where this allocates nothing and checks only
// the values asked for. Unlike Request.Cookies, it reads a header of more
// than 3,000 cookies too: nothing here grows with their number but the
// time to scan a header the server already accepted.
func cookiePairs(h http.Header) iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for _, line := range h["Cookie"] {
			for len(line) > 0 {
				var part string
				part, line, _ = strings.Cut(line, ";")
				name, raw, _ := strings.Cut(trimCookieSpace(part), "=")
				if name = trimCookieSpace(name); name == "" {
					continue
				}
				if !yield(name, raw) {
					return
				}
			}
		}
	}
}

// cookieValue is a raw value as net/http reads it: without the double
// quotes around it, if any, and not at all (false) if it holds a byte no
// cookie value may.
func cookieValue(raw string) (string, bool) {
	if len(raw) > 1 && raw[0] == '"' && raw[len(raw)-1] == '"' {
		raw = raw[1 : len(raw)-1]
	}
	for i := 0; i < len(raw); i++ {
		if !cookieValueBytes[raw[i]] {
			return "", false
		}
	}
	return raw, true
}

// cookieValueBytes are the bytes a cookie value may hold: printable ASCII
// but the double quote, the semicolon and the backslash (RFC 6265, section
// 4.1.1, and the space and comma net/http lets through).
var cookieValueBytes = func() (ok [256]bool) {
	for b := 0x20; b < 0x7f; b++ {
		ok[b] = b != '"' && b != ';' && b != '\\'
	}
	return ok
}()

// trimCookieSpace trims the ASCII white space net/http trims from a
// cookie's parts.
func trimCookieSpace(s string) string {
	for len(s) > 0 && isCookieSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isCookieSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

func isCookieSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }
