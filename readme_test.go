package logout_test

import (
	"os"
	"strings"
	"testing"
)

// The README's Quick start is examples/quickstart, which a test runs: the
// two must stay the same.
func TestReadmeQuickstartIsTheExample(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	code, err := os.ReadFile("examples/quickstart/main.go")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "<!-- quickstart: examples/quickstart/main.go -->\n```go\n")
	block, _, ok2 := strings.Cut(block, "```")
	_, region, ok3 := strings.Cut(string(code), "// quickstart:begin\n")
	region, _, ok4 := strings.Cut(region, "// quickstart:end")
	if !ok || !ok2 || !ok3 || !ok4 {
		t.Fatal("the README's Quick start block or the example's markers are missing")
	}
	if strings.TrimSpace(block) != strings.TrimSpace(region) {
		t.Error("the README's Quick start differs from examples/quickstart/main.go; copy the region between the markers into the README")
	}
}
