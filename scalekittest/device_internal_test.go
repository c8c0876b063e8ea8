// SPDX-License-Identifier: Apache-2.0

package scalekittest

import "testing"

func TestDeviceOf(t *testing.T) {
	tests := []struct {
		ua                                       string
		browser, version, os, osVersion, devType string
	}{
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36",
			"Chrome", "142.0.0.0", "macOS", "10.15.7", "desktop"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
			"Edge", "120.0.2210.91", "Windows", "10.0", "desktop"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
			"Safari", "17.2", "iOS", "17.2", "mobile"},
		{"Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", "Firefox", "121.0", "Linux", "", "desktop"},
		{"Go-http-client/1.1", "Go", "1.1", "", "", "other"},
		{"", "", "", "", "", ""},
	}
	for _, tt := range tests {
		d := deviceOf(tt.ua, "192.0.2.1")
		if d.Browser != tt.browser || d.BrowserVersion != tt.version || d.OS != tt.os || d.OSVersion != tt.osVersion || d.DeviceType != tt.devType || d.IP != "192.0.2.1" {
			t.Errorf("%q: %+v", tt.ua, d)
		}
	}
}
