// SPDX-License-Identifier: Apache-2.0

package logout

import (
	"encoding/binary"
	"testing"
	"time"
)

// FuzzDecodeSession feeds arbitrary bytes, as a forged or corrupted session
// would be after decryption, to the session decoder: it must never panic, and
// whatever it accepts must survive another round trip unchanged.
func FuzzDecodeSession(f *testing.F) {
	f.Add(encodeSession(Session{Subject: "usr_1", SessionID: "ses_1", IDToken: "a.b.c", Expiry: time.UnixMilli(1e12), LastSeen: time.UnixMilli(9e11)}, latestSessionFormat))
	f.Add(encodeSession(Session{}, sessionFormat1))
	f.Add([]byte{sessionFormat1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeSession(b)
		if err != nil {
			return
		}
		again, err := decodeSession(encodeSession(s, latestSessionFormat))
		if err != nil || again != s {
			t.Fatalf("round trip changed %#v into %#v (%v)", s, again, err)
		}
	})
}

// TestUvarintMatchesStd checks the string decoder against encoding/binary,
// including the overflow and truncation it must refuse.
func TestUvarintMatchesStd(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 300, 1 << 35, 1 << 63, ^uint64(0)} {
		b := binary.AppendUvarint(nil, v)
		d := decoder{b: string(b)}
		if got := d.uvarint(); got != v || d.bad {
			t.Errorf("%d: got %d bad %v", v, got, d.bad)
		}
	}
	for _, v := range []int64{0, -1, 1, -1 << 40, 1 << 62, -1 << 63} {
		b := binary.AppendVarint(nil, v)
		d := decoder{b: string(b)}
		if got := d.varint(); got != v || d.bad {
			t.Errorf("%d: got %d", v, got)
		}
	}
	for _, bad := range []string{"", "\x80", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"} {
		d := decoder{b: bad}
		d.uvarint()
		if !d.bad {
			t.Errorf("%q accepted", bad)
		}
	}
}

// A reader of format 2 skips the optional fields it does not know, so a
// later version may add some without breaking instances still running this
// one; a field it knows must be well formed.
func TestSessionFormatSkipsUnknownFields(t *testing.T) {
	s := Session{Subject: "usr_1", Expiry: time.UnixMilli(2e12), LastSeen: time.UnixMilli(1e12)}
	b := encodeSession(s, sessionFormat2)
	b = binary.AppendUvarint(b, 99) // a field of a later version
	b = binary.AppendUvarint(b, 3)
	b = append(b, "abc"...)
	got, err := decodeSession(b)
	if err != nil || got.LastSeen != s.LastSeen.UTC() || got.Subject != s.Subject {
		t.Errorf("with an unknown field: %+v, %v", got, err)
	}
	bad := encodeSession(Session{}, sessionFormat2)
	bad = binary.AppendUvarint(bad, tagLastSeen)
	bad = binary.AppendUvarint(bad, 2)
	bad = append(bad, 0xff, 0xff) // not a varint
	if _, err := decodeSession(bad); err == nil {
		t.Error("a malformed known field was accepted")
	}
	if one := encodeSession(s, sessionFormat1); one[0] != 1 || len(one) >= len(encodeSession(s, sessionFormat2)) {
		t.Errorf("format 1 of a session with LastSeen: % x", one)
	}
}
