// SPDX-License-Identifier: Apache-2.0

package logout_test

import (
	"io/fs"
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
		rest, ok := strings.CutPrefix(string(src), spdx+"\n\n")
		if !ok {
			t.Errorf("%s does not open with %q", f, spdx)
		}
		if !strings.HasPrefix(rest, "// ") {
			t.Errorf("%s does not open with a comment saying what lives there", f)
		}
	}
}

// spdx is the license line every Go file of the module opens with.
const spdx = "// SPDX-License-Identifier: Apache-2.0"

// Every Go file of the module, in every folder, opens with the license line.
func TestEveryGoFileNamesItsLicense(t *testing.T) {
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != "." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(string(src), spdx+"\n") {
			t.Errorf("%s does not open with %q", path, spdx)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
