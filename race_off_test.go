// SPDX-License-Identifier: Apache-2.0

//go:build !race

package logout_test

// raceDetector reports whether the tests run under the race detector, whose
// sync.Pool drops items at random: allocation counts then vary from run to
// run.
const raceDetector = false
