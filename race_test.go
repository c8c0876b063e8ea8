// SPDX-License-Identifier: Apache-2.0

//go:build race

package logout_test

// raceEnabled reports whether the race detector is on: it allocates of its
// own, so the allocation ceilings hold only without it.
const raceEnabled = true
