// SPDX-License-Identifier: Apache-2.0

// The backstop: ending the provider's session from the server after a logout,
// in case the browser never reaches the end-session endpoint.

package logout

import (
	"context"
	"crypto/rand"
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

// The backstop's bounds: how many jobs may wait in this process, how many
// run at once, and how often a failed one is tried.
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
// Where the store keeps its state in Redis, jobs are recorded there before
// the logout answers, and every instance sharing that Redis runs them
// (backstop_redis.go): a crash of the instance that took the logout loses
// nothing. Otherwise they wait in this process, bounded: past
// backstopMaxPending waiting jobs, new ones are refused and reported at
// once, and jobs still waiting when the process dies are lost, which is why
// Handler.Close drains them.
type backstop struct {
	provider *Provider
	delay    time.Duration
	log      *slog.Logger
	onError  func(context.Context, error)
	sem      chan struct{}
	tel      *telemetry
	queue    *durableQueue // nil: jobs wait in this process only

	ctx    context.Context // canceled when Close gives up waiting
	cancel context.CancelFunc

	mu      sync.Mutex
	closed  bool
	pending map[*localJob]struct{}
	wg      sync.WaitGroup
}

// backstopJob is one piece of the backstop's work. It holds identifiers
// only, never a token, so that it can be recorded in Redis as it is.
type backstopJob struct {
	ID     string `json:"id"`             // random, so that every job is a record of its own
	SID    string `json:"sid,omitempty"`  // end this provider session, if still active
	User   string `json:"user,omitempty"` // or end this user's sessions
	Keep   string `json:"keep,omitempty"` // but this one
	Before int64  `json:"before,omitempty"`
	Tries  int    `json:"tries,omitempty"` // attempts already made
	delay  time.Duration
}

// sessionJob ends the provider session sid after the grace period, if it is
// still active then.
func (b *backstop) sessionJob(sid string) backstopJob {
	return backstopJob{ID: rand.Text(), SID: sid, delay: b.delay}
}

// othersJob ends, at once, every active provider session of the user
// except keep that began by before: those are on other devices, where no
// navigation will come. Every attempt spares the sessions begun after
// before, the moment the user asked.
func (b *backstop) othersJob(userID, keep string, before time.Time) backstopJob {
	return backstopJob{ID: rand.Text(), User: userID, Keep: keep, Before: unixMilli(before)}
}

// do makes one attempt at the job, and reports whether it ended a provider
// session.
func (j backstopJob) do(ctx context.Context, p *Provider) (bool, error) {
	if j.SID != "" {
		return p.endSession(ctx, j.SID)
	}
	n, err := p.endSessionsBefore(ctx, j.User, j.Keep, fromUnixMilli(j.Before))
	return n > 0, err
}

func (j backstopJob) what(err error) *BackstopError {
	return &BackstopError{SessionID: j.SID, UserID: j.User, Err: err}
}

// retryAfter is the wait before the job's next attempt, after tries
// attempts.
func retryAfter(tries int) time.Duration {
	return backstopFirstRetry << max(tries-1, 0)
}

func newBackstop(p *Provider, delay time.Duration, log *slog.Logger, onError func(context.Context, error), tel *telemetry, q *durableQueue) *backstop {
	ctx, cancel := context.WithCancel(context.Background())
	b := &backstop{
		provider: p, delay: delay, log: log, onError: onError, tel: tel,
		sem: make(chan struct{}, backstopConcurrency), ctx: ctx, cancel: cancel,
		pending: map[*localJob]struct{}{},
	}
	if q != nil {
		b.queue = q
		q.start(b)
	}
	return b
}

// schedule records the jobs: in Redis when the backstop has a queue there,
// before the logout answers, in one round trip; in this process otherwise,
// or when Redis could not take them (local says the store just failed, so
// Redis is likely down: no second wait on it). A job that cannot be
// scheduled at all is reported, off the request path.
func (b *backstop) schedule(ctx context.Context, local bool, jobs ...backstopJob) {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		for _, j := range jobs {
			b.tel.backstop(backstopDropped)
			go b.fail(j, errBackstopClosed) // reported off the request path, as every failure
		}
		return
	}
	if b.queue != nil && !local {
		err := b.queue.add(ctx, jobs)
		if err == nil {
			for range jobs {
				b.tel.backstop(backstopScheduled)
			}
			return
		}
		// Not recorded, or (ErrNotConfirmed) recorded on a primary that
		// may yet lose it: the jobs run here too. A second run is
		// harmless: a job ends only what is still active.
		b.log.LogAttrs(ctx, slog.LevelWarn, "logout: backstop: could not record jobs in Redis; they wait in this process",
			slog.Any("error", err))
	}
	for _, j := range jobs {
		b.scheduleLocal(j)
	}
}

// localJob is a job waiting in this process.
type localJob struct {
	job   backstopJob
	due   time.Time
	timer *time.Timer
}

func (b *backstop) scheduleLocal(job backstopJob) {
	j := &localJob{job: job, due: time.Now().Add(job.delay)}
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
		j.timer = time.AfterFunc(job.delay, func() { b.runLocal(j) })
	}
	b.mu.Unlock()
	if refused != nil {
		b.tel.backstop(backstopDropped)
		go b.fail(job, refused)
		return
	}
	b.tel.backstop(backstopScheduled)
}

func (b *backstop) runLocal(j *localJob) {
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
		b.tel.backstop(backstopDropped)
		b.fail(j.job, errAbandoned)
		return
	}
	for {
		ended, err := b.attempt(j.job)
		j.job.Tries++
		if err == nil {
			b.tel.backstop(jobFinished(ended))
			return
		}
		if j.job.Tries >= backstopAttempts || b.ctx.Err() != nil {
			b.tel.backstop(backstopFailed)
			b.fail(j.job, err)
			return
		}
		t := time.NewTimer(retryAfter(j.job.Tries))
		select {
		case <-t.C:
		case <-b.ctx.Done():
			t.Stop()
			b.tel.backstop(backstopFailed)
			b.fail(j.job, fmt.Errorf("%w after %v", errAbandoned, err))
			return
		}
	}
}

// attempt makes one attempt at the job, bounded so that a claim on it in
// Redis outlives it, logs a success, and reports whether it ended a
// provider session. The caller counts the outcome once the job is settled.
func (b *backstop) attempt(j backstopJob) (bool, error) {
	ctx, cancel := context.WithTimeout(b.ctx, b.attemptBound())
	defer cancel()
	ctx, span := b.tel.span(ctx, spanBackstopJob, internalSpan)
	defer span.End()
	ended, err := j.do(ctx, b.provider)
	if err == nil {
		b.logDone(ctx, j, ended)
	}
	return ended, err
}

// logDone says what a job that succeeded found: an operator reads from it
// whether browsers reach the provider's logout themselves.
func (b *backstop) logDone(ctx context.Context, j backstopJob, ended bool) {
	var msg string
	var attr slog.Attr
	switch {
	case j.SID != "" && ended:
		msg, attr = "logout: backstop ended the provider session (the browser never ended it)", slog.String("sid", j.SID)
	case j.SID != "":
		msg, attr = "logout: backstop found the provider session already ended", slog.String("sid", j.SID)
	case ended:
		msg, attr = "logout: backstop ended the user's provider sessions on other devices", slog.String("user", j.User)
	default:
		msg, attr = "logout: backstop found no provider session of the user's on other devices", slog.String("user", j.User)
	}
	b.log.LogAttrs(ctx, slog.LevelInfo, msg, attr)
}

// attemptBound is the longest one attempt may take: a few session-API
// calls, each bounded by the Provider's timeout.
func (b *backstop) attemptBound() time.Duration { return 3 * b.provider.timeout }

func (b *backstop) fail(j backstopJob, err error) {
	e := j.what(err)
	b.log.LogAttrs(context.Background(), slog.LevelError, "logout: backstop could not end the provider session; it may outlive the logout",
		slog.String("sid", e.SessionID), slog.String("user", e.UserID), slog.Any("error", err))
	if b.onError != nil {
		b.onError(context.WithoutCancel(b.ctx), e)
	}
}

// stats reports how many jobs wait or run (in Redis, for every instance
// sharing it) and how long the oldest of those whose grace period is over
// has been due (0 when none is): the queue's depth and its lag, for the
// metrics.
func (b *backstop) stats(ctx context.Context) (depth int, oldestDue time.Duration, err error) {
	if b.queue != nil {
		if depth, oldestDue, err = b.queue.stats(ctx); err != nil {
			return 0, 0, err
		}
	}
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	for j := range b.pending {
		oldestDue = max(oldestDue, now.Sub(j.due))
	}
	return depth + len(b.pending), oldestDue, nil
}

// close stops taking jobs and waits for the scheduled ones, grace periods
// included, until ctx is done. Then it abandons, reporting each, the jobs
// waiting in this process; those recorded in Redis stay there for the other
// instances (or the app's next start), and are not reported.
func (b *backstop) close(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	done := make(chan struct{})
	go func() {
		b.wg.Wait()
		if b.queue != nil {
			b.queue.drain(b.ctx)
		}
		close(done)
	}()
	select {
	case <-done:
		b.cancel()
		if b.queue != nil {
			b.queue.stop()
		}
		return nil
	case <-ctx.Done():
	}
	b.cancel()
	b.mu.Lock()
	var waiting []*localJob
	for j := range b.pending {
		if j.timer.Stop() { // never ran: it is ours to finish
			delete(b.pending, j)
			waiting = append(waiting, j)
		}
	}
	b.mu.Unlock()
	for _, j := range waiting {
		b.tel.backstop(backstopDropped)
		b.fail(j.job, errAbandoned)
		b.wg.Done()
	}
	<-done // running jobs see the cancellation and return
	if b.queue != nil {
		b.queue.stop()
	}
	return ctx.Err()
}
