// SPDX-License-Identifier: Apache-2.0

package logout

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

// FuzzCookiePairs: the package reads the cookies of a request as net/http's
// Request.Cookies does, name for name and value for value, in the same
// order, whatever the Cookie headers hold. A header line per "\n" of the
// input, so that the cookies of HTTP/2, which come in several lines, are
// covered too.
func FuzzCookiePairs(f *testing.F) {
	for _, seed := range []string{
		"__Host-session=abc",
		"a=1; b=2;c=3 ;  d = 4 ",
		`q="quoted"; e=""; f="; g="x`,
		"dup=1; dup=2; dup=3",
		"bad=a\\b; bad=ok; semi=\"a;b\"",
		"=novalue; noequals; ; ;;",
		"tab\t=\tv\t; sp=a b, c",
		"__Host-session=3.abc; __Host-session.1=def\n__Host-session.2=ghi",
		"x=\x7f; y=\x01; z=é",
		"bad name=1; n@me=2; ok_name=3",
		"\r\n a=1 \r\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		h := http.Header{"Cookie": strings.Split(header, "\n")}
		var want []string
		for _, c := range (&http.Request{Header: h}).Cookies() {
			want = append(want, c.Name+"="+c.Value)
		}
		if len(want) == 0 && strings.Count(header, ";")+strings.Count(header, "\n") >= 3000 {
			t.Skip("more cookies than net/http reads at all; cookiePairs reads them")
		}
		var got []string
		for name, raw := range cookiePairs(h) {
			if (&http.Cookie{Name: name}).Valid() != nil {
				continue // not a token: net/http drops it, and no name the package reads is one
			}
			if value, ok := cookieValue(raw); ok {
				got = append(got, name+"="+value)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("header %q:\ncookiePairs   %q\nReq.Cookies   %q", header, got, want)
		}
	})
}

// Reading the session cookie allocates nothing, however many other cookies
// the browser sends.
func TestReadingCookiesAllocatesNothing(t *testing.T) {
	j := cookieJar{name: "__Host-session"}
	r := &http.Request{Header: http.Header{"Cookie": {
		"_ga=GA1.1.1; theme=dark; __Host-session=" + strings.Repeat("AbCd-_", 300) + "; consent=yes; lang=en",
	}}}
	var carried carriedCookie
	if n := testing.AllocsPerRun(100, func() { carried = j.read(r) }); n != 0 {
		t.Errorf("%v allocations to read the session cookie, want 0", n)
	}
	if len(carried.token) != 1800 {
		t.Errorf("read a token of %d bytes, want 1800", len(carried.token))
	}
}
