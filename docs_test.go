package logout_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
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
