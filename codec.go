package logout

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// The binary form of a Session, shared by both stores before they encrypt it.
// A version byte, the two times as varint Unix milliseconds, then each string
// as a uvarint length and its bytes. It is smaller and several times faster
// than JSON, which matters on the cookie store's every request.
const sessionFormatV1 = 1

// errMalformed is what every decoder of untrusted bytes returns; stores turn
// it into ErrNoSession, so garbage never becomes a 500.
var errMalformed = errors.New("logout: malformed session")

func encodeSession(s Session) []byte {
	strs := [...]string{s.Issuer, s.Subject, s.SessionID, s.Email, s.IDToken, s.AccessToken, s.RefreshToken}
	n := 1 + 2*binary.MaxVarintLen64
	for _, v := range strs {
		n += binary.MaxVarintLen64 + len(v)
	}
	b := make([]byte, 0, n)
	b = append(b, sessionFormatV1)
	b = binary.AppendVarint(b, unixMilli(s.IssuedAt))
	b = binary.AppendVarint(b, unixMilli(s.Expiry))
	for _, v := range strs {
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	return b
}

func decodeSession(b []byte) (Session, error) {
	if len(b) == 0 || b[0] != sessionFormatV1 {
		return Session{}, errMalformed
	}
	d := decoder{b: b[1:]}
	var s Session
	s.IssuedAt = fromUnixMilli(d.varint())
	s.Expiry = fromUnixMilli(d.varint())
	for _, p := range [...]*string{&s.Issuer, &s.Subject, &s.SessionID, &s.Email, &s.IDToken, &s.AccessToken, &s.RefreshToken} {
		*p = d.string()
	}
	if d.bad || len(d.b) != 0 {
		return Session{}, errMalformed
	}
	return s, nil
}

type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	l, n := binary.Uvarint(d.b)
	if n <= 0 || l > uint64(len(d.b)-n) {
		d.bad = true
		return ""
	}
	s := string(d.b[n : n+int(l)])
	d.b = d.b[n+int(l):]
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
