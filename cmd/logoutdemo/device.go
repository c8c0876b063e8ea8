// SPDX-License-Identifier: Apache-2.0

// The device a session records at sign-in, read from the User-Agent.

package main

import (
	"strings"
)

// deviceOf is what the demo records in a session's Device at sign-in: the
// browser and the operating system its User-Agent header names ("Chrome on
// Linux"), or the client's product name when it names no browser
// ("Go-http-client", "curl"). Nothing more: not the version, not the
// address. What to record is the app's choice, and the store keeps it
// readable beside the sealed session, so it had better say little.
func deviceOf(userAgent string) string {
	browser, system := browserOf(userAgent), systemOf(userAgent)
	switch {
	case browser == "" && system == "":
		return ""
	case browser == "":
		return "a browser on " + system
	case system == "":
		return browser
	}
	return browser + " on " + system
}

// browserOf names the browser of a User-Agent. The order matters: Edge and
// Opera say Chrome too, Chrome says Safari, and every one says Mozilla.
func browserOf(ua string) string {
	for _, b := range []struct{ token, name string }{
		{"Edg/", "Edge"}, {"EdgiOS/", "Edge"}, {"EdgA/", "Edge"},
		{"OPR/", "Opera"},
		{"Firefox/", "Firefox"}, {"FxiOS/", "Firefox"},
		{"HeadlessChrome/", "Headless Chrome"},
		{"Chromium/", "Chromium"},
		{"Chrome/", "Chrome"}, {"CriOS/", "Chrome"},
	} {
		if strings.Contains(ua, b.token) {
			return b.name
		}
	}
	if strings.Contains(ua, "Safari/") && strings.Contains(ua, "Version/") {
		return "Safari"
	}
	// A client that is no browser names itself first: "curl/8.5.0".
	product, _, _ := strings.Cut(strings.TrimSpace(ua), "/")
	product, _, _ = strings.Cut(product, " ")
	if product == "Mozilla" || len(product) > 40 || strings.IndexFunc(product, notPlain) >= 0 {
		return ""
	}
	return product
}

func notPlain(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
}

// systemOf names the operating system of a User-Agent. iPhones say "like Mac
// OS X", and Android says Linux: they come first.
func systemOf(ua string) string {
	for _, s := range []struct{ token, name string }{
		{"iPhone", "iPhone"}, {"iPad", "iPad"},
		{"Android", "Android"},
		{"CrOS", "ChromeOS"},
		{"Windows", "Windows"},
		{"Macintosh", "macOS"}, {"Mac OS X", "macOS"},
		{"Linux", "Linux"},
	} {
		if strings.Contains(ua, s.token) {
			return s.name
		}
	}
	return ""
}
