// The backstop: ending the provider's session from the server after a logout,
// in case the browser never reaches the end-session endpoint.

package logout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// BackstopError is what Config.OnBackstopError receives when the backstop
// could not end a provider session: which one (or, for "sign out
// everywhere", whose other sessions), and why. It never holds a token.
type BackstopError struct {
	SessionID string // the provider session, or "" for a user's other sessions
	UserID    string // the user, for a user's other sessions
	Err       error
}

func (e *BackstopError) Error() string {
	if e.SessionID != "" {
		return fmt.Sprintf("logout: backstop: provider session %s: %v", e.SessionID, e.Err)
	}
	return fmt.Sprintf("logout: backstop: other provider sessions of %s: %v", e.UserID, e.Err)
}

func (e *BackstopError) Unwrap() error { return e.Err }

// errBackstopFull and errBackstopClosed are the reasons a job is refused.
var (
	errBackstopFull   = errors.New("too many pending jobs; not scheduled")
	errBackstopClosed = errors.New("the handler is closed; not scheduled")
	errAbandoned      = errors.New("abandoned: the handler closed before it could run")
)

// The backstop's bounds: how many jobs may wait, how many run at once, and
// how often a failed one is tried.
const (
	backstopMaxPending  = 4096
	backstopConcurrency = 8
	backstopAttempts    = 4
)

// backstopFirstRetry is the wait before a failed job's second attempt; it
// doubles for each next one. Tests shorten it.
var backstopFirstRetry = time.Second

// backstop ends provider sessions from the server, off the request path: the
// browser's navigation to the end-session endpoint is what normally ends
// them, but a tab closed or a network gone leaves them alive. Each job waits
// out a grace period first, so it never races the browser there (what the
// provider does with an id_token_hint whose session already ended is not
// documented), then does its work, retrying a few times with backoff.
//
// It is bounded: past backstopMaxPending waiting jobs, new ones are refused
// and reported at once. It lives in this process only: jobs still waiting
// when the process dies are lost, which is why Handler.Close drains it.
type backstop struct {
	provider *Provider
	delay    time.Duration
	log      *slog.Logger
	onError  func(context.Context, error)
	sem      chan struct{}

	ctx    context.Context // canceled when Close gives up waiting
	cancel context.CancelFunc

	mu      sync.Mutex
	closed  bool
	pending map[*backstopJob]struct{}
	wg      sync.WaitGroup
}

type backstopJob struct {
	timer *time.Timer
	what  BackstopError // names the job; Err is filled on failure
	work  func(context.Context) error
}

func newBackstop(p *Provider, delay time.Duration, log *slog.Logger, onError func(context.Context, error)) *backstop {
	ctx, cancel := context.WithCancel(context.Background())
	return &backstop{
		provider: p, delay: delay, log: log, onError: onError,
		sem: make(chan struct{}, backstopConcurrency), ctx: ctx, cancel: cancel,
		pending: map[*backstopJob]struct{}{},
	}
}

// endSession ends the provider session sid after the grace period, if it is
// still active then.
func (b *backstop) endSession(sid string) {
	b.schedule(b.delay, BackstopError{SessionID: sid}, func(ctx context.Context) error {
		return b.provider.EndSession(ctx, sid)
	})
}

// endOthers ends, at once, every active provider session of the user except
// keep that began by before: those are on other devices, where no
// navigation will come. Every attempt spares the sessions begun after
// before, the moment the user asked.
func (b *backstop) endOthers(userID, keep string, before time.Time) {
	b.schedule(0, BackstopError{UserID: userID}, func(ctx context.Context) error {
		_, err := b.provider.endSessionsBefore(ctx, userID, keep, before)
		return err
	})
}

func (b *backstop) schedule(delay time.Duration, what BackstopError, work func(context.Context) error) {
	j := &backstopJob{what: what, work: work}
	b.mu.Lock()
	var refused error
	switch {
	case b.closed:
		refused = errBackstopClosed
	case len(b.pending) >= backstopMaxPending:
		refused = errBackstopFull
	default:
		b.pending[j] = struct{}{}
		b.wg.Add(1)
		j.timer = time.AfterFunc(delay, func() { b.run(j) })
	}
	b.mu.Unlock()
	if refused != nil {
		go b.fail(j, refused) // reported off the request path, as every failure
	}
}

func (b *backstop) run(j *backstopJob) {
	defer b.wg.Done()
	defer func() {
		b.mu.Lock()
		delete(b.pending, j)
		b.mu.Unlock()
	}()
	select {
	case b.sem <- struct{}{}:
		defer func() { <-b.sem }()
	case <-b.ctx.Done():
		b.fail(j, errAbandoned)
		return
	}
	wait := backstopFirstRetry
	for attempt := 1; ; attempt++ {
		err := j.work(b.ctx)
		if err == nil {
			b.log.LogAttrs(b.ctx, slog.LevelInfo, "logout: backstop ended the provider session",
				slog.String("sid", j.what.SessionID), slog.String("user", j.what.UserID))
			return
		}
		if attempt == backstopAttempts || b.ctx.Err() != nil {
			b.fail(j, err)
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-b.ctx.Done():
			t.Stop()
			b.fail(j, fmt.Errorf("%w after %v", errAbandoned, err))
			return
		}
		wait *= 2
	}
}

func (b *backstop) fail(j *backstopJob, err error) {
	e := j.what
	e.Err = err
	b.log.LogAttrs(context.Background(), slog.LevelError, "logout: backstop could not end the provider session; it may outlive the logout",
		slog.String("sid", e.SessionID), slog.String("user", e.UserID), slog.Any("error", err))
	if b.onError != nil {
		b.onError(context.WithoutCancel(b.ctx), &e)
	}
}

// close stops taking jobs and waits for the scheduled ones, grace periods
// included, until ctx is done; it then abandons what is left, reporting each.
func (b *backstop) close(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	done := make(chan struct{})
	go func() {
		b.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		b.cancel()
		return nil
	case <-ctx.Done():
	}
	b.cancel()
	b.mu.Lock()
	var waiting []*backstopJob
	for j := range b.pending {
		if j.timer.Stop() { // never ran: it is ours to finish
			delete(b.pending, j)
			waiting = append(waiting, j)
		}
	}
	b.mu.Unlock()
	for _, j := range waiting {
		b.fail(j, errAbandoned)
		b.wg.Done()
	}
	<-done // running jobs see the cancellation and return
	return ctx.Err()
}
