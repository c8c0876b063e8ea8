// SPDX-License-Identifier: Apache-2.0

// The Lua scripts the Redis-backed types run, each with the keys it takes,
// its arguments and its reply. Every script touches only keys of one hash
// tag, so Redis Cluster runs it on one node.

package logout

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// The session scripts of [RedisStore]. A user's keys share the user's hash
// tag: the session records PREFIX{tag}:s:HANDLE and the index PREFIX{tag}:u,
// a hash from each handle to its entry "expiryMs sidtag issuedMs [device]"
// (see indexEntry). The sid pointer PREFIX{sidtag}:sid holds the user's tag;
// it lives in the sid's own slot, so on Cluster the scripts leave it to
// pointerScript, sent in the same pipeline.

var (
	// saveScript stores a new session and indexes it.
	//
	// KEYS: 1 the session record, 2 the user index, 3 (optional, single
	// node only) the sid pointer.
	// ARGV: 1 the sealed session, 2 the record's TTL in ms, 3 the handle,
	// 4 the index entry, 5 now in Unix ms, 6 the prefix of the user's
	// session records, 7 the session's whole remaining life in ms, 8 (with
	// KEYS[3]) the user's tag.
	// Reply: 1.
	saveScript = redis.NewScript(`
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
` + pruneIndex + `
if KEYS[3] then
` + fmt.Sprintf(setPointer, "KEYS[3]", "ARGV[8]", "ARGV[7]") + `
end
return 1
`)

	// updateScript rewrites a session only while it exists, so that a
	// refresh racing a logout never brings the session back, and keeps its
	// index entry, the index and the sid pointer alive as long as it.
	//
	// KEYS: 1 the session record, 2 the user index, 3 (optional, single
	// node only) the sid pointer.
	// ARGV: 1 the sealed session, 2 the record's TTL in ms, 3 the handle,
	// 4 the index entry, 5 the session's whole remaining life in ms, 6 the
	// SHA-1 of the record the caller loaded, or "" to write whatever is
	// stored, 7 (with KEYS[3]) the user's tag.
	// Reply: 1 written; 0 the session is gone; -1 the entry's sid or start
	// time differs from the one recorded at sign-in; -2 the record is no
	// longer the one ARGV[6] names.
	updateScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if not cur then
  return 0
end
if ARGV[6] ~= '' and redis.sha1hex(cur) ~= ARGV[6] then
  return -2
end
local function ident(e)
  local sid, iat = string.match(e, '^%d+ (%S+) ?(%d*)')
  return sid or '-', iat or ''
end
local entry = redis.call('HGET', KEYS[2], ARGV[3])
if entry then
  local sid, iat = ident(entry)
  local nsid, niat = ident(ARGV[4])
  if sid ~= nsid or (iat ~= '' and iat ~= niat) then
    return -1
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[5]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
if KEYS[3] then
` + fmt.Sprintf(setPointer, "KEYS[3]", "ARGV[7]", "ARGV[5]") + `
end
return 1
`)
)

// pointerScript keeps the sid pointer alive as long as the longest session
// under that sid, on Cluster, where it cannot share a script with the
// session's keys. Sent with EVAL: a pipeline cannot fall back on NOSCRIPT.
//
// KEYS: 1 the sid pointer. ARGV: 1 the user's tag, 2 the session's whole
// remaining life in ms. Reply: 1.
var pointerScript = fmt.Sprintf(setPointer, "KEYS[1]", "ARGV[1]", "ARGV[2]") + "return 1"

// pruneIndex is the part of saveScript that keeps the user index small: it
// looks at up to 32 random entries and removes those whose sessions are gone
// (ended by a logout, or expired), so cleanup costs the same however many
// sessions a user piles up, and dead entries cannot accumulate. The index
// then lives as long as the user's longest session's whole life, however an
// idle timeout shortens the records' TTLs. It reads saveScript's KEYS[2] and
// ARGV 5 to 7.
const pruneIndex = `
local now = tonumber(ARGV[5])
local sample = redis.call('HRANDFIELD', KEYS[2], 32, 'WITHVALUES')
for i = 1, #sample, 2 do
  local exp = tonumber(string.match(sample[i+1], '^(%d+)'))
  if exp <= now or redis.call('EXISTS', ARGV[6] .. sample[i]) == 0 then
    redis.call('HDEL', KEYS[2], sample[i])
  end
end
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[7]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[7])
end
`

// setPointer is a fmt template for the part of a script that sets the sid
// pointer %[1]s to the user's tag %[2]s for %[3]s ms, unless it already
// lives longer: a pointer lives as long as the longest session under its sid.
const setPointer = `
if redis.call('PTTL', %[1]s) < tonumber(%[3]s) then
  redis.call('SET', %[1]s, %[2]s, 'PX', %[3]s)
end
`

// endIndexedScript ends the sessions of one user that match a sid and began
// at or before a time, all but one. It is sent with EVAL: it runs rarely, and
// a NOSCRIPT fallback would be a second round trip that a deadline could cut
// off.
//
// KEYS: 1 the user index.
// ARGV: 1 the prefix of the user's session records, 2 the sid's tag, or ""
// for every sid, 3 the latest start time to end, in Unix ms, 4 a handle to
// spare, or "".
// Reply: the handles of the sessions it deleted (entries whose records were
// already gone are removed from the index but not listed).
const endIndexedScript = `
local all = redis.call('HGETALL', KEYS[1])
local before = tonumber(ARGV[3])
local ended = {}
for i = 1, #all, 2 do
  local sid, iat = string.match(all[i+1], '^%d+ (%S+) ?(%d*)')
  sid = sid or '-'
  iat = tonumber(iat) or 0
  if (ARGV[2] == '' or sid == ARGV[2]) and iat <= before and all[i] ~= ARGV[4] then
    if redis.call('DEL', ARGV[1] .. all[i]) == 1 then
      table.insert(ended, all[i])
    end
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return ended
`

// listScript reads one page of a user's live sessions, in handle order, not
// HSCAN's, so that every page is bounded exactly whatever the hash's
// encoding. Each record's idle time is read before anything else touches it.
//
// KEYS: 1 the user index.
// ARGV: 1 the prefix of the user's session records, 2 the cursor: the last
// handle of the previous page, or "" for the first, 3 the page size.
// Reply: the next cursor ("" after the last page), then for each session its
// handle, its index entry and its record's idle time in seconds (-1 where
// the server cannot tell).
const listScript = `
local fields = redis.call('HKEYS', KEYS[1])
table.sort(fields)
local limit = tonumber(ARGV[3])
local out = {''}
local n = 0
for _, f in ipairs(fields) do
  if f > ARGV[2] then
    local key = ARGV[1] .. f
    local ok, idle = pcall(redis.call, 'OBJECT', 'IDLETIME', key)
    if redis.call('EXISTS', key) == 1 then
      if n == limit then
        out[1] = out[#out - 2]
        break
      end
      if not ok or type(idle) ~= 'number' then idle = -1 end
      table.insert(out, f)
      table.insert(out, redis.call('HGET', KEYS[1], f))
      table.insert(out, idle)
      n = n + 1
    end
  end
end
return out
`

// The scripts of [RevocationList] and of the refresh lease.

// keepLaterScript records a revocation time, keeping the later of two, so
// that a revocation delivered late never shortens one already recorded.
//
// KEYS: 1 the revocation record.
// ARGV: 1 the value, "ms" or "ms rest" (a time in Unix ms, then anything),
// 2 its TTL in ms.
// Reply: 1.
const keepLaterScript = `
local cur = tonumber(string.match(redis.call('GET', KEYS[1]) or '0', '^(%d+)')) or 0
if cur < tonumber(string.match(ARGV[1], '^(%d+)')) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
`

// endHandleScript ends a cookie session by recording its handle, unless a
// revocation ended it already; the same reading of the records as
// RevocationList.revoked. One node only: the records live in different
// slots.
//
// KEYS: 1 the handle's record, 2 the user's other-devices record ("ms
// handle"), 3 the user's record ("ms"), 4 (optional) the sid's record
// ("ms").
// ARGV: 1 the handle record's TTL in ms, 2 the session's start in Unix ms,
// 3 the session's handle as the other-devices record names it.
// Reply: 1 ended by this call; 0 ended before (its handle recorded, or a
// revocation covers it).
var (
	endHandleScript = redis.NewScript(endHandleSrc)
	endHandleSHA    = shaOf(endHandleScript)
)

const endHandleSrc = `
local issued = tonumber(ARGV[2])
local others = redis.call('GET', KEYS[2])
if others then
  local at, keep = string.match(others, '^(%d+) (%S*)')
  if at and issued <= tonumber(at) and keep ~= ARGV[3] then
    return 0
  end
end
for i = 3, #KEYS do
  local at = tonumber(redis.call('GET', KEYS[i]) or '')
  if at and issued <= at then
    return 0
  end
end
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  return 1
end
return 0
`

// refreshedScript records a cookie session's refresh, unless another refresh
// recorded its own first, with the newest cookie value for the holders of
// older cookies, whose refresh token the refresh spent.
//
// KEYS: 1 the hash of the session's current refresh token, 2 the newest
// cookie value.
// ARGV: 1 the hash the caller expects (or that of the refresh token sealed
// at sign-in, for a session never refreshed), 2 the new hash, 3 the TTL of
// both in ms (the session's remaining life), 4 the sealed new cookie value.
// Reply: 1 recorded; 0 another refresh came first.
const refreshedScript = `
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[3])
return 1
`

// releaseScript releases a refresh lease, only for the holder that took it.
//
// KEYS: 1 the lease. ARGV: 1 the holder's name.
// Reply: 1 released; 0 the lease had expired or another holder has it.
const releaseScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`

// evalCmd is the EVAL of script on keys with args, built to be sent by
// redisCalls.process or in a durability write: what go-redis's Eval sends.
func evalCmd(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return scriptCmd(ctx, "eval", script, keys, args...)
}

// evalShaCmd is evalCmd by the script's SHA-1, boxed once by the caller
// (see shaOf): the caller sends evalCmd instead when Redis answers
// NOSCRIPT.
func evalShaCmd(ctx context.Context, sha any, keys []string, args ...any) *redis.Cmd {
	return scriptCmd(ctx, "evalsha", sha, keys, args...)
}

// shaOf is a script's SHA-1 as EVALSHA takes it, boxed once.
func shaOf(s *redis.Script) any { return s.Hash() }

func scriptCmd(ctx context.Context, verb, script any, keys []string, args ...any) *redis.Cmd {
	cmdArgs := make([]any, 0, 3+len(keys)+len(args))
	cmdArgs = append(cmdArgs, verb, script, len(keys))
	for _, k := range keys {
		cmdArgs = append(cmdArgs, k)
	}
	cmd := redis.NewCmd(ctx, append(cmdArgs, args...)...)
	if len(keys) > 0 {
		cmd.SetFirstKeyPos(3)
	}
	return cmd
}

// The scripts of the backstop's queue in Redis (backstop_redis.go): one
// sorted set of jobs, each scored with the time it falls due in Unix
// milliseconds of the server's own clock (TIME), which every instance
// shares.

// redisNow is the part of a script that reads the server's clock into now.
const redisNow = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// scheduleScript records jobs.
//
// KEYS: 1 the queue.
// ARGV: pairs of a delay in ms and a job.
// Reply: the server's time in Unix ms.
var (
	scheduleScript = redis.NewScript(scheduleSrc)
	scheduleSHA    = shaOf(scheduleScript)
)

const scheduleSrc = redisNow + `
for i = 1, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[i]), ARGV[i + 1])
end
return now
`

// claimScript claims due jobs: it moves each to a score past the longest an
// attempt may take, so that no other instance claims it meanwhile, and so
// that it falls due again should its claimer die.
//
// KEYS: 1 the queue.
// ARGV: 1 how long a claim lasts in ms, 2 the most jobs to claim.
// Reply: the jobs claimed.
var claimScript = redis.NewScript(redisNow + `
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[2])
for _, m in ipairs(due) do
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), m)
end
return due
`)

// finishScript settles a claimed job: removes it and, to try it again,
// puts its next record in its place.
//
// KEYS: 1 the queue.
// ARGV: 1 the job as claimed, 2 the delay in ms before the next attempt,
// or -1 for none, 3 the job's next record.
// Reply: 1 settled; 0 the job was not there (its claim had lapsed, and
// another instance took it over).
var finishScript = redis.NewScript(`
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then
  return 0
end
if tonumber(ARGV[2]) >= 0 then
` + redisNow + `
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
end
return 1
`)

// statsScript reads the queue's depth and how long its oldest job has been
// due.
//
// KEYS: 1 the queue. ARGV: none.
// Reply: the number of jobs, waiting or claimed; the ms since the earliest
// one fell due (negative when none is due yet, 0 when the queue is empty).
var statsScript = redis.NewScript(redisNow + `
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local overdue = 0
if first[2] then
  overdue = now - tonumber(first[2])
end
return {redis.call('ZCARD', KEYS[1]), overdue}
`)
