// SPDX-License-Identifier: Apache-2.0

package logout_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/endsession/logout"
	"github.com/endsession/logout/scalekittest"
)

// A back-channel delivery cut short by the store timeout, even after a
// command landed, is answered 503, and the provider's retry then ends the
// session instead of being refused as a replay. The server is fresh, so its
// script cache is cold on the first attempt.
func TestBackChannelTimeoutIsRetried(t *testing.T) {
	for _, cookie := range []bool{false, true} {
		for _, timeout := range []time.Duration{100 * time.Millisecond, 500 * time.Millisecond} {
			t.Run(fmt.Sprintf("%s/timeout=%v", storeName(cookie), timeout), func(t *testing.T) {
				srv := startRedisServer(t)
				proxy := startSlowProxy(t, srv.Addr, 150*time.Millisecond) // 300 ms a round trip
				rdb := redis.NewClient(&redis.Options{Addr: proxy.l.Addr().String(), MaxRetries: -1})
				t.Cleanup(func() { rdb.Close() })
				var store logout.SessionStore = logout.NewRedisStore(rdb)
				if cookie {
					store = newRevocableStore(t, rdb)
				}
				fake := scalekittest.NewServer()
				t.Cleanup(fake.Close)
				s := testSession()
				s.Issuer, s.Subject, s.SessionID = fake.Issuer(), "usr_alice", "ses_1"
				s.IssuedAt = time.Now().Add(-time.Minute)
				token, err := store.Save(context.Background(), s)
				if err != nil {
					t.Fatal(err)
				}
				bc, err := logout.NewBackChannelHandler(context.Background(), logout.BackChannelConfig{
					Issuer: fake.Issuer(), ClientID: bcClient, Store: store, StoreTimeout: timeout, Logger: newLogger(&logSink{}),
				})
				if err != nil {
					t.Fatal(err)
				}
				e := &bcEnv{fake: fake, bc: bc}
				tok := e.sign(t, e.claims())

				proxy.slow.Store(true)
				if resp := e.post(t, form(tok)); resp.StatusCode != http.StatusServiceUnavailable {
					t.Fatalf("slow store: status %d, want 503", resp.StatusCode)
				}
				proxy.slow.Store(false)
				if resp := e.post(t, form(tok)); resp.StatusCode != http.StatusOK {
					t.Fatalf("retry: status %d, want 200 (the first delivery ended nothing for sure)", resp.StatusCode)
				}
				if _, err := store.Load(context.Background(), token); !errors.Is(err, logout.ErrNoSession) {
					t.Errorf("session after the retried logout: %v, want ErrNoSession", err)
				}
				if resp := e.post(t, form(tok)); resp.StatusCode != http.StatusBadRequest {
					t.Errorf("replay after success: status %d, want 400", resp.StatusCode)
				}
			})
		}
	}
}

// On Redis Cluster the revocation check reads one key per command; a command
// that failed on a dead node must fail the Load, never read as "not revoked".
func TestRevocationCheckFailsClosedOnCluster(t *testing.T) {
	t.Parallel() // its own Redis servers: it runs beside the other slow ones
	// Without full coverage the live nodes keep answering while one is
	// down, as production clusters are often set up; and a client that does
	// not retry sees each failed command at once.
	nodes := redisCluster(t, "--cluster-require-full-coverage", "no")
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: nodes.Options().Addrs, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	store := newRevocableStore(t, rdb)
	ctx := context.Background()
	var tokens []string
	for i := range 30 {
		s := testSession()
		s.Subject = fmt.Sprintf("usr_%d", i)
		s.IssuedAt = time.Now().Add(-time.Minute)
		token, err := store.Save(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.EndSubject(ctx, s.Issuer, s.Subject, time.Now()); err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, token)
	}
	shards, err := rdb.ClusterShards(ctx).Result()
	if err != nil || len(shards) == 0 {
		t.Fatalf("CLUSTER SHARDS: %v", err)
	}
	node := shards[0].Nodes[0]
	victim := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("%s:%d", node.IP, node.Port)})
	victim.ShutdownNoSave(ctx) // the connection drops as the node goes
	victim.Close()

	for i, token := range tokens {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := store.Load(ctx, token)
		cancel()
		t.Logf("%d %v %v", i, time.Now(), err)
		if err == nil {
			t.Errorf("revoked session %d loads with a node down", i)
		}
	}
}

// The sid pointer lives as long as the longest session under the sid, also
// when Update extends a session, so a sid-only logout still finds it.
func TestRedisUpdateKeepsSIDPointer(t *testing.T) {
	kinds := map[string]func(t *testing.T) redis.UniversalClient{
		"miniredis": func(t *testing.T) redis.UniversalClient { _, rdb := newMini(t); return rdb },
		"real":      func(t *testing.T) redis.UniversalClient { return realRedis(t) },
		"cluster":   func(t *testing.T) redis.UniversalClient { return redisCluster(t) },
	}
	for name, newClient := range kinds {
		t.Run(name, func(t *testing.T) {
			rdb := newClient(t)
			store := logout.NewRedisStore(rdb)
			store.KeyPrefix = keyPrefix(t, rdb)
			ctx := context.Background()
			s := testSession()
			s.IssuedAt = time.Now()
			s.Expiry = time.Now().Add(10 * time.Minute)
			token, err := store.Save(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			s.Expiry = time.Now().Add(time.Hour)
			if _, err := store.Update(ctx, token, s); err != nil {
				t.Fatal(err)
			}
			ttl, err := rdb.PTTL(ctx, logout.SIDPointerKey(store, s.Issuer, s.SessionID)).Result()
			if err != nil || ttl < 50*time.Minute {
				t.Errorf("sid pointer TTL after Update = %v, %v; want about an hour", ttl, err)
			}
		})
	}
	t.Run("sid-only logout after the first expiry", func(t *testing.T) {
		m, rdb := newMini(t)
		store := logout.NewRedisStore(rdb)
		clock := newFakeClock()
		logout.SetRedisStoreClock(store, clock.Now)
		ctx := context.Background()
		s := testSession()
		s.IssuedAt = clock.Now()
		s.Expiry = clock.Now().Add(10 * time.Minute)
		token, _ := store.Save(ctx, s)
		s.Expiry = clock.Now().Add(time.Hour)
		if _, err := store.Update(ctx, token, s); err != nil {
			t.Fatal(err)
		}
		clock.Advance(15 * time.Minute)
		m.FastForward(15 * time.Minute)
		if n, err := store.EndSID(ctx, s.Issuer, s.SessionID); err != nil || n != 1 {
			t.Errorf("EndSID 15 minutes in = %d, %v; want 1", n, err)
		}
		if _, err := store.Load(ctx, token); !errors.Is(err, logout.ErrNoSession) {
			t.Errorf("session after EndSID: %v, want ErrNoSession", err)
		}
	})
}

// Entries of a revocation list outlive every session they can end: a cookie
// store refuses a session longer than the list's Lifetime, New refuses a
// SessionLifetime longer than it, and a session sealed under a longer
// Lifetime is refused once the Lifetime is lowered.
func TestRevocationOutlivesSessions(t *testing.T) {
	m, rdb := newMini(t)
	list := logout.NewRevocationList(rdb)
	list.Lifetime = 72 * time.Hour
	key := newKey(t)
	store, err := logout.NewRevocableCookieStore(list, key)
	if err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	logout.SetCookieStoreClock(store, clock.Now)
	ctx := context.Background()

	s := testSession()
	s.IssuedAt = clock.Now()
	s.Expiry = clock.Now().Add(48 * time.Hour)
	token, err := store.Save(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.EndSubject(ctx, s.Issuer, s.Subject, clock.Now()); err != nil {
		t.Fatal(err)
	}
	clock.Advance(47 * time.Hour)
	m.FastForward(47 * time.Hour)
	if _, err := store.Load(ctx, token); !errors.Is(err, logout.ErrNoSession) {
		t.Errorf("revoked session 47 h later: %v, want ErrNoSession", err)
	}

	list.Lifetime = 24 * time.Hour
	if _, err := store.Save(ctx, s); err == nil || !strings.Contains(err.Error(), "Lifetime") {
		t.Errorf("Save of a 48 h session with a 24 h Lifetime: %v, want a Lifetime error", err)
	}
	s.IssuedAt, s.Expiry = clock.Now(), clock.Now().Add(time.Hour)
	fresh, err := store.Save(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Load(ctx, fresh); err != nil {
		t.Errorf("a session begun after the revocation: %v, want it alive", err)
	}
	if _, err := logout.New(t.Context(), logout.Config{Store: store, EndSessionEndpoint: testEndSession, PostLogoutRedirectURI: testPostLogout,
		SessionLifetime: 36 * time.Hour}); err == nil || !strings.Contains(err.Error(), "Lifetime") {
		t.Errorf("New with SessionLifetime 36 h over a 24 h list: %v, want a Lifetime error", err)
	}

	long := testSession()
	list.Lifetime = 72 * time.Hour
	long.IssuedAt, long.Expiry = clock.Now(), clock.Now().Add(48*time.Hour)
	longToken, err := store.Save(ctx, long)
	if err != nil {
		t.Fatal(err)
	}
	list.Lifetime = 24 * time.Hour
	if _, err := store.Load(ctx, longToken); !errors.Is(err, logout.ErrNoSession) {
		t.Errorf("a 48 h session after the Lifetime fell to 24 h: %v, want ErrNoSession", err)
	}
}

// Only a store that can end a user's other sessions serves "sign out
// everywhere" or back-channel logout; anything else is refused at set-up.
func TestRevokerRequiredAtSetup(t *testing.T) {
	h, _ := newHandler(t, newCookieStore(t), nil)
	func() {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "RevocableCookieStore") {
				t.Errorf("Everywhere on a bare CookieStore: recovered %v, want a panic naming the fix", r)
			}
		}()
		h.Everywhere()
	}()
	_, rdb := newMini(t)
	for name, store := range map[string]logout.SessionStore{"redis": logout.NewRedisStore(rdb), "revocable cookie": newRevocableStore(t, rdb)} {
		h, _ := newHandler(t, store, nil)
		if h.Everywhere() == nil {
			t.Errorf("%s: Everywhere returned nil", name)
		}
	}
	fake := scalekittest.NewServer()
	defer fake.Close()
	_, err := logout.NewBackChannelHandler(context.Background(), logout.BackChannelConfig{Issuer: fake.Issuer(), ClientID: bcClient, Store: newCookieStore(t)})
	if err == nil || !strings.Contains(err.Error(), "RevocableCookieStore") {
		t.Errorf("back-channel on a bare CookieStore: %v, want an error naming the fix", err)
	}
}

// The store a Handler and a BackChannelHandler share is one store: a
// back-channel logout ends what the Handler started, and a logout through the
// Handler ends the cookie on another instance.
func TestRevocableStoreSharedByHandlers(t *testing.T) {
	_, rdb := newMini(t)
	list := logout.NewRevocationList(rdb)
	key := newKey(t)
	newInstanceStore := func() logout.SessionStore {
		s, err := logout.NewRevocableCookieStore(list, key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	fake := scalekittest.NewServer()
	defer fake.Close()
	store := newInstanceStore()
	h, _ := newHandler(t, store, nil)
	other, _ := newHandler(t, newInstanceStore(), nil)
	bc, err := logout.NewBackChannelHandler(context.Background(), logout.BackChannelConfig{Issuer: fake.Issuer(), ClientID: bcClient, Store: store, Logger: newLogger(&logSink{})})
	if err != nil {
		t.Fatal(err)
	}
	s := testSession()
	s.Issuer, s.Subject, s.SessionID = fake.Issuer(), "usr_alice", "ses_1"
	cookies := signIn(t, h, s)
	e := &bcEnv{fake: fake, bc: bc}
	if resp := e.post(t, form(e.sign(t, e.claims()))); resp.StatusCode != http.StatusOK {
		t.Fatalf("back-channel: status %d", resp.StatusCode)
	}
	for name, h := range map[string]*logout.Handler{"this instance": h, "another instance": other} {
		if _, err := currentSession(h, cookies); !errors.Is(err, logout.ErrNoSession) {
			t.Errorf("%s after a back-channel logout: %v, want ErrNoSession", name, err)
		}
	}
	cookies = signIn(t, h, s2(fake.Issuer()))
	serve(h, logoutRequest(http.MethodPost, cookies))
	if _, err := currentSession(other, cookies); !errors.Is(err, logout.ErrNoSession) {
		t.Errorf("a copied cookie on another instance after logout: %v, want ErrNoSession", err)
	}
}

func s2(issuer string) logout.Session {
	s := testSession()
	s.Issuer, s.Subject, s.SessionID = issuer, "usr_bob", "ses_9"
	return s
}

// AllowGET refuses a GET that names another origin, by Fetch Metadata or,
// from a browser without it, by Origin or Referer; and touches nothing.
func TestAllowGETOrigin(t *testing.T) {
	tests := []struct {
		name   string
		header []string
		want   int
	}{
		{"same-origin metadata", []string{"Sec-Fetch-Site", "same-origin"}, http.StatusFound},
		{"user-typed", []string{"Sec-Fetch-Site", "none"}, http.StatusFound},
		{"cross-site metadata", []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"same-site metadata", []string{"Sec-Fetch-Site", "same-site"}, http.StatusForbidden},
		{"foreign Origin", []string{"Origin", "https://evil.example"}, http.StatusForbidden},
		{"opaque Origin", []string{"Origin", "null"}, http.StatusForbidden},
		{"own Origin", []string{"Origin", testAppOrigin}, http.StatusFound},
		{"foreign Referer", []string{"Referer", "https://evil.example/page"}, http.StatusForbidden},
		{"sibling Referer", []string{"Referer", "https://evil.app.example.com/"}, http.StatusForbidden},
		{"own Referer", []string{"Referer", testAppOrigin + "/account"}, http.StatusFound},
		{"foreign Origin, own Referer", []string{"Origin", "https://evil.example", "Referer", testAppOrigin + "/"}, http.StatusForbidden},
		{"nothing at all", nil, http.StatusFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := newHandler(t, newMiniStore(t), func(c *logout.Config) { c.AllowGET = true })
			cookies := signIn(t, h, testSession())
			r := httptest.NewRequest(http.MethodGet, testAppOrigin+"/logout", nil)
			for i := 0; i+1 < len(tt.header); i += 2 {
				r.Header.Set(tt.header[i], tt.header[i+1])
			}
			for _, c := range cookies {
				r.AddCookie(c)
			}
			resp := serve(h, r)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
			_, err := currentSession(h, cookies)
			if alive := err == nil; alive != (tt.want == http.StatusForbidden) {
				t.Errorf("session alive = %v after status %d", alive, resp.StatusCode)
			}
		})
	}
}

// A Cookie header repeating a chunk name thousands of times gets one
// Set-Cookie per distinct name, however long it is.
func TestDuplicateChunkCookiesExpiredOnce(t *testing.T) {
	h, _ := newHandler(t, newCookieStore(t), nil)
	r := logoutRequest(http.MethodPost, nil)
	var b strings.Builder
	for i := range 2500 { // net/http parses up to 3,000 cookies
		fmt.Fprintf(&b, "__Host-session.%d=x; ", 1+i%3)
	}
	r.Header.Set("Cookie", b.String())
	resp := serve(h, r)
	lines := resp.Header.Values("Set-Cookie")
	seen := map[string]bool{}
	for _, l := range lines {
		name, _ := setCookieAttrs(l)
		if seen[name] {
			t.Errorf("%s expired twice", name)
		}
		seen[name] = true
	}
	if len(lines) != 5 {
		t.Errorf("%d Set-Cookie lines, want 5 (the cookie, its 3 chunk names and the signed-out signal)", len(lines))
	}
}

// Refusals are no more cacheable than redirects.
func TestEveryAnswerIsNoStore(t *testing.T) {
	h, _ := newHandler(t, newCookieStore(t), nil)
	for name, r := range map[string]*http.Request{
		"405": logoutRequest(http.MethodPut, nil),
		"403": logoutRequest(http.MethodPost, nil, "Sec-Fetch-Site", "cross-site"),
		"400": httptest.NewRequest(http.MethodPost, testAppOrigin+"/logout?return_to=https://evil.example", nil),
		"303": logoutRequest(http.MethodPost, nil),
	} {
		resp := serve(h, r)
		if got := fmt.Sprint(resp.StatusCode); got != name {
			t.Errorf("%s: status %s", name, got)
		}
		if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
			t.Errorf("%s: Cache-Control %q, want no-store", name, cc)
		}
	}
}

// A session that holds no ID token still sends the browser through the
// provider, whose own cookie names a session this app cannot see.
func TestSessionWithoutIDToken(t *testing.T) {
	h, _ := newHandler(t, newMiniStore(t), nil)
	s := testSession()
	s.IDToken = ""
	resp := serve(h, logoutRequest(http.MethodPost, signIn(t, h, s)))
	if loc := resp.Header.Get("Location"); loc != testEndSession {
		t.Errorf("Location %q, want the bare end-session endpoint", loc)
	}
}

// New refuses, naming the rule, a post-logout URI Scalekit would refuse at
// every logout; the opt-out lets other providers' URIs through.
func TestScalekitPostLogoutRules(t *testing.T) {
	long := testAppOrigin + "/" + strings.Repeat("a", 250)
	tests := []struct {
		name, uri, rule string
	}{
		{"relative", "/logged-out", "absolute"},
		{"query", testPostLogout + "?from=logout", "query"},
		{"empty query", testPostLogout + "?", "query"},
		{"fragment", testPostLogout + "#bye", "fragment"},
		{"over 256 characters", long, "256"},
	}
	for _, tt := range tests {
		for _, allowed := range []bool{false, true} {
			cfg := logout.Config{Store: newCookieStore(t), EndSessionEndpoint: testEndSession, PostLogoutRedirectURI: tt.uri}
			if allowed {
				cfg.PostLogoutRedirectURI = testPostLogout
				cfg.AllowedPostLogoutRedirectURIs = []string{tt.uri}
			}
			_, err := logout.New(t.Context(), cfg)
			if err == nil || !strings.Contains(err.Error(), tt.rule) {
				t.Errorf("%s (allowed list %v): %v, want an error naming %q", tt.name, allowed, err, tt.rule)
			}
			cfg.SkipScalekitURIRules = true
			_, err = logout.New(t.Context(), cfg)
			if wantOK := tt.rule == "query" || tt.rule == "256"; wantOK != (err == nil) {
				t.Errorf("%s with SkipScalekitURIRules: %v", tt.name, err)
			}
		}
	}
}

// countingStore is a user's store that embeds one of the package's and
// counts the calls that reach it.
type countingStore struct {
	*logout.RedisStore
	ends, endSubjects atomic.Int32
}

func (c *countingStore) End(ctx context.Context, token string) (logout.Session, error) {
	c.ends.Add(1)
	return c.RedisStore.End(ctx, token)
}

func (c *countingStore) EndSubject(ctx context.Context, issuer, subject string, before time.Time) (int, error) {
	c.endSubjects.Add(1)
	return c.RedisStore.EndSubject(ctx, issuer, subject, before)
}

// A store that embeds one of the package's is used as it is: New never
// swaps it for a copy of the store inside.
func TestWrappedStoreIsNotUnwrapped(t *testing.T) {
	store := &countingStore{RedisStore: newMiniStore(t)}
	h, _ := newHandler(t, store, func(c *logout.Config) { c.IdleTimeout = time.Hour })
	serve(h, logoutRequest(http.MethodPost, signIn(t, h, testSession())))
	if got := store.ends.Load(); got != 1 {
		t.Errorf("the wrapper's End was called %d times, want 1", got)
	}
}

// A store of the app's own that embeds one of the package's has its own
// EndSubject called for "sign out everywhere", and the hook hears of this
// session's logout and of the others' ending.
func TestWrappedStoreSignsOutEverywhereItself(t *testing.T) {
	store := &countingStore{RedisStore: newMiniStore(t)}
	var reasons []logout.EndReason
	h, _ := newHandler(t, store, func(c *logout.Config) {
		c.OnSessionEnd = func(_ context.Context, e logout.SessionEnd) { reasons = append(reasons, e.Reason) }
	})
	laptop, phone := signIn(t, h, testSession()), signIn(t, h, testSession())
	if resp := serve(h.Everywhere(), logoutRequest(http.MethodPost, laptop)); resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "id_token_hint=") {
		t.Fatalf("status %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if n := store.endSubjects.Load(); n != 1 {
		t.Errorf("the wrapper's EndSubject was called %d times, want 1", n)
	}
	if _, err := currentSession(h, phone); !errors.Is(err, logout.ErrNoSession) {
		t.Errorf("the phone's session: %v, want it ended", err)
	}
	slices.Sort(reasons)
	if want := []logout.EndReason{logout.EndEverywhere, logout.EndLogout}; !slices.Equal(reasons, want) {
		t.Errorf("the hook heard %v, want %v", reasons, want)
	}
}

// "Sign out everywhere" with FailOnStoreError, when the store fails to end
// the user's other sessions: the 503 changes nothing, neither this
// session nor its cookie, so trying again, once the store is back, ends
// them all. (Ending this session first would leave a second try with no
// session to name the user, and a 303 while the other devices stay
// signed in.)
func TestEverywhereThatFailsCanBeRetried(t *testing.T) {
	for name, newStore := range sharedStores(t) {
		t.Run(name, func(t *testing.T) {
			_, rdb := newMini(t)
			failing := &failScripts{}
			rdb.AddHook(failing)
			h, _ := newHandler(t, newStore(rdb, newKey(t)), func(c *logout.Config) { c.FailOnStoreError = true })
			laptop, phone := signIn(t, h, testSession()), signIn(t, h, testSession())

			failing.on.Store(true)
			resp := serve(h.Everywhere(), logoutRequest(http.MethodPost, laptop))
			if resp.StatusCode != http.StatusServiceUnavailable || len(resp.Header.Values("Set-Cookie")) != 0 {
				t.Fatalf("store failing: status %d, cookies %q; want 503 and none", resp.StatusCode, resp.Header.Values("Set-Cookie"))
			}
			for device, cookies := range map[string][]*http.Cookie{"laptop": laptop, "phone": phone} {
				if _, err := currentSession(h, cookies); err != nil {
					t.Errorf("after the 503 the %s's session is %v, want it as it was", device, err)
				}
			}

			failing.on.Store(false)
			resp = serve(h.Everywhere(), logoutRequest(http.MethodPost, laptop))
			if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "id_token_hint=") {
				t.Fatalf("trying again: status %d, Location %q; want 303 with the ID token", resp.StatusCode, resp.Header.Get("Location"))
			}
			for device, cookies := range map[string][]*http.Cookie{"laptop": laptop, "phone": phone} {
				if _, err := currentSession(h, cookies); !errors.Is(err, logout.ErrNoSession) {
					t.Errorf("after trying again the %s's session is %v, want it ended", device, err)
				}
			}
		})
	}
}

// failScripts fails every script a client sends while on: the stores end
// sessions in bulk with scripts, and read them without.
type failScripts struct{ on atomic.Bool }

func (f *failScripts) DialHook(next redis.DialHook) redis.DialHook { return next }
func (f *failScripts) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (f *failScripts) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if f.on.Load() && (cmd.Name() == "eval" || cmd.Name() == "evalsha") {
			err := errors.New("READONLY You can't write against a read only replica")
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}

// A sign-in made right after "sign out everywhere" or "sign out other
// devices" answered survives them, even within the millisecond: the
// records that end the sessions begun before the click hold its time to
// the millisecond, and the answer leaves only once the clock is past it.
func TestSignInRightAfterSignOutEverywhereSurvives(t *testing.T) {
	for name, newStore := range sharedStores(t) {
		t.Run(name, func(t *testing.T) {
			_, rdb := newMini(t)
			h, _ := newHandler(t, newStore(rdb, newKey(t)), nil)
			for _, click := range []struct {
				name string
				h    http.Handler
			}{{"everywhere", h.Everywhere()}, {"other devices", h.SignOutOtherDevices()}} {
				ended := 0
				for range 40 {
					old := signIn(t, h, testSession())
					if resp := serve(click.h, logoutRequest(http.MethodPost, old)); resp.StatusCode != http.StatusSeeOther {
						t.Fatalf("%s: status %d", click.name, resp.StatusCode)
					}
					if _, err := currentSession(h, signIn(t, h, testSession())); err != nil {
						ended++
					}
				}
				if ended > 0 {
					t.Errorf("%s: %d of 40 sign-ins made after it answered were ended by it", click.name, ended)
				}
			}
		})
	}
}
