// SPDX-License-Identifier: Apache-2.0

// The endings the OnSessionEnd hooks heard, kept for the sessions card.

package main

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/endsession/logout"
)

// The demo gives one function to the OnSessionEnd hooks of the logout
// handler, the back-channel receiver and the webhook receiver, so that it
// hears of every app session that ends, whichever way: where a real app
// would drop what it caches about the user, the demo logs the ending and
// keeps the last few, which the "Active sessions" card shows.

// keptEndings is how many endings the demo keeps.
const keptEndings = 64

// ending is one session ending the hook heard of, and when.
type ending struct {
	At time.Time
	logout.SessionEnd
}

// endingLog keeps the last keptEndings endings. It is safe for concurrent
// use: the hook runs on whichever request ended the session.
type endingLog struct {
	log *slog.Logger
	mu  sync.Mutex
	all []ending
}

// sessionEnded is the OnSessionEnd hook. It logs what ended and why, never
// a token: SessionEnd holds none.
func (l *endingLog) sessionEnded(ctx context.Context, e logout.SessionEnd) {
	l.log.InfoContext(ctx, "session ended", "reason", e.Reason, "subject", e.Subject, "handle", e.Handle, "sid", e.SessionID)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, ending{At: time.Now(), SessionEnd: e})
	if len(l.all) > keptEndings {
		l.all = slices.Delete(l.all, 0, len(l.all)-keptEndings)
	}
}

// of returns the kept endings of the user subject, newest first, at most n.
func (l *endingLog) of(subject string, n int) []ending {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []ending
	for i := len(l.all) - 1; i >= 0 && len(out) < n; i-- {
		if l.all[i].Subject == subject {
			out = append(out, l.all[i])
		}
	}
	return out
}

// endings returns every kept ending, oldest first.
func (l *endingLog) endings() []ending {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.all)
}
