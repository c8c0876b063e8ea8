// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// NodeSDKVar turns on the tests that run apps on Node.js and install their
// packages from the npm registry. They are off by default so that a plain
// go test stays offline and fast; CI sets it.
const NodeSDKVar = "LOGOUT_TEST_NODE_SDK"

// Node returns the paths of node (version 20 or later) and npm. It skips the
// test unless LOGOUT_TEST_NODE_SDK=1, saying how to run it; with the variable
// set it skips (or fails, in strict mode) when either is missing.
func Node(t testing.TB) (node, npm string) {
	t.Helper()
	if os.Getenv(NodeSDKVar) != "1" {
		t.Skipf("set %s=1 to run this test; it needs node 20+, npm and the npm registry", NodeSDKVar)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		SkipOrFail(t, "node is not installed (apt-get install -y nodejs npm)")
	}
	npm, err = exec.LookPath("npm")
	if err != nil {
		SkipOrFail(t, "npm is not installed (apt-get install -y npm)")
	}
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		SkipOrFail(t, "node --version: %v", err)
	}
	major, _ := strconv.Atoi(strings.TrimPrefix(strings.SplitN(strings.TrimSpace(string(out)), ".", 2)[0], "v"))
	if major < 20 {
		SkipOrFail(t, "node %s is too old; 20 or later is needed", strings.TrimSpace(string(out)))
	}
	return node, npm
}
