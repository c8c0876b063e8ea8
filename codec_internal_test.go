package logout

import (
	"testing"
	"time"
)

// FuzzDecodeSession feeds arbitrary bytes, as a forged or corrupted session
// would be after decryption, to the session decoder: it must never panic, and
// whatever it accepts must survive another round trip unchanged.
func FuzzDecodeSession(f *testing.F) {
	f.Add(encodeSession(Session{Subject: "usr_1", SessionID: "ses_1", IDToken: "a.b.c", Expiry: time.UnixMilli(1e12)}))
	f.Add(encodeSession(Session{}))
	f.Add([]byte{sessionFormatV1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeSession(b)
		if err != nil {
			return
		}
		again, err := decodeSession(encodeSession(s))
		if err != nil || again != s {
			t.Fatalf("round trip changed %#v into %#v (%v)", s, again, err)
		}
	})
}
