// SPDX-License-Identifier: Apache-2.0

package logout_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// docs/configuration.md documents every exported field of every
// configuration type, each in its type's own table.
func TestConfigurationReferenceIsComplete(t *testing.T) {
	ref, err := os.ReadFile("docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]string{}
	for _, part := range strings.Split(string(ref), "\n## ")[1:] {
		name, body, _ := strings.Cut(part, "\n")
		sections[strings.TrimSpace(name)] = body
	}
	fields := exportedFields(t, "Config", "CookieConfig", "RedisStore", "RevocationList", "ProviderConfig", "BackChannelConfig", "WebhookConfig")
	for typ, names := range fields {
		body, ok := sections[typ]
		if !ok {
			t.Errorf("docs/configuration.md has no section ## %s", typ)
			continue
		}
		for _, name := range names {
			if !regexp.MustCompile("(?m)^\\| `" + name + "` \\|").MatchString(body) {
				t.Errorf("docs/configuration.md: %s.%s has no row in its table", typ, name)
			}
		}
	}
	for typ, names := range fields {
		if len(names) == 0 {
			t.Errorf("found no exported field of %s: is the type still in the package?", typ)
		}
	}
}

// exportedFields returns the exported field names of the package's struct
// types named.
func exportedFields(t *testing.T, types ...string) map[string][]string {
	t.Helper()
	want := map[string]bool{}
	out := map[string][]string{}
	for _, typ := range types {
		want[typ] = true
		out[typ] = nil
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			spec, ok := n.(*ast.TypeSpec)
			if !ok || !want[spec.Name.Name] {
				return true
			}
			st, ok := spec.Type.(*ast.StructType)
			if !ok {
				return true
			}
			for _, field := range st.Fields.List {
				for _, name := range field.Names {
					if name.IsExported() {
						out[spec.Name.Name] = append(out[spec.Name.Name], name.Name)
					}
				}
			}
			return false
		})
	}
	return out
}

// Every relative link of the README and of the documents under docs/ names a
// file of the module, and an anchor a heading of that file.
func TestDocsLinksResolve(t *testing.T) {
	files, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, file := range append([]string{"README.md", "SECURITY.md", "CHANGELOG.md"}, files...) {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(src), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, anchor, _ := strings.Cut(target, "#")
			if path == "" {
				path = file
			} else {
				path = filepath.Join(filepath.Dir(file), path)
			}
			info, err := os.Stat(path)
			if err != nil {
				t.Errorf("%s: link %s: %v", file, target, err)
				continue
			}
			if anchor != "" && !info.IsDir() && !slices.Contains(headingAnchors(t, path), anchor) {
				t.Errorf("%s: link %s: %s has no heading #%s", file, target, path, anchor)
			}
		}
	}
}

// headingAnchors returns the anchors GitHub gives the headings of a Markdown
// file: lower case, spaces as hyphens, other punctuation dropped.
func headingAnchors(t *testing.T, file string) []string {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	fenced := false
	for _, line := range strings.Split(string(src), "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		var b strings.Builder
		for _, r := range title {
			switch {
			case r == ' ':
				b.WriteByte('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		out = append(out, b.String())
	}
	return out
}
