// SPDX-License-Identifier: Apache-2.0

// The backstop's queue in Redis: jobs recorded before a logout answers, and
// run by whichever instance sharing that Redis claims them first.

package logout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// The queue is one sorted set: each member a job (backstopJob as JSON:
// identifiers, never a token), its score the time it is due, in Unix
// milliseconds of the Redis server's clock, so that instances whose clocks
// differ agree on when a grace period is over.
//
// Every instance polls it, backstopPoll apart, and the instance that
// recorded a job (or put it back after a failed attempt) also claims at the
// moment it falls due: a job is usually claimed by its own instance, in one
// command, and otherwise by any other within a poll interval. A script
// claims the due jobs atomically by moving their score to a "claimed until"
// time past the longest an attempt may take, so that no two instances run a
// job at once, and a job whose claimer died is due again once its claim
// lapses. A finished job is removed; a failed one is put back, its attempts
// counted, due after a backoff; after backstopAttempts it is removed and
// reported by the instance that made the last attempt. A job is done at
// least once; a second run is harmless, as a job ends only what is still
// active at the provider.

// backstopPoll is the longest an instance waits between two claims. Tests
// change it.
var backstopPoll = time.Second

// backstopMinGap is the shortest wait between two claims, however many jobs
// fall due.
const backstopMinGap = 10 * time.Millisecond

// backstopHost is a store whose Redis can keep the backstop's jobs.
type backstopHost interface {
	backstopQueue(p *Provider, timeout time.Duration) *durableQueue
}

func (r *RedisStore) backstopQueue(p *Provider, timeout time.Duration) *durableQueue {
	return newDurableQueue(r.rdb, r.calls, r.KeyPrefix, p, r.durability(), timeout)
}

func (c *RevocableCookieStore) backstopQueue(p *Provider, timeout time.Duration) *durableQueue {
	return newDurableQueue(c.list.rdb, c.list.calls, c.list.KeyPrefix, p, c.list.durability(), timeout)
}

// durableQueue is the backstop's queue in Redis, and this instance's poller
// of it.
type durableQueue struct {
	rdb     redis.UniversalClient
	calls   redisCalls
	key     string
	dur     durability
	timeout time.Duration // bounds each Redis call
	b       *backstop

	wake     chan struct{}
	nextAt   atomic.Int64 // Unix ns of the poller's next claim
	halted   chan struct{}
	haltOnce sync.Once
	orphaned atomic.Bool   // the Handler is gone: stop once its own jobs are done
	full     atomic.Bool   // the last claim took as many jobs as there was room for
	polling  chan struct{} // closed when the poller returns
	running  sync.WaitGroup
	active   atomic.Int32 // jobs this instance is running

	mu sync.Mutex
	// own is when each job this instance recorded or put back falls due, by
	// this host's clock, until this instance claims it or, past due, finds
	// that another did. Close waits for them.
	own map[string]time.Time
	// claimed is when this instance claimed each job it runs: a claimed
	// job's score in Redis says when its claim lapses, not how long it has
	// been due, so the queue's lag counts these from here.
	claimed map[string]time.Time
	failing bool // the last claim failed; logged once a streak
}

// ownSlack is how long past its due time an own job is waited for before
// it counts as another instance's, for clocks that differ.
const ownSlack = time.Second

// newDurableQueue keeps the jobs of one provider client under prefix: apps
// that share a Redis and a prefix but not their client never run each
// other's jobs with the wrong credentials.
func newDurableQueue(rdb redis.UniversalClient, calls redisCalls, prefix string, p *Provider, dur durability, timeout time.Duration) *durableQueue {
	return &durableQueue{
		rdb: rdb, calls: calls, key: prefix + "{backstop:" + hashKey(p.issuer+"\x00"+p.clientID) + "}",
		dur: dur, timeout: timeout,
		wake: make(chan struct{}, 1), halted: make(chan struct{}), polling: make(chan struct{}),
		own: map[string]time.Time{}, claimed: map[string]time.Time{},
	}
}

func (q *durableQueue) start(b *backstop) {
	q.b = b
	q.nextAt.Store(time.Now().Add(backstopPoll).UnixNano())
	go q.poll()
}

// add records the jobs, in one command (with WAIT when the store waits for
// replicas: still one round trip), and wakes this instance's poller if one
// falls due before its next claim.
func (q *durableQueue) add(ctx context.Context, jobs []backstopJob) error {
	args := make([]any, 0, 2*len(jobs))
	for _, j := range jobs {
		m, err := json.Marshal(j)
		if err != nil {
			return fmt.Errorf("logout: backstop job: %w", err)
		}
		args = append(args, j.delay.Milliseconds(), string(m))
	}
	// By the script's SHA-1, and by its text once when Redis does not hold
	// it yet; by its text always in a WAIT pipeline, where a second try
	// would wait for the replicas a second time.
	keys := []string{q.key}
	err := redisNoScript
	if q.dur.replicas <= 0 {
		err = q.dur.write(ctx, q.calls, q.rdb, q.key, evalShaCmd(ctx, scheduleSHA, keys, args...))
	}
	if errors.Is(err, redisNoScript) || redis.HasErrorPrefix(err, "NOSCRIPT") {
		err = q.dur.write(ctx, q.calls, q.rdb, q.key, evalCmd(ctx, scheduleSrc, keys, args...))
	}
	if err != nil && !errors.Is(err, ErrNotConfirmed) {
		return fmt.Errorf("logout: redis backstop: %w", err)
	}
	now := time.Now()
	for _, j := range jobs {
		q.expect(j.ID, now.Add(j.delay))
	}
	if err != nil {
		return fmt.Errorf("logout: redis backstop: %w", err)
	}
	return nil
}

// expect notes a job of this instance's, due at due, and wakes the poller
// if that is before its next claim.
func (q *durableQueue) expect(id string, due time.Time) {
	q.mu.Lock()
	q.own[id] = due
	q.mu.Unlock()
	if due.UnixNano() < q.nextAt.Load() {
		q.poke()
	}
}

func (q *durableQueue) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// poll claims due jobs until halted: backstopPoll apart, and sooner when a
// job of this instance's falls due, or when room frees up while jobs wait.
func (q *durableQueue) poll() {
	defer close(q.polling)
	wait := backstopPoll
	for {
		q.nextAt.Store(time.Now().Add(wait).UnixNano())
		t := time.NewTimer(wait)
		select {
		case <-q.halted:
			t.Stop()
			return
		case <-q.wake:
			t.Stop()
		case <-t.C:
		}
		if q.orphaned.Load() && q.idle() {
			return
		}
		wait = q.claimAndRun()
	}
}

// idle reports whether this instance has no job of its own waiting and none
// running.
func (q *durableQueue) idle() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.own) == 0 && q.active.Load() == 0
}

// orphan tells the poller that its Handler was collected without Close: it
// finishes the jobs that Handler recorded, then stops.
func (q *durableQueue) orphan() {
	q.orphaned.Store(true)
	q.poke()
}

// claimAndRun claims as many due jobs as this instance has room to run,
// starts them, and says how long to wait before the next claim: until the
// next of its own jobs falls due, or a poll interval.
func (q *durableQueue) claimAndRun() time.Duration {
	if q.b.ctx.Err() != nil {
		return backstopPoll
	}
	free := backstopConcurrency - int(q.active.Load())
	if free <= 0 {
		q.full.Store(true)
		return backstopPoll // a job that finishes wakes the poller
	}
	ctx, cancel := context.WithTimeout(q.b.ctx, q.timeout)
	defer cancel()
	started := time.Now()
	claimed, err := q.claim(ctx, free)
	q.mu.Lock()
	wasFailing := q.failing
	q.failing = err != nil
	q.mu.Unlock()
	if err != nil {
		if !wasFailing && q.b.ctx.Err() == nil {
			q.b.log.LogAttrs(ctx, slog.LevelWarn, "logout: backstop: cannot read the job queue in Redis; retrying", slog.Any("error", err))
		}
		return backstopPoll
	}
	if wasFailing {
		q.b.log.LogAttrs(ctx, slog.LevelInfo, "logout: backstop: the job queue in Redis answers again")
	}
	full := free <= len(claimed)
	q.full.Store(full)
	q.mu.Lock()
	for _, member := range claimed {
		var j backstopJob
		if err := json.Unmarshal([]byte(member), &j); err != nil {
			go q.finish(member, -1, "") // not a job this package wrote
			continue
		}
		delete(q.own, j.ID)
		q.claimed[j.ID] = started
		q.active.Add(1)
		q.running.Add(1)
		go q.run(j, member)
	}
	wait := backstopPoll
	for id, due := range q.own {
		switch {
		case due.After(started):
			wait = min(wait, due.Sub(started))
		case due.Add(ownSlack).After(started):
			wait = min(wait, ownSlack/20) // due by this host's clock, perhaps not yet by Redis's
		case !full:
			delete(q.own, id) // due, and not here to claim: another instance has it
		}
	}
	q.mu.Unlock()
	if full {
		return backstopPoll // more may be due: a job that finishes wakes the poller
	}
	return max(wait, backstopMinGap)
}

// claim runs claimScript.
func (q *durableQueue) claim(ctx context.Context, limit int) ([]string, error) {
	claimFor := q.b.attemptBound() + q.timeout + time.Second
	res, err := within(ctx, q.calls, func() ([]any, error) {
		return claimScript.Run(ctx, q.rdb, []string{q.key}, claimFor.Milliseconds(), limit).Slice()
	})
	if err != nil {
		return nil, err
	}
	var claimed []string
	for _, v := range res {
		if m, ok := v.(string); ok {
			claimed = append(claimed, m)
		}
	}
	return claimed, nil
}

// run makes one attempt at a claimed job and settles it in the queue.
func (q *durableQueue) run(j backstopJob, member string) {
	defer q.running.Done()
	defer func() {
		q.mu.Lock()
		delete(q.claimed, j.ID)
		q.mu.Unlock()
		q.active.Add(-1)
		if q.full.Load() {
			q.poke() // room for a job that may be waiting
		}
	}()
	ended, err := q.b.attempt(j)
	j.Tries++
	switch {
	case err == nil:
		q.finish(member, -1, "")
		q.b.tel.backstop(jobFinished(ended))
	case q.b.ctx.Err() != nil:
		// The handler is closing and gave up waiting: hand the job back,
		// due at once, for another instance.
		q.finish(member, 0, member)
	case j.Tries >= backstopAttempts:
		if q.finish(member, -1, "") {
			q.b.tel.backstop(backstopFailed)
			q.b.fail(j, err)
		}
	default:
		next, _ := json.Marshal(j)
		after := retryAfter(j.Tries)
		if q.finish(member, after, string(next)) {
			q.expect(j.ID, time.Now().Add(after))
		}
	}
}

// finish removes member and, with after at or above zero, puts next in its
// place, due after that long. It reports whether member was still there (a
// claim that lapsed may have been taken over).
func (q *durableQueue) finish(member string, after time.Duration, next string) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(q.b.ctx), q.timeout)
	defer cancel()
	ms := int64(-1)
	if after >= 0 {
		ms = after.Milliseconds()
	}
	n, err := within(ctx, q.calls, func() (int64, error) {
		return finishScript.Run(ctx, q.rdb, []string{q.key}, member, ms, next).Int64()
	})
	if err != nil {
		// The claim lapses by itself and the job is tried again: at least
		// once.
		q.b.log.LogAttrs(ctx, slog.LevelWarn, "logout: backstop: could not settle a job in Redis; it will run again", slog.Any("error", err))
		return false
	}
	return n == 1
}

// drain waits until this instance has no job of its own waiting and none
// running, or ctx is done.
func (q *durableQueue) drain(ctx context.Context) {
	for !q.idle() {
		t := time.NewTimer(min(backstopPoll, 50*time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			q.mu.Lock()
			if n := len(q.own); n > 0 {
				q.b.log.LogAttrs(context.Background(), slog.LevelInfo, "logout: backstop: jobs left in Redis for the other instances", slog.Int("jobs", n))
			}
			q.mu.Unlock()
			return
		case <-t.C:
		}
	}
}

// halt stops the poller without waiting; stop waits for it and for the
// jobs it started.
func (q *durableQueue) halt() { q.haltOnce.Do(func() { close(q.halted) }) }

func (q *durableQueue) stop() {
	q.halt()
	<-q.polling
	q.running.Wait()
}

// stats reads the queue's depth, every instance's jobs, and how long its
// oldest due job has been due, in one command; the jobs this instance runs
// count from when it claimed them.
func (q *durableQueue) stats(ctx context.Context) (int, time.Duration, error) {
	res, err := within(ctx, q.calls, func() ([]int64, error) { return statsScript.Run(ctx, q.rdb, []string{q.key}).Int64Slice() })
	if err != nil {
		return 0, 0, fmt.Errorf("logout: redis backstop: %w", err)
	}
	if len(res) != 2 {
		return 0, 0, errors.New("logout: redis backstop: malformed reply")
	}
	oldest := time.Duration(max(res[1], 0)) * time.Millisecond
	now := time.Now()
	q.mu.Lock()
	for _, at := range q.claimed {
		oldest = max(oldest, now.Sub(at))
	}
	q.mu.Unlock()
	return int(res[0]), oldest, nil
}
