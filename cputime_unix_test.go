// SPDX-License-Identifier: Apache-2.0

//go:build unix

package logout_test

import (
	"syscall"
	"time"
)

// processCPU is the CPU time this process has used, user and system, on all
// its threads.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
