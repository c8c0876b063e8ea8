// SPDX-License-Identifier: Apache-2.0

//go:build race

package logout_test

// raceDetector reports whether the tests run under the race detector,
// which allocates of its own and whose sync.Pool drops items at random:
// allocation counts then vary from run to run, so the tests that count them
// run only without it (CI runs the suite both ways).
const raceDetector = true
