package logout_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/endsession/logout"
)

// FuzzCookieStoreToken: any token, forged or garbled, reads as no session
// (or, for a real one, as its session) and never panics.
func FuzzCookieStoreToken(f *testing.F) {
	store, err := logout.NewCookieStore(make([]byte, 32))
	if err != nil {
		f.Fatal(err)
	}
	good, _ := store.Save(context.Background(), testSession())
	for _, seed := range []string{good, good[:len(good)/2], "", "AAAA", strings.Repeat("A", 20000), good + "=", "\x00"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		for _, op := range []func(context.Context, string) (logout.Session, error){store.Load, store.End} {
			s, err := op(context.Background(), token)
			if err != nil && !errors.Is(err, logout.ErrNoSession) {
				t.Fatalf("error %v, want ErrNoSession", err)
			}
			// Only tokens this key sealed open (each fuzz worker seals
			// its own, so compare what they hold, not the token).
			if err == nil && s.IDToken != testSession().IDToken {
				t.Fatalf("forged token %q opened as %v", token, s)
			}
		}
	})
}

// FuzzRedisStoreToken: the same for the Redis store's tokens, against a
// miniredis holding one real session.
func FuzzRedisStoreToken(f *testing.F) {
	store := newMiniStore(f)
	good, err := store.Save(context.Background(), testSession())
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{good, good[:40], good + "A", "", strings.Repeat("_", 75)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		s, err := store.Load(context.Background(), token)
		if err != nil && !errors.Is(err, logout.ErrNoSession) {
			t.Fatalf("error %v, want ErrNoSession", err)
		}
		if err == nil && token != good {
			t.Fatalf("forged token %q opened as %v", token, s)
		}
	})
}

// FuzzCookieHeader sends arbitrary Cookie headers, chunk counts and all, to
// Session and to the logout handler: never a panic, never a 5xx, never a
// session for a forged value.
func FuzzCookieHeader(f *testing.F) {
	store, _ := logout.NewCookieStore(make([]byte, 32))
	h, _ := newHandler(f, store, nil)
	f.Add("__Host-session=3.abc; __Host-session.1=def; __Host-session.2=ghi")
	f.Add("__Host-session=99.x")
	f.Add("__Host-session=.; __Host-session.1=")
	f.Add("__Host-session=-1.x; __Host-session.00=y; __Host-session.+1=z")
	f.Add(strings.Repeat("a=b; ", 300))
	f.Fuzz(func(t *testing.T, header string) {
		r := httptest.NewRequest(http.MethodPost, testAppOrigin+"/logout", nil)
		r.Header.Set("Cookie", header)
		r.Header.Set("Sec-Fetch-Site", "same-origin")
		if s, err := h.Session(r); !errors.Is(err, logout.ErrNoSession) {
			t.Fatalf("Session = %v, %v; want ErrNoSession", s, err)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != http.StatusSeeOther {
			t.Fatalf("status %d, want 303", rec.Code)
		}
	})
}
