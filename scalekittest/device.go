// SPDX-License-Identifier: Apache-2.0

package scalekittest

// What a session's device details say of the browser that started it, read
// from its User-Agent header.

import (
	"regexp"
	"strings"
)

// deviceOf reads the browser, its version, the operating system and the kind
// of device from a User-Agent, as far as the common browsers tell them; what
// it cannot tell stays empty. Device types are the session API's lower-case
// values (developer-docs openapi/scalekit.yaml, sessionsDeviceDetails
// device_type: desktop, mobile, tablet, other).
func deviceOf(userAgent, ip string) deviceDetails {
	d := deviceDetails{UserAgent: userAgent, IP: ip}
	if userAgent == "" {
		return d
	}
	for _, b := range browsers {
		if m := b.re.FindStringSubmatch(userAgent); m != nil {
			d.Browser, d.BrowserVersion = b.name, m[1]
			break
		}
	}
	for _, o := range systems {
		if m := o.re.FindStringSubmatch(userAgent); m != nil {
			d.OS = o.name
			if len(m) > 1 {
				d.OSVersion = strings.ReplaceAll(m[1], "_", ".")
			}
			break
		}
	}
	switch {
	case strings.Contains(userAgent, "iPad") || strings.Contains(userAgent, "Tablet"):
		d.DeviceType = "tablet"
	case strings.Contains(userAgent, "Mobile") || strings.Contains(userAgent, "Android"):
		d.DeviceType = "mobile"
	case d.OS != "":
		d.DeviceType = "desktop"
	default:
		d.DeviceType = "other"
	}
	return d
}

type uaPattern struct {
	name string
	re   *regexp.Regexp
}

// browsers are tried in order: Edge and Opera also say Chrome, and Chrome
// also says Safari.
var browsers = []uaPattern{
	{"Edge", regexp.MustCompile(`Edg(?:e|A|iOS)?/([\d.]+)`)},
	{"Opera", regexp.MustCompile(`OPR/([\d.]+)`)},
	{"Firefox", regexp.MustCompile(`Firefox/([\d.]+)`)},
	{"Chrome", regexp.MustCompile(`(?:Chrome|CriOS|HeadlessChrome)/([\d.]+)`)},
	{"Safari", regexp.MustCompile(`Version/([\d.]+).*Safari/`)},
	{"curl", regexp.MustCompile(`^curl/([\d.]+)`)},
	{"Go", regexp.MustCompile(`^Go-http-client/([\d.]+)`)},
	{"Node", regexp.MustCompile(`^node(?:-fetch)?/?([\d.]*)`)},
}

var systems = []uaPattern{
	{"iOS", regexp.MustCompile(`(?:iPhone|iPad).*? OS ([\d_]+)`)},
	{"Android", regexp.MustCompile(`Android ([\d.]+)`)},
	{"macOS", regexp.MustCompile(`Mac OS X ([\d_.]+)`)},
	{"Windows", regexp.MustCompile(`Windows NT ([\d.]+)`)},
	{"ChromeOS", regexp.MustCompile(`CrOS \S+ ([\d.]+)`)},
	{"Linux", regexp.MustCompile(`Linux`)},
}
