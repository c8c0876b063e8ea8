// SPDX-License-Identifier: Apache-2.0

//go:build !race

package logout_test

const raceEnabled = false
