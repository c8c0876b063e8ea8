// SPDX-License-Identifier: Apache-2.0

package logout_test

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/endsession/logout/internal/testenv"
)

// Every log line any test causes, through a test's own logger or the
// default one, lands in suiteLogs; every token and cookie value the tests
// hand out is noted in suiteSecrets. After the run, TestMain fails the suite
// if any secret appears in any line.
var (
	suiteLogs    logSink
	suiteSecrets sync.Map
)

func noteSecret(s string) {
	if len(s) >= 16 {
		suiteSecrets.Store(s, true)
	}
}

func TestMain(m *testing.M) {
	if path := os.Getenv(backstopChildEnv); path != "" {
		os.Exit(runBackstopChild(path)) // an instance the durable backstop's tests kill
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(&suiteLogs, nil)))
	for _, s := range []string{testSession().IDToken, testSession().AccessToken, testSession().RefreshToken} {
		noteSecret(s)
	}
	code := m.Run()
	if line := testenv.SkipSummary(); line != "" {
		fmt.Fprintln(os.Stderr, line)
	}
	if n, err := testenv.KeysLeft(); err != nil || n > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: the tests left %d keys in their Redis (%v)\n", n, err)
		code = 1
	}
	if code == 0 {
		logs := suiteLogs.String()
		n := 0
		suiteSecrets.Range(func(k, _ any) bool {
			n++
			if secret := k.(string); strings.Contains(logs, secret) {
				fmt.Fprintf(os.Stderr, "FAIL: a token or cookie value reached the log: %.40q…\n", secret)
				code = 1
			}
			return true
		})
		if testing.Verbose() {
			fmt.Fprintf(os.Stderr, "log check: %d secrets, none in %d bytes of log\n", n, len(logs))
		}
	}
	os.Exit(code)
}
