// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"strings"
)

// writeTables writes a table's results in two tables: the load run (when
// there was one), and the cost of one request.
func writeTables(w *strings.Builder, what string, rs []result, cookies bool) {
	fl, sc := pick(rs, floor), pick(rs, scsPeer)
	if fl.rps > 0 {
		fmt.Fprintf(w, "| %s | req/s | rounds' req/s | p50 | p99 | server CPU/request | req/s vs floor | req/s vs scs | server CPU vs floor |\n", what)
		fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, r := range rs {
			fmt.Fprintf(w, "| %s | %.0f | %.0f–%.0f | %.0f µs | %.0f µs | %.1f µs | %.2fx | %.2fx | %.2fx |\n",
				r.name, r.rps, r.rpsLow, r.rpsHigh, us(r.p50), us(r.p99), us(r.serverCPU),
				r.rps/fl.rps, r.rps/sc.rps, float64(r.serverCPU)/float64(fl.serverCPU))
		}
		fmt.Fprintf(w, "\n")
	}
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

// target is a bound the package sets itself: a system's CPU time per
// request at most bound times its floor's, in the same run.
type target struct {
	table  string // "signed-in page" or "logout"
	system string
	load   bool // the load run's server CPU, else the handler alone
	bound  float64
}

var targets = []target{
	{"logout", "logout.RedisStore", false, 1.25},
	{"signed-in page", "logout.RedisStore", false, 1.5},
	{"signed-in page", "logout.RevocableCookieStore", false, 1.5},
	{"logout", "logout.RevocableCookieStore", false, 1.4},
	{"logout", "logout.RedisStore", true, 1.1},
	{"signed-in page", "logout.RedisStore", true, 1.1},
}

// writeTargets sets each target's ratio from this run beside its bound, for
// the tables that ran, with the two CPU times the ratio is taken from.
func writeTargets(w *strings.Builder, perRequest, logouts []result) {
	var lines []string
	met, all := 0, 0
	for _, t := range targets {
		rs := perRequest
		if t.table == "logout" {
			rs = logouts
		}
		if rs == nil {
			continue
		}
		fl, r := pick(rs, floor), find(rs, t.system)
		what, got, base := "handler alone", r.cpu, fl.cpu
		if t.load {
			if fl.serverCPU == 0 {
				continue
			}
			what, got, base = "server CPU under load", r.serverCPU, fl.serverCPU
		}
		ratio := float64(got) / float64(base)
		verdict := "**not met**"
		if ratio <= t.bound {
			verdict = "met"
			met++
		}
		all++
		lines = append(lines, fmt.Sprintf("| %s, %s, %s | %.1f µs | %.1f µs | %.2fx | ≤ %.2fx | %s |\n", t.table, t.system, what, us(got), us(base), ratio, t.bound, verdict))
	}
	if all == 0 {
		return
	}
	fmt.Fprintf(w, "### Targets\n\nThe package's own CPU time per request against its floor's, in this run. %d of %d met.\n\n", met, all)
	fmt.Fprintf(w, "| CPU time per request vs the floor | this run | floor | ratio | target | |\n|---|---:|---:|---:|---:|---|\n")
	for _, l := range lines {
		w.WriteString(l)
	}
	fmt.Fprintf(w, "\n")
}

// writeTelemetryCost sets the logout with an OpenTelemetry SDK installed
// beside the same logout without one: what the instrumentation adds per
// logout once an app installs an SDK.
func writeTelemetryCost(w *strings.Builder, logouts []result) {
	if logouts == nil {
		return
	}
	plain, sdk := find(logouts, "logout.RedisStore"), find(logouts, otelRow)
	fmt.Fprintf(w, "### What telemetry costs a logout\n\n%s against logout.RedisStore, in this run. With no SDK installed a logout allocates no more than with telemetry turned off, which the package's tests check.\n\n", otelRow)
	fmt.Fprintf(w, "| per logout | logout.RedisStore | with an OTel SDK | added |\n|---|---:|---:|---:|\n")
	fmt.Fprintf(w, "| CPU, handler alone | %.1f µs | %.1f µs | %+.1f µs (%+.0f%%) |\n", us(plain.cpu), us(sdk.cpu), us(sdk.cpu-plain.cpu), 100*(float64(sdk.cpu)/float64(plain.cpu)-1))
	fmt.Fprintf(w, "| allocations, handler alone | %.0f | %.0f | %+.0f |\n", plain.allocs, sdk.allocs, sdk.allocs-plain.allocs)
	if plain.serverCPU > 0 {
		fmt.Fprintf(w, "| server CPU under load | %.1f µs | %.1f µs | %+.1f µs (%+.0f%%) |\n", us(plain.serverCPU), us(sdk.serverCPU), us(sdk.serverCPU-plain.serverCPU), 100*(float64(sdk.serverCPU)/float64(plain.serverCPU)-1))
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

func find(rs []result, name string) result {
	for _, r := range rs {
		if r.name == name {
			return r
		}
	}
	panic("no result named " + name)
}
