// SPDX-License-Identifier: Apache-2.0

// SessionEnd and EndReason: telling the app of every session that ends,
// whichever way it ends.

package logout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"
)

// EndReason says why an app session ended.
type EndReason string

// The ways an app session ends that the package observes.
const (
	EndLogout         EndReason = "logout"          // the user signed out in this browser
	EndEverywhere     EndReason = "everywhere"      // the user signed out everywhere, from another session
	EndOtherDevices   EndReason = "other-devices"   // the user signed out their other devices, from another session
	EndByUser         EndReason = "ended-by-user"   // the user ended it from the list of active sessions
	EndBackChannel    EndReason = "back-channel"    // the provider's back-channel logout
	EndWebhook        EndReason = "webhook"         // the provider's user.logout webhook
	EndRefreshRefused EndReason = "refresh-refused" // the provider refused the refresh token: its session is gone
	EndIdle           EndReason = "idle"            // unused for the idle timeout (seen when a request brings it)
	EndExpired        EndReason = "expired"         // past its absolute timeout (seen when a request brings it)
	EndReplaced       EndReason = "replaced"        // a new sign-in in the same browser took its place
)

// SessionEnd describes one app session that ended, for the OnSessionEnd hooks
// of [Config], [BackChannelConfig] and [WebhookConfig]: give them the same
// function, and it learns of every ending the package observes, whichever
// way it came, to drop the app's own caches of the user, say. The hook runs
// on the goroutine that ended the session, after the ending, with a context
// that is not cancelled when the request is.
//
// It never holds a token. Where a store ends sessions it does not hold (a
// [RevocableCookieStore] revoking a user or a provider session), one event
// stands for all of them, with Handle empty. A session that simply lapses is
// seen only when a request brings it: a cookie store sees it expire or idle
// out, and, recording nothing of it, tells of it on each request that
// brings the cookie until a response takes it away (the middleware's does);
// a [RedisStore] sees an absolute expiry once, but Redis drops an idle
// session by itself, unseen.
type SessionEnd struct {
	Reason    EndReason
	Issuer    string
	Subject   string
	SessionID string // the provider session, when known
	// Handle names the app session as [Handler.ListSessions] shows it; empty
	// when the event stands for every session of a revocation.
	Handle string
}

// endHook is an OnSessionEnd hook, if any, and the metrics every ending
// counts in.
type endHook struct {
	fn  func(context.Context, SessionEnd)
	tel *telemetry
}

// reportEnd counts the ending and calls the hook, if any, with a context
// the caller's cancellation does not reach.
func reportEnd(ctx context.Context, hook endHook, e SessionEnd) {
	hook.tel.sessionEnded(ctx, e.Reason)
	if hook.fn != nil {
		hook.fn(context.WithoutCancel(ctx), e)
	}
}

// revokeAndReport ends the sessions of the provider session sid or, with no
// sid, the user's sessions begun at or before before, and reports each ending
// to hook.
// Only this package's RedisStore itself reports each session: a store that
// wraps one gets its own EndSID and EndSubject called, and one event.
func revokeAndReport(ctx context.Context, rv Revoker, hook endHook, reason EndReason, issuer, subject, sid string, before time.Time) (int, error) {
	if hr, ok := rv.(*RedisStore); ok {
		var handles []string
		var err error
		if sid != "" {
			handles, err = hr.endSIDHandles(ctx, issuer, sid)
		} else {
			handles, err = hr.endSubjectHandles(ctx, issuer, subject, before)
		}
		if err != nil {
			return 0, err
		}
		for _, h := range handles {
			reportEnd(ctx, hook, SessionEnd{Reason: reason, Issuer: issuer, Subject: subject, SessionID: sid, Handle: h})
		}
		return len(handles), nil
	}
	var n int
	var err error
	if sid != "" {
		n, err = rv.EndSID(ctx, issuer, sid)
	} else {
		n, err = rv.EndSubject(ctx, issuer, subject, before)
	}
	if err == nil {
		reportEnd(ctx, hook, SessionEnd{Reason: reason, Issuer: issuer, Subject: subject, SessionID: sid})
	}
	return n, err
}

// afterMilli returns once the clock has left the millisecond of t, at most
// a millisecond from now. The records that end a user's sessions begun
// before a click hold its time to the millisecond, as sessions hold their
// start: an answer sent in the same millisecond would let a sign-in made
// right after it start in that millisecond too, and be taken for one the
// click ended.
func afterMilli(t time.Time) {
	// Capped: the wall clock may step back meanwhile.
	if d := min(time.Until(t.Truncate(time.Millisecond).Add(time.Millisecond)), time.Millisecond); d > 0 {
		time.Sleep(d)
	}
}

// lapsedError is the ErrNoSession of a session a store opened and found
// expired or idle: the Handler reports it as an ending.
type lapsedError struct {
	reason EndReason
	s      Session
	handle string
}

func (e *lapsedError) Error() string        { return ErrNoSession.Error() }
func (e *lapsedError) Is(target error) bool { return target == ErrNoSession }

// asLapsed returns the lapsedError in err's chain, if any. A nil err, every
// request's, costs nothing: errors.As makes its target escape.
func asLapsed(err error) *lapsedError {
	if err == nil {
		return nil
	}
	var lapsed *lapsedError
	if errors.As(err, &lapsed) {
		return lapsed
	}
	return nil
}

// handleNamer is a store that can name a token's session as ListSessions
// does.
type handleNamer interface {
	handleOf(token string) string
}

// cookieHandle names a sealed session by a hash of its random handle, which
// opens nothing.
func cookieHandle(handle []byte) string {
	var buf [len("handle\x00") + handleLen]byte // on the stack
	sum := sha256.Sum256(append(append(buf[:0], "handle\x00"...), handle...))
	var h [32]byte
	hex.Encode(h[:], sum[:16])
	return string(h[:])
}

// reportLapsed reports a session a store found expired or idle.
func (h *Handler) reportLapsed(ctx context.Context, e *lapsedError) {
	reportEnd(ctx, h.onEnd, SessionEnd{Reason: e.reason, Issuer: e.s.Issuer, Subject: e.s.Subject, SessionID: e.s.SessionID, Handle: e.handle})
}

// reportIfLapsed reports the ending err tells of, if it is a lapse:
// whichever path of the Handler gets a lapsed error reports it. A
// RedisStore gives it to one request only (the one whose DEL removed the
// record); the cookie stores, which record nothing of a lapse, to each
// request that brings the cookie before a response takes it away.
func (h *Handler) reportIfLapsed(ctx context.Context, err error) {
	if lapsed := asLapsed(err); lapsed != nil {
		h.reportLapsed(ctx, lapsed)
	}
}

// handleOf names the token's session for SessionEnd, when there is a hook to
// tell and the store can name it.
func (h *Handler) handleOf(token string) string {
	if n, ok := h.store.(handleNamer); ok && h.onEnd.fn != nil {
		return n.handleOf(token)
	}
	return ""
}
