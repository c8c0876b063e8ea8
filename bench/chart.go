// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"html"
	"strconv"
	"strings"
)

// chart draws requests per second, p99 latency and CPU per request for each
// system as three horizontal bar groups, in SVG.
func chart(title string, rs []result) []byte {
	const barH, gap = 22, 8
	left := 0
	for _, r := range rs {
		left = max(left, len(r.name))
	}
	left = 20 + left*7 // about 7 pixels a character at 13 px
	width := left + 460
	var b strings.Builder
	height := 50 + 3*(len(rs)*(barH+gap)+40) + 10
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="system-ui,sans-serif" font-size="13">`, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#fff"/>`)
	fmt.Fprintf(&b, `<text x="10" y="24" font-size="16" font-weight="bold">%s</text>`, html.EscapeString(title))
	y := 50
	panel := func(title string, value func(result) float64, unit string) {
		fmt.Fprintf(&b, `<text x="10" y="%d" font-weight="bold">%s</text>`, y+12, html.EscapeString(title))
		y += 24
		top := 0.0
		for _, r := range rs {
			top = max(top, value(r))
		}
		for _, r := range rs {
			v := value(r)
			w := int(v / top * float64(width-left-90))
			color := map[role]string{ours: "#4f46e5", floor: "#6b7280", reference: "#d1d5db", scsPeer: "#f59e0b", peer: "#fbbf24"}[r.role]
			fmt.Fprintf(&b, `<text x="10" y="%d">%s</text>`, y+15, html.EscapeString(r.name))
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s" rx="3"/>`, left, y, max(w, 1), barH, color)
			fmt.Fprintf(&b, `<text x="%d" y="%d">%s %s</text>`, left+max(w, 1)+6, y+15, strconv.FormatFloat(v, 'f', digits(v), 64), unit)
			y += barH + gap
		}
		y += 16
	}
	panel("Requests per second (higher is better)", func(r result) float64 { return r.rps }, "req/s")
	panel("p99 latency (lower is better)", func(r result) float64 { return us(r.p99) }, "µs")
	panel("CPU time per request, the handler alone (lower is better)", func(r result) float64 { return us(r.cpu) }, "µs")
	b.WriteString(`</svg>`)
	return []byte(b.String())
}

// digits keeps small figures readable: 7.9 µs, 1391 µs.
func digits(v float64) int {
	if v < 100 {
		return 1
	}
	return 0
}
