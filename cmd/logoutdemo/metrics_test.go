// SPDX-License-Identifier: Apache-2.0

package main

import (
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrape reads /metrics as Prometheus does and returns the sum of the
// series named name whose labels include each of labels (`key="value"`).
func scrape(t *testing.T, d *demo, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(d.AppURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	total := 0.0
	for _, line := range strings.Split(body(t, resp), "\n") {
		series, value, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		metric, labelSet, _ := strings.Cut(series, "{")
		if metric != name {
			continue
		}
		matched := true
		for _, l := range labels {
			matched = matched && strings.Contains(labelSet, l)
		}
		if !matched {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		total += v
	}
	return total
}

// A user signs in and out over HTTP, as a browser that never reaches the
// provider: /metrics shows the logout, the backstop job it scheduled, and
// then that job ending the provider session and leaving the queue empty.
func TestDemoMetricsMoveOnSignOut(t *testing.T) {
	d := startDemo(t, options{Store: "redis"})
	c := browserlessClient(t)
	const email = "ada@example.com"
	if page := body(t, follow(t, c, d.AppURL+"/login?login_hint="+email)); !signedInPage(page, email) {
		t.Fatalf("not signed in:\n%s", page)
	}
	ended := []string{`logout_outcome="ended"`}
	scheduled := []string{`logout_backstop_event="scheduled"`}
	endedAtProvider := []string{`logout_backstop_event="ended"`}
	before := map[string]float64{
		"logouts":   scrape(t, d, "logout_requests_total", ended...),
		"scheduled": scrape(t, d, "logout_backstop_jobs_total", scheduled...),
		"ended":     scrape(t, d, "logout_backstop_jobs_total", endedAtProvider...),
	}

	resp := post(t, c, d.AppURL+"/logout", "Sec-Fetch-Site", "same-origin", "Sec-Fetch-Mode", "navigate")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	// The browser goes no further: the backstop ends the provider session.
	if got := scrape(t, d, "logout_requests_total", ended...) - before["logouts"]; got != 1 {
		t.Errorf("logout_requests_total{logout_outcome=\"ended\"} rose by %v, want 1", got)
	}
	if got := scrape(t, d, "logout_backstop_jobs_total", scheduled...) - before["scheduled"]; got != 1 {
		t.Errorf("logout_backstop_jobs_total{logout_backstop_event=\"scheduled\"} rose by %v, want 1", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for scrape(t, d, "logout_backstop_jobs_total", endedAtProvider...)-before["ended"] != 1 {
		if time.Now().After(deadline) {
			t.Fatal("logout_backstop_jobs_total{logout_backstop_event=\"ended\"} never rose")
		}
		<-time.After(50 * time.Millisecond)
	}
	if got := scrape(t, d, "logout_backstop_queue_depth"); got != 0 {
		t.Errorf("logout_backstop_queue_depth %v after the job, want 0", got)
	}
	if got := scrape(t, d, "logout_sessions_ended_total", `logout_end_reason="logout"`); got != 1 {
		t.Errorf("logout_sessions_ended_total{logout_end_reason=\"logout\"} = %v, want 1", got)
	}
	if got := scrape(t, d, "logout_store_duration_seconds_count", `logout_store_operation="end"`, `logout_store_outcome="ok"`); got != 1 {
		t.Errorf("logout_store_duration_seconds_count for the logout's store call = %v, want 1", got)
	}
	if got := scrape(t, d, "logout_provider_duration_seconds_count", `logout_provider_operation="revoke_session"`, `logout_provider_outcome="ok"`); got != 1 {
		t.Errorf("logout_provider_duration_seconds_count for the revocation = %v, want 1", got)
	}

	// The production guide's command, as written, against this demo.
	guide, err := os.ReadFile("../../docs/production.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(guide), "<!-- runnable: against the demo -->\n```sh\n")
	if len(blocks) < 2 {
		t.Fatal("docs/production.md has no command to run against the demo")
	}
	for _, b := range blocks[1:] {
		command, _, _ := strings.Cut(b, "```")
		command = strings.ReplaceAll(command, "http://127.0.0.1:8080", d.AppURL)
		out, err := exec.Command("bash", "-c", "set -euo pipefail\n"+command).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "logout_requests_total{") {
			t.Errorf("the guide's %q against the demo: %v\n%s", strings.TrimSpace(command), err, out)
		}
	}
}
