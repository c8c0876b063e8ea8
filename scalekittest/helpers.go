// SPDX-License-Identifier: Apache-2.0

package scalekittest

// Small helpers the rest share: JSON and error answers, IDs, names, page
// tokens, and the HTML of the pages.

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"unicode"
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// errorPage is what Scalekit shows on a bad request: a 400 page that
// redirects nowhere.
func errorPage(w http.ResponseWriter, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusBadRequest)
	fmt.Fprintf(w, "<!doctype html><title>Error</title><h1>Something went wrong</h1><p id=error>%s</p>", html.EscapeString(msg))
}

func htmlEscape(s string) string { return html.EscapeString(s) }

// newID returns prefix followed by 18 digits, the form of Scalekit's IDs
// (usr_…, ses_…, org_…).
func newID(prefix string) string { return prefix + digits(18) }

func digits(n int) string {
	lo := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n-1)), nil)
	v, err := rand.Int(rand.Reader, new(big.Int).Mul(lo, big.NewInt(9)))
	if err != nil {
		panic(err)
	}
	return v.Add(v, lo).String()
}

// validID reports whether id is prefix followed by digits only, as the API
// definitions require.
func validID(id, prefix string) bool {
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok || rest == "" {
		return false
	}
	for _, r := range rest {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// randomText is an unguessable token body.
func randomText() string { return strings.ToLower(rand.Text()) }

// namesFrom makes a given and a family name out of an email address, so ID
// tokens carry all three name claims: ada.lovelace@… is Ada Lovelace, ada@…
// is Ada Example.
func namesFrom(email string) (given, family string) {
	local, domain, _ := strings.Cut(email, "@")
	parts := strings.FieldsFunc(local, func(r rune) bool { return r == '.' || r == '_' || r == '-' || r == '+' })
	if len(parts) == 0 {
		parts = []string{"user"}
	}
	if len(parts) == 1 {
		label, _, _ := strings.Cut(domain, ".")
		if label == "" {
			label = "example"
		}
		parts = append(parts, label)
	}
	return title(parts[0]), title(parts[len(parts)-1])
}

func title(s string) string {
	r := []rune(strings.ToLower(s))
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}

var errBadPageToken = errors.New("bad page token")

// Page tokens are opaque to clients; here they hold an offset.
func encodePageToken(offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(offset)))
}

func decodePageToken(tok string) (int, error) {
	if tok == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, errBadPageToken
	}
	rest, ok := strings.CutPrefix(string(b), "offset:")
	n, err := strconv.Atoi(rest)
	if !ok || err != nil || n < 0 {
		return 0, errBadPageToken
	}
	return n, nil
}

const signInPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>Sign in · Scalekit (test)</title>
<style>body{font-family:system-ui,sans-serif;max-width:26rem;margin:4rem auto;color:#1f2937}
form{display:grid;gap:.75rem;padding:1.5rem;border:1px solid #e5e7eb;border-radius:.75rem}
input{padding:.5rem;font-size:1rem}button{padding:.6rem;font-size:1rem;background:#4f46e5;color:#fff;border:0;border-radius:.4rem}</style>
</head><body>
<h1 id="signin-title">Sign in</h1>
<p>Test Scalekit environment: any email signs in.</p>
<form method="post" action="/oauth/authorize">
<input type="hidden" name="request" value="%s">
<input type="hidden" name="authorization" value="%s">
<label>Email <input id="email" name="email" type="email" value="%s" required autofocus></label>
<button id="continue" type="submit">Continue</button>
</form></body></html>`

const signedOutPage = `<!doctype html><html><head><meta charset="utf-8"><title>Signed out · Scalekit (test)</title></head>
<body><h1 id="signed-out">You are signed out</h1></body></html>`

// upstreamSignInPage is the upstream provider's form: it looks unlike the
// environment's, and asks for a password, so that a person (or a browser
// test, by its element IDs) sees which provider is asking.
const upstreamSignInPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>Sign in · Upstream identity provider (test)</title>
<style>body{font-family:Georgia,serif;max-width:24rem;margin:4rem auto;color:#111827;background:#f0fdf4}
form{display:grid;gap:.75rem;padding:1.5rem;border:2px solid #15803d;background:#fff}
input{padding:.5rem;font-size:1rem}button{padding:.6rem;font-size:1rem;background:#15803d;color:#fff;border:0}</style>
</head><body>
<h1 id="upstream-title">Sign in to your organization</h1>
<p>Test upstream identity provider: any password signs in.</p>
<form method="post" action="/authorize">
<input type="hidden" name="request" value="%s">
<label>Email <input id="upstream-email" name="email" type="email" value="%s" required></label>
<label>Password <input id="upstream-password" name="password" type="password" required autofocus></label>
<button id="upstream-sign-in" type="submit">Sign in</button>
</form></body></html>`

const upstreamSignedOutPage = `<!doctype html><html><head><meta charset="utf-8"><title>Signed out · Upstream identity provider (test)</title></head>
<body><h1 id="upstream-signed-out">You are signed out of your organization</h1></body></html>`
