// SPDX-License-Identifier: Apache-2.0

// The binary form of a Session that both stores encrypt, in every format
// version they read.

package logout

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unsafe"
)

// The binary form of a Session, shared by both stores before they encrypt it:
// a format byte, the two times as varint Unix milliseconds, then each string
// as a uvarint length and its bytes. It is smaller and several times faster
// than JSON, which matters on the cookie store's every request.
//
// Format 2 adds, after the strings, optional fields as (uvarint tag, uvarint
// length, bytes), written only when set. A reader skips tags it does not
// know, so later fields need no new format: instances of different versions
// can serve the same users during a rolling deploy. Format 1 ends after the
// strings; every reader reads it, and writing it is what lets instances that
// read only format 1 keep working while the others are upgraded (see
// Config.SessionFormat).
const (
	sessionFormat1 = 1
	sessionFormat2 = 2

	// latestSessionFormat is what sessions are written in by default.
	latestSessionFormat = sessionFormat2
)

// The optional fields of format 2.
const (
	tagLastSeen          = 1 // varint Unix milliseconds
	tagAccessTokenExpiry = 2 // varint Unix milliseconds
	tagDevice            = 3 // the string's bytes
)

// errMalformed is what every decoder of untrusted bytes returns; stores turn
// it into ErrNoSession, so garbage never becomes a 500.
var errMalformed = errors.New("logout: malformed session")

// encodeSession writes s in the given format; format 1 leaves out what it
// cannot hold (LastSeen, AccessTokenExpiry, Device).
func encodeSession(s Session, format byte) []byte {
	strs := [...]string{s.Issuer, s.Subject, s.SessionID, s.Email, s.IDToken, s.AccessToken, s.RefreshToken}
	n := 1 + 2*binary.MaxVarintLen64 + 2*(2+binary.MaxVarintLen64) + 2 + binary.MaxVarintLen64 + len(s.Device)
	for _, v := range strs {
		n += binary.MaxVarintLen64 + len(v)
	}
	b := make([]byte, 0, n)
	b = append(b, format)
	b = binary.AppendVarint(b, unixMilli(s.IssuedAt))
	b = binary.AppendVarint(b, unixMilli(s.Expiry))
	for _, v := range strs {
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	if format >= sessionFormat2 {
		b = appendTime(b, tagLastSeen, s.LastSeen)
		b = appendTime(b, tagAccessTokenExpiry, s.AccessTokenExpiry)
		if s.Device != "" {
			b = binary.AppendUvarint(b, tagDevice)
			b = binary.AppendUvarint(b, uint64(len(s.Device)))
			b = append(b, s.Device...)
		}
	}
	return b
}

func appendTime(b []byte, tag uint64, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	var v [binary.MaxVarintLen64]byte
	n := binary.PutVarint(v[:], t.UnixMilli())
	b = binary.AppendUvarint(b, tag)
	b = binary.AppendUvarint(b, uint64(n))
	return append(b, v[:n]...)
}

// decodeSession reads a session from b, which its caller must never change
// afterwards: the session's strings are b's own bytes. Both callers pass a
// plaintext that Open has just written into memory of its own and that
// nothing else holds.
func decodeSession(b []byte) (Session, error) {
	if len(b) == 0 || (b[0] != sessionFormat1 && b[0] != sessionFormat2) {
		return Session{}, errMalformed
	}
	format := b[0]
	// The fields are substrings of b itself, not of a copy: every request
	// decodes a session of a kilobyte or more, and a copy of it was a
	// sixth of the bytes a signed-in page allocated.
	d := decoder{b: unsafe.String(unsafe.SliceData(b[1:]), len(b)-1)}
	var s Session
	s.IssuedAt = fromUnixMilli(d.varint())
	s.Expiry = fromUnixMilli(d.varint())
	for _, p := range [...]*string{&s.Issuer, &s.Subject, &s.SessionID, &s.Email, &s.IDToken, &s.AccessToken, &s.RefreshToken} {
		*p = d.string()
	}
	for format >= sessionFormat2 && !d.bad && len(d.b) > 0 {
		tag := d.uvarint()
		field := decoder{b: d.string()}
		switch tag {
		case tagLastSeen:
			s.LastSeen = fromUnixMilli(field.varint())
		case tagAccessTokenExpiry:
			s.AccessTokenExpiry = fromUnixMilli(field.varint())
		case tagDevice:
			s.Device, field.b = field.b, ""
		default:
			continue // a field of a later version
		}
		if field.bad || len(field.b) != 0 {
			return Session{}, errMalformed
		}
	}
	if d.bad || len(d.b) != 0 {
		return Session{}, errMalformed
	}
	return s, nil
}

type decoder struct {
	b   string
	bad bool
}

// uvarint reads what binary.AppendUvarint wrote, straight from the string.
func (d *decoder) uvarint() uint64 {
	var v uint64
	for i := 0; i < len(d.b) && i < binary.MaxVarintLen64; i++ {
		c := d.b[i]
		if i == binary.MaxVarintLen64-1 && c > 1 {
			break // overflows 64 bits
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			d.b = d.b[i+1:]
			return v
		}
	}
	d.bad = true
	return 0
}

func (d *decoder) varint() int64 {
	u := d.uvarint()
	return int64(u>>1) ^ -int64(u&1) // zig-zag, as binary.AppendVarint
}

func (d *decoder) string() string {
	l := d.uvarint()
	if d.bad || l > uint64(len(d.b)) {
		d.bad = true
		return ""
	}
	s := d.b[:l]
	d.b = d.b[l:]
	return s
}

func unixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromUnixMilli(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// newAEAD returns AES-256-GCM with a fresh random 96-bit nonce on every Seal,
// prefixed to the ciphertext. Random nonces stay safe for about 2^32 seals per
// key, far beyond any session key's life; rotate cookie keys long before.
func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("logout: key is %d bytes, want 32 (AES-256)", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("logout: %w", err)
	}
	return cipher.NewGCMWithRandomNonce(block)
}
