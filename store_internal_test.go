// SPDX-License-Identifier: Apache-2.0

package logout

import (
	"context"
	"testing"
	"time"
)

// A fingerprint covers only the random start of a token: the Redis token's
// session ID and the sealed cookie's nonce, never the Redis token's key.
func TestFingerprintCoversNoKey(t *testing.T) {
	if got := redisToken - base64Len(keyLen+tagLen); got < fingerprintLen {
		t.Fatalf("the Redis token's ID spans %d characters, fewer than the fingerprint's %d", got, fingerprintLen)
	}
	s := Session{Issuer: "https://idp.example", Subject: "usr_1", Expiry: time.Now().Add(time.Hour)}
	c, err := NewCookieStore(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := c.Save(context.Background(), s)
	b, _ := c.Save(context.Background(), s)
	if fingerprint(a) == fingerprint(b) {
		t.Error("two sealed sessions share a fingerprint")
	}
	// Changing anything past the first 16 characters (the Redis token's key
	// starts at its 22nd) leaves the fingerprint as it was.
	tok := "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"[:redisToken]
	other := tok[:fingerprintLen] + "B" + tok[fingerprintLen+1:]
	if fingerprint(tok) != fingerprint(other) {
		t.Error("the fingerprint depends on characters past the token's random ID")
	}
}

func base64Len(n int) int { return (n*8 + 5) / 6 }

// afterMilli waits for the clock to leave a millisecond, never longer than
// one, even when the wall clock stepped back since that millisecond.
func TestAfterMilliIsBounded(t *testing.T) {
	for _, t0 := range []time.Time{time.Now(), time.Now().Add(300 * time.Millisecond)} {
		start := time.Now()
		afterMilli(t0)
		if waited := time.Since(start); waited > 100*time.Millisecond {
			t.Errorf("afterMilli(%v from now) waited %v", t0.Sub(start).Round(time.Millisecond), waited)
		}
		if t0.Before(start) && time.Now().Truncate(time.Millisecond).Equal(t0.Truncate(time.Millisecond)) {
			t.Errorf("afterMilli returned within the millisecond of %v", t0)
		}
	}
}
