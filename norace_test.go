//go:build !race

package logout_test

const raceEnabled = false
