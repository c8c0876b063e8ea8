// SPDX-License-Identifier: Apache-2.0

package scalekittest_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/endsession/logout/scalekittest"
)

func TestSessionPolicy(t *testing.T) {
	const idle, absolute = 30 * time.Minute, 2 * time.Hour
	tests := []struct {
		name     string
		steps    []time.Duration // clock moves; a refresh follows each
		wantLive int             // refreshes that succeed
		endedAt  time.Duration   // when, after sign-in, it expired
	}{
		{"active user", []time.Duration{20 * time.Minute, 20 * time.Minute, 20 * time.Minute}, 3, 0},
		{"idle", []time.Duration{20 * time.Minute, 31 * time.Minute}, 1, 50 * time.Minute},
		{"idle exactly", []time.Duration{idle}, 0, idle},
		{"absolute", []time.Duration{25 * time.Minute, 25 * time.Minute, 25 * time.Minute, 25 * time.Minute, 25 * time.Minute}, 4, absolute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			s := newServer(t, scalekittest.Config{IdleTimeout: idle, AbsoluteTimeout: absolute, Now: clk.Now})
			start := clk.Now()
			_, tok := signIn(t, s, "ada@example.com")
			sid := claimsOf(t, tok.IDToken)["sid"].(string)
			live := 0
			for _, d := range tt.steps {
				clk.Advance(d)
				next := refresh(t, s, tok.RefreshToken)
				if next.status != http.StatusOK {
					break
				}
				live++
				tok = next
			}
			if live != tt.wantLive {
				t.Errorf("%d refreshes succeeded, want %d", live, tt.wantLive)
			}
			ses, err := s.Session(sid)
			if err != nil {
				t.Fatal(err)
			}
			if tt.endedAt == 0 {
				if ses.Status != scalekittest.StatusActive || !ses.IdleExpiresAt.Equal(ses.LastActiveAt.Add(idle)) || !ses.AbsoluteExpiresAt.Equal(start.Add(absolute)) {
					t.Errorf("session %+v, want active with both expiry times", ses)
				}
				return
			}
			if ses.Status != scalekittest.StatusExpired || !ses.EndedAt.Equal(start.Add(tt.endedAt)) {
				t.Errorf("status %s ended at +%v, want expired at +%v", ses.Status, ses.EndedAt.Sub(start), tt.endedAt)
			}
		})
	}
}

// Without a policy of its own an environment has the one the reference's
// user.logout example shows: idle 7 days, absolute 30 days. NoIdleTimeout
// leaves the absolute one alone, and idle_expires_at then reports it.
func TestDefaultSessionPolicy(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		name     string
		noIdle   bool
		steps    []time.Duration // clock moves; a refresh follows each
		wantLive int             // refreshes that succeed
		endedAt  time.Duration   // when, after sign-in, it expired
	}{
		{"used weekly", false, []time.Duration{6 * day, 6 * day, 6 * day, 6 * day}, 4, 0},
		{"idle a week", false, []time.Duration{3 * day, 7 * day}, 1, 10 * day},
		{"absolute", false, []time.Duration{6 * day, 6 * day, 6 * day, 6 * day, 6 * day, 6 * day}, 4, 30 * day},
		{"no idle timeout, idle 29 days", true, []time.Duration{29 * day}, 1, 0},
		{"no idle timeout, absolute", true, []time.Duration{29 * day, day}, 1, 30 * day},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			s := newServer(t, scalekittest.Config{NoIdleTimeout: tt.noIdle, Now: clk.Now})
			start := clk.Now()
			_, tok := signIn(t, s, "ada@example.com")
			sid := claimsOf(t, tok.IDToken)["sid"].(string)
			live := 0
			for _, d := range tt.steps {
				clk.Advance(d)
				next := refresh(t, s, tok.RefreshToken)
				if next.status != http.StatusOK {
					break
				}
				live++
				tok = next
			}
			if live != tt.wantLive {
				t.Errorf("%d refreshes succeeded, want %d", live, tt.wantLive)
			}
			ses, err := s.Session(sid)
			if err != nil {
				t.Fatal(err)
			}
			wantIdle := ses.LastActiveAt.Add(scalekittest.DefaultIdleTimeout)
			if tt.noIdle || wantIdle.After(ses.AbsoluteExpiresAt) {
				wantIdle = ses.AbsoluteExpiresAt
			}
			if !ses.AbsoluteExpiresAt.Equal(start.Add(scalekittest.DefaultAbsoluteTimeout)) || !ses.IdleExpiresAt.Equal(wantIdle) {
				t.Errorf("expires idle at +%v, absolutely at +%v; want +%v and +%v", ses.IdleExpiresAt.Sub(start), ses.AbsoluteExpiresAt.Sub(start),
					wantIdle.Sub(start), scalekittest.DefaultAbsoluteTimeout)
			}
			if tt.endedAt == 0 {
				if ses.Status != scalekittest.StatusActive {
					t.Errorf("status %s, want active", ses.Status)
				}
				return
			}
			if ses.Status != scalekittest.StatusExpired || !ses.EndedAt.Equal(start.Add(tt.endedAt)) {
				t.Errorf("status %s ended at +%v, want expired at +%v", ses.Status, ses.EndedAt.Sub(start), tt.endedAt)
			}
		})
	}
}

// An expired session is announced to its apps like any other ending.
func TestExpiryNotifiesTheApps(t *testing.T) {
	rc := newReceiver(t)
	clk := newClock()
	s := newServer(t, scalekittest.Config{IdleTimeout: time.Minute, Now: clk.Now, WebhookURLs: []string{rc.URL + "/hook"}})
	if err := s.AddClient(scalekittest.Client{ID: "skc_1", Secret: "secret", RedirectURIs: []string{callback}, BackChannelLogoutURIs: []string{rc.URL + "/bc"}}); err != nil {
		t.Fatal(err)
	}
	_, tok := signIn(t, s, "ada@example.com")
	clk.Advance(time.Minute)
	user := claimsOf(t, tok.IDToken)["sub"].(string)
	if active := s.ActiveSessions(user); len(active) != 0 {
		t.Fatalf("active sessions %v after the idle timeout", active)
	}
	settle(t, s)
	if got := rc.paths(); len(got) != 2 || got[0] != "/bc" || got[1] != "/hook" {
		t.Errorf("deliveries to %v, want /bc and /hook", got)
	}
}
