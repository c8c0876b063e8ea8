// SPDX-License-Identifier: Apache-2.0

package logout_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/endsession/logout"
	"github.com/endsession/logout/internal/testenv"
)

// docBlock is a fenced block of a Markdown document with the HTML comment
// that marks it, if any ("code: NAME", "runnable", "promql").
type docBlock struct {
	mark, lang, text string
	line             int
}

// docBlocks returns every fenced block of the file.
func docBlocks(t *testing.T, file string) []docBlock {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(src), "\n")
	var out []docBlock
	for i := 0; i < len(lines); i++ {
		lang, ok := strings.CutPrefix(lines[i], "```")
		if !ok || lang == "" {
			if ok { // a bare fence: skip its block
				for i++; i < len(lines) && lines[i] != "```"; i++ {
				}
			}
			continue
		}
		b := docBlock{lang: lang, line: i + 1}
		if i > 0 {
			if m, ok := strings.CutPrefix(lines[i-1], "<!-- "); ok {
				b.mark = strings.TrimSuffix(m, " -->")
			}
		}
		var body []string
		for i++; i < len(lines) && lines[i] != "```"; i++ {
			body = append(body, lines[i])
		}
		b.text = strings.Join(body, "\n")
		out = append(out, b)
	}
	return out
}

// exampleRegions returns the regions of the package's example files, each
// dedented by one tab when it sits in a function.
func exampleRegions(t *testing.T) map[string]string {
	t.Helper()
	regions := map[string]string{}
	for _, file := range []string{"example_production_test.go", "docs_examples_test.go"} {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var name, indent string
		var body []string
		for _, line := range strings.Split(string(src), "\n") {
			trimmed := strings.TrimSpace(line)
			switch {
			case trimmed == "// docs:end":
				if _, dup := regions[name]; dup {
					t.Errorf("%s: region %q is defined twice", file, name)
				}
				regions[name] = strings.TrimSpace(strings.Join(body, "\n"))
				name, body = "", nil
			case strings.HasPrefix(trimmed, "// docs:"):
				name = strings.TrimPrefix(trimmed, "// docs:")
				indent = line[:len(line)-len(strings.TrimLeft(line, "\t"))]
			case name != "":
				body = append(body, strings.TrimPrefix(line, indent))
			}
		}
	}
	return regions
}

// Every block of Go in the README and the documents under docs/ either is a
// region of an example file, which compiles, marked <!-- code: NAME -->, or
// is the whole of a file of the module, marked <!-- file: PATH -->, which
// go test builds and runs.
func TestDocsGoIsCompiled(t *testing.T) {
	regions := exampleRegions(t)
	files, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, file := range append([]string{"README.md", "SECURITY.md", "CHANGELOG.md"}, files...) {
		for _, b := range docBlocks(t, file) {
			if b.lang != "go" {
				continue
			}
			if path, ok := strings.CutPrefix(b.mark, "file: "); ok {
				whole, err := os.ReadFile(path)
				if err != nil {
					t.Errorf("%s:%d: %v", file, b.line, err)
				} else if strings.TrimSpace(b.text) != strings.TrimSpace(string(whole)) {
					t.Errorf("%s:%d: the block differs from %s; copy the file into the document", file, b.line, path)
				}
				continue
			}
			name, ok := strings.CutPrefix(b.mark, "code: ")
			used[name] = true
			switch {
			case !ok:
				t.Errorf("%s:%d: a Go block without <!-- code: NAME --> or <!-- file: PATH -->, so nothing compiles it", file, b.line)
			case regions[name] == "":
				t.Errorf("%s:%d: no region %q in the example files", file, b.line, name)
			case strings.TrimSpace(b.text) != regions[name]:
				t.Errorf("%s:%d: the block differs from region %q:\n%s\n--- region:\n%s", file, b.line, name, b.text, regions[name])
			}
		}
	}
	for name := range regions {
		if !used[name] {
			t.Errorf("region %q is shown by no document", name)
		}
	}
}

// The guide's commands run as written, in order, in one shell, against a
// throwaway Redis; the keys they leave in LOGOUT_COOKIE_KEYS are what the
// guide's cookieKeys reads and a store accepts. Every shell block is either
// run here or run by the demo's tests.
func TestProductionGuideCommands(t *testing.T) {
	for _, tool := range []string{"bash", "openssl", "redis-cli", "base64"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.SkipOrFail(t, "%s is not installed", tool)
		}
	}
	srv := startRedisServer(t)
	var script []string
	for _, b := range docBlocks(t, "docs/production.md") {
		switch {
		case b.lang != "sh":
		case b.mark == "runnable":
			script = append(script, b.text)
		case b.mark == "runnable: against the demo": // cmd/logoutdemo's TestDemoMetricsMoveOnSignOut
		default:
			t.Errorf("docs/production.md:%d: a shell block marked neither runnable nor runnable against the demo", b.line)
		}
	}
	if len(script) < 4 {
		t.Fatalf("%d runnable blocks; the guide has more", len(script))
	}
	cmd := exec.Command("bash", "-c", "set -euo pipefail\n"+strings.Join(script, "\n")+"\nprintf 'keys=%s\\n' \"$LOGOUT_COOKIE_KEYS\"")
	cmd.Env = append(os.Environ(), "REDIS_URL=redis://"+srv.Addr, "LOGOUT_COOKIE_KEYS=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the guide's commands: %v\n%s", err, out)
	}
	for _, want := range []string{"redis_version:", "maxmemory-policy\nnoeviction", "role:master", "connected_slaves:0"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the guide's commands printed no %q:\n%s", want, out)
		}
	}
	_, env, _ := strings.Cut(string(out), "keys=")
	keys, err := cookieKeys(strings.TrimSpace(env))
	if err != nil || len(keys) != 1 {
		t.Fatalf("after the rotation, LOGOUT_COOKIE_KEYS holds %d keys (%v), want the new one alone", len(keys), err)
	}
	noteSecret(strings.TrimSpace(env))
	if _, err := logout.NewCookieStore(keys...); err != nil {
		t.Fatal(err)
	}
	// The generated keys (the first block's two lines) are 32 bytes each.
	generated := regexp.MustCompile(`(?m)^[A-Za-z0-9+/]{43}=$`).FindAllString(string(out), -1)
	if len(generated) < 2 {
		t.Errorf("the key commands printed %d keys, want 2:\n%s", len(generated), out)
	}
	for _, k := range generated {
		noteSecret(k)
		if _, err := cookieKeys(k); err != nil {
			t.Error(err)
		}
	}
}

// The guide's table and Config.MeterProvider's documentation name every
// instrument with each attribute and value it carries, and its alerts use
// only names and labels the Prometheus exporter gives those instruments.
func TestMetricGuideNamesEveryInstrument(t *testing.T) {
	guide, err := os.ReadFile("docs/production.md")
	if err != nil {
		t.Fatal(err)
	}
	config, err := os.ReadFile("config.go")
	if err != nil {
		t.Fatal(err)
	}
	_, godoc, _ := strings.Cut(string(config), "// MeterProvider receives")
	godoc, _, _ = strings.Cut(godoc, "MeterProvider metric.MeterProvider")

	promNames := map[string]bool{}
	promLabels := map[string][]string{"le": nil}
	for _, in := range logout.Instruments() {
		row := ""
		for _, line := range strings.Split(string(guide), "\n") {
			if strings.HasPrefix(line, "| `"+in.Name+"` ") {
				row = line
			}
		}
		if row == "" {
			t.Errorf("docs/production.md's table has no row for %s", in.Name)
		}
		if !strings.Contains(row, in.Kind+", `"+in.Unit+"`") {
			t.Errorf("docs/production.md: %s is a %s in %s", in.Name, in.Kind, in.Unit)
		}
		docRow := godocRow(godoc, in.Name)
		if !strings.Contains(docRow, in.Unit) || !strings.Contains(docRow, "("+in.Kind+")") {
			t.Errorf("Config.MeterProvider's table: %s, a %s in %s, is not there as such:\n%s", in.Name, in.Kind, in.Unit, docRow)
		}
		for attr, values := range in.Attributes {
			for _, in := range []struct{ where, text string }{{"docs/production.md", row}, {"Config.MeterProvider", docRow}} {
				if !strings.Contains(in.text, attr) {
					t.Errorf("%s does not name %s", in.where, attr)
				}
				for _, v := range values {
					if !regexp.MustCompile(`\b` + regexp.QuoteMeta(v) + `\b`).MatchString(in.text) {
						t.Errorf("%s does not name the value %s of %s", in.where, v, attr)
					}
				}
			}
			promLabels[strings.ReplaceAll(attr, ".", "_")] = values
		}
		// The exporter's names (cmd/logoutdemo's test reads them off
		// /metrics): dots become underscores, a unit of seconds adds
		// _seconds, a counter _total, and a histogram's series add
		// _bucket, _count and _sum.
		name := strings.ReplaceAll(in.Name, ".", "_")
		if in.Unit == "s" {
			name += "_seconds"
		}
		if in.Kind == "counter" {
			name += "_total"
		}
		promNames[name] = true
		if in.Kind == "histogram" {
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				promNames[name+suffix] = true
			}
		}
		if !strings.Contains(row, "(`"+name+"`)") {
			t.Errorf("docs/production.md does not give %s's Prometheus name, %s", in.Name, name)
		}
	}

	queries := 0
	for _, b := range docBlocks(t, "docs/production.md") {
		if b.lang != "promql" {
			continue
		}
		queries++
		for _, line := range strings.Split(b.text, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			for _, n := range regexp.MustCompile(`\blogout_[a-z_]+\b`).FindAllString(line, -1) {
				if !promNames[n] && promLabels[n] == nil {
					t.Errorf("the alert %q uses %s, which no instrument exports", strings.TrimSpace(line), n)
				}
			}
			for _, m := range regexp.MustCompile(`([a-z_]+)(=~|=)"([^"]*)"`).FindAllStringSubmatch(line, -1) {
				values, ok := promLabels[m[1]]
				if !ok {
					t.Errorf("the alert %q matches on %s, which no instrument has", strings.TrimSpace(line), m[1])
					continue
				}
				for _, v := range strings.Split(m[3], "|") {
					if !slices.Contains(values, v) {
						t.Errorf("the alert %q matches %s=%q, which it never takes", strings.TrimSpace(line), m[1], v)
					}
				}
			}
			for _, m := range regexp.MustCompile(`by \(([a-z_, ]+)\)`).FindAllStringSubmatch(line, -1) {
				for _, l := range strings.Split(m[1], ",") {
					if _, ok := promLabels[strings.TrimSpace(l)]; !ok {
						t.Errorf("the alert %q groups by %s, which no instrument has", strings.TrimSpace(line), l)
					}
				}
			}
		}
	}
	if queries == 0 {
		t.Error("docs/production.md has no alerts")
	}
}

// godocRow is the rows of the godoc table that describe the instrument: from
// its line to the next instrument's.
func godocRow(godoc, name string) string {
	_, rest, ok := strings.Cut(godoc, "//\t"+name+" ")
	if !ok {
		return ""
	}
	var rows []string
	for i, line := range strings.Split(rest, "\n") {
		body := strings.TrimPrefix(strings.TrimSpace(line), "//")
		if i > 0 && (!strings.HasPrefix(body, "\t ") || strings.HasPrefix(body, "\tlogout.")) {
			break
		}
		rows = append(rows, body)
	}
	return strings.Join(rows, " ")
}
