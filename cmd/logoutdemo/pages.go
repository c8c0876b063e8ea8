// SPDX-License-Identifier: Apache-2.0

// The demo's HTML templates and how they are rendered.

package main

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
)

// The demo's pages: "home" and "logged-out", each with the layer panel,
// and "layers", the panel alone, which the pages reload while a layer is
// about to change.
var (
	//go:embed templates/*.html
	templateFiles embed.FS
	pages         = template.Must(template.ParseFS(templateFiles, "templates/*.html"))
)

// page renders a template whole before it writes anything, so that an error
// is an error page and not half of one.
func page(w http.ResponseWriter, name string, data any) {
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, name, data); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Vary", "Cookie")
	w.Write(b.Bytes())
}
