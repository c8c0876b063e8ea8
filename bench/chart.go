package main

import (
	"fmt"
	"html"
	"strings"
)

// chart draws requests per second and p99 latency for each system as two
// horizontal bar groups, in SVG.
func chart(rs []result) []byte {
	const width, barH, gap, left = 760, 22, 8, 250
	var b strings.Builder
	height := 50 + 2*(len(rs)*(barH+gap)+40) + 10
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="system-ui,sans-serif" font-size="13">`, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#fff"/>`)
	fmt.Fprintf(&b, `<text x="10" y="24" font-size="16" font-weight="bold">Logout over loopback against one real Redis</text>`)
	y := 50
	panel := func(title string, value func(result) float64, unit string) {
		fmt.Fprintf(&b, `<text x="10" y="%d" font-weight="bold">%s</text>`, y+12, html.EscapeString(title))
		y += 24
		top := 0.0
		for _, r := range rs {
			top = max(top, value(r))
		}
		for i, r := range rs {
			v := value(r)
			w := int(v / top * float64(width-left-90))
			color := "#9ca3af"
			if strings.HasPrefix(r.name, "logout") {
				color = "#4f46e5"
			} else if i == 1 {
				color = "#f59e0b"
			}
			fmt.Fprintf(&b, `<text x="10" y="%d">%s</text>`, y+15, html.EscapeString(r.name))
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s" rx="3"/>`, left, y, max(w, 1), barH, color)
			fmt.Fprintf(&b, `<text x="%d" y="%d">%.0f %s</text>`, left+max(w, 1)+6, y+15, v, unit)
			y += barH + gap
		}
		y += 16
	}
	panel("Requests per second (higher is better)", func(r result) float64 { return r.rps }, "req/s")
	panel("p99 latency (lower is better)", func(r result) float64 { return us(r.p99) }, "µs")
	b.WriteString(`</svg>`)
	return []byte(b.String())
}
