// SPDX-License-Identifier: Apache-2.0

//go:build !unix

package logout_test

import "time"

func processCPU() (time.Duration, bool) { return 0, false }
