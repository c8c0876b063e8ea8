package logout_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The package documentation maps every source file, and every file opens
// with a sentence saying what lives there, so a newcomer finds each room.
func TestDocMapsEverySourceFile(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		if f != "doc.go" && !strings.Contains(string(doc), " "+f) {
			t.Errorf("doc.go's map of the source does not name %s", f)
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(src), "// ") {
			t.Errorf("%s does not open with a comment saying what lives there", f)
		}
	}
}
