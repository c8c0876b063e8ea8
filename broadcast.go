// SPDX-License-Identifier: Apache-2.0

// Telling the app's other open tabs that the browser signed out.

package logout

import (
	"fmt"
	"net/http"
	"strings"
)

// BroadcastScript returns a handler serving a small script that lets the
// app's other open tabs of a browser know, without a reload and without
// polling anyone, that the browser signed out. Mount it and include it in
// the app's pages:
//
//	http.Handle("GET /logout/broadcast.js", h.BroadcastScript())
//	<script src="/logout/broadcast.js" defer></script>
//
// Every logout response sets a short-lived cookie the page's scripts can
// read (it holds nothing secret). On the next page of the app, the one the
// provider sends the browser back to, the script finds it, deletes it, and
// posts a message on a BroadcastChannel of the app's origin. In every other
// tab the script then:
//
//   - hides the elements marked data-logout-signed-in and shows those marked
//     data-logout-signed-out (give them the hidden attribute to start with);
//   - sets data-signed-out on the html element;
//   - dispatches a "logout:signed-out" event on the document, for the app's
//     own code.
//
// Nothing crosses origins, so no third-party cookie is involved.
func (h *Handler) BroadcastScript() http.Handler {
	var attrs strings.Builder
	fmt.Fprintf(&attrs, "; Path=%s; Max-Age=0; SameSite=Lax", h.jar.path)
	if h.jar.domain != "" {
		fmt.Fprintf(&attrs, "; Domain=%s", h.jar.domain)
	}
	if h.jar.secure {
		attrs.WriteString("; Secure")
	}
	if h.jar.partitioned {
		attrs.WriteString("; Partitioned")
	}
	script := fmt.Sprintf(broadcastScript, jsString(h.jar.signedOutName()), jsString(attrs.String()))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		fmt.Fprint(w, script)
	})
}

// jsString quotes s for a script: cookie names and attributes are plain
// ASCII, which %q writes as a valid JavaScript string.
func jsString(s string) string { return fmt.Sprintf("%q", s) }

const broadcastScript = `// Tells this app's other tabs that the browser signed out (package logout).
(() => {
  const name = %s, deletion = %s;
  const channel = "BroadcastChannel" in self ? new BroadcastChannel("logout:" + name) : null;
  const signedOut = () => {
    for (const el of document.querySelectorAll("[data-logout-signed-in]")) el.hidden = true;
    for (const el of document.querySelectorAll("[data-logout-signed-out]")) el.hidden = false;
    document.documentElement.dataset.signedOut = "";
    document.dispatchEvent(new CustomEvent("logout:signed-out"));
  };
  if (channel) channel.onmessage = (e) => { if (e.data === "signed-out") signedOut(); };
  if (document.cookie.split("; ").includes(name + "=1")) {
    document.cookie = name + "=" + deletion;
    if (channel) channel.postMessage("signed-out");
  }
})();
`
