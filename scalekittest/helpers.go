package scalekittest

import (
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
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

func htmlEscape(s string) string             { return html.EscapeString(s) }
func queryEscape(s string) string            { return url.QueryEscape(s) }
func urlValues(s string) (url.Values, error) { return url.ParseQuery(s) }

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
<label>Email <input id="email" name="email" type="email" required autofocus></label>
<button id="continue" type="submit">Continue</button>
</form></body></html>`

const signedOutPage = `<!doctype html><html><head><meta charset="utf-8"><title>Signed out · Scalekit (test)</title></head>
<body><h1>You are signed out</h1></body></html>`
