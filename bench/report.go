package main

import (
	"fmt"
	"strings"
)

// writeTables writes a table's results in two tables: the load run, and the
// cost of one request.
func writeTables(w *strings.Builder, what string, rs []result, cookies bool) {
	fl, sc := pick(rs, floor), pick(rs, scsPeer)
	fmt.Fprintf(w, "| %s | req/s | rounds' req/s | p50 | p99 | server CPU/request | req/s vs floor | req/s vs scs | server CPU vs floor |\n", what)
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rs {
		fmt.Fprintf(w, "| %s | %.0f | %.0f–%.0f | %.0f µs | %.0f µs | %.1f µs | %.2fx | %.2fx | %.2fx |\n",
			r.name, r.rps, r.rpsLow, r.rpsHigh, us(r.p50), us(r.p99), us(r.serverCPU),
			r.rps/fl.rps, r.rps/sc.rps, float64(r.serverCPU)/float64(fl.serverCPU))
	}
	fmt.Fprintf(w, "\n")
	cookieHead, cookieRule := "", ""
	if cookies {
		cookieHead, cookieRule = " Set-Cookie/response |", "---:|"
	}
	fmt.Fprintf(w, "| %s, handler alone | Redis commands/request |%s allocs | CPU/request | CPU vs floor |\n", what, cookieHead)
	fmt.Fprintf(w, "|---|---:|%s---:|---:|---:|\n", cookieRule)
	for _, r := range rs {
		cookieCell := ""
		if cookies {
			cookieCell = fmt.Sprintf(" %.2f |", r.cookies)
		}
		fmt.Fprintf(w, "| %s | %s |%s %.0f | %.1f µs | %.2fx |\n",
			r.name, commands(r), cookieCell, r.allocs, us(r.cpu), float64(r.cpu)/float64(fl.cpu))
	}
	fmt.Fprintf(w, "\n")
}

// commands shows the commands a request sent, and the ones Redis ran inside
// a script on its behalf when there are any.
func commands(r result) string {
	if r.work != r.commands {
		return fmt.Sprintf("%.2f (%.2f run)", r.commands, r.work)
	}
	return fmt.Sprintf("%.2f", r.commands)
}

func pick(rs []result, ro role) result {
	for _, r := range rs {
		if r.role == ro {
			return r
		}
	}
	panic("no result in that role")
}
