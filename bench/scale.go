// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/alexedwards/scs/goredisstore"
	"github.com/alexedwards/scs/v2"
	"github.com/redis/go-redis/v9"

	"github.com/endsession/logout"
)

// scaleRun shows that a logout costs the same with a thousand or a million
// sessions stored, and that ending all of a user's sessions grows with that
// user's sessions only, beside scs's way, which scans the keyspace.
func scaleRun(w *strings.Builder, rdb *redis.Client, mon *monitor, big, conc int) {
	ctx := context.Background()
	// Two keyspaces on the same server, measured in alternation, so that the
	// machine's noise falls on both alike: the 1,000-session one in the next
	// database, the large one in this.
	opts, err := redis.ParseURL(*flagRedis)
	check(err)
	opts.DB++
	opts.ContextTimeoutEnabled = true
	small := redis.NewClient(opts)
	defer small.Close()
	check(small.FlushDB(ctx).Err())
	defer small.FlushDB(ctx)

	var users atomic.Int64
	type setup struct {
		n      int
		store  *logout.RedisStore
		url    string
		signIn func() []*http.Cookie
	}
	var sizes []setup
	for _, c := range []struct {
		rdb *redis.Client
		n   int
	}{{small, 1000}, {rdb, big}} {
		store := logout.NewRedisStore(c.rdb)
		h, err := logout.New(ctx, logout.Config{Store: store, EndSessionEndpoint: endSession, PostLogoutRedirectURI: postLogout, Logger: quiet})
		check(err)
		srv := httptest.NewServer(h)
		defer srv.Close()
		t0 := time.Now()
		fill(ctx, store, c.n)
		log.Printf("stored %d sessions (%v)", c.n, time.Since(t0).Round(time.Second))
		sizes = append(sizes, setup{c.n, store, srv.URL, func() []*http.Cookie {
			n := users.Add(1)
			return signIn(h, logout.Session{Issuer: "https://acme.scalekit.dev", Subject: fmt.Sprintf("usr_%d", n), SessionID: fmt.Sprintf("ses_%d", n),
				IDToken: idToken, AccessToken: accessToken, RefreshToken: "rt_0123456789"})
		}})
	}
	client := &http.Client{
		Transport:     &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	// Latency, not throughput, is the question here, so fewer clients keep
	// queueing on two cores from drowning it.
	const clients, reps, perRep = 8, 7, 3000
	logouts := logoutTable(rdb)
	p50s, p99s := make([][]time.Duration, 2), make([][]time.Duration, 2)
	for _, sz := range sizes {
		logouts.loadRun(client, sz.url, signInMany(sz.signIn, 3000), clients) // warm-up
	}
	for range reps {
		for i, sz := range sizes {
			lat := logouts.loadRun(client, sz.url, signInMany(sz.signIn, perRep), clients)
			slices.Sort(lat)
			p50s[i], p99s[i] = append(p50s[i], lat[len(lat)/2]), append(p99s[i], lat[len(lat)*99/100])
		}
	}
	fmt.Fprintf(w, "Logout latency by sessions stored (RedisStore, %d concurrent clients; %d runs of %d logouts per size, the sizes alternating; medians of the runs):\n\n", clients, reps, perRep)
	fmt.Fprintf(w, "| sessions stored | p50 | p99 |\n|---:|---:|---:|\n")
	var med [2]time.Duration
	for i, sz := range sizes {
		slices.Sort(p50s[i])
		slices.Sort(p99s[i])
		med[i] = p99s[i][reps/2]
		fmt.Fprintf(w, "| %d | %.0f µs | %.0f µs |\n", sz.n, us(p50s[i][reps/2]), us(med[i]))
		log.Printf("%d stored: p50 %.0fµs p99 %.0fµs (runs' p99: %v)", sz.n, us(p50s[i][reps/2]), us(med[i]), p99s[i])
	}
	fmt.Fprintf(w, "\np99 at %d sessions / p99 at 1,000: **%.2fx**\n\n", big, float64(med[1])/float64(med[0]))
	store := sizes[1].store

	// Ending all of one user's sessions.
	sm := scs.New()
	sm.Store = goredisstore.NewWithPrefix(rdb, "scs:")
	dbsize, _ := rdb.DBSize(ctx).Result()
	fmt.Fprintf(w, "Ending all sessions of one user, with %d keys in Redis:\n\n", dbsize)
	fmt.Fprintf(w, "| user's sessions | RedisStore.EndSubject | Redis commands sent (run) | scs Iterate + Destroy |\n|---:|---:|---:|---:|\n")
	for _, n := range []int{1, 10, 1000} {
		sub := fmt.Sprintf("usr_many_%d", n)
		saveMany(ctx, store, sub, n)
		for range n {
			c, _ := sm.Load(ctx, "")
			sm.Put(c, "sub", sub)
			sm.Put(c, "id_token", idToken)
			_, _, err := sm.Commit(c)
			check(err)
		}
		t0 := time.Now()
		ended, err := store.EndSubject(ctx, "https://acme.scalekit.dev", sub, time.Now())
		ours := time.Since(t0)
		check(err)
		if ended != n {
			log.Fatalf("EndSubject ended %d, want %d", ended, n)
		}
		// The same again under MONITOR, which would slow the timed call.
		saveMany(ctx, store, sub+"_counted", n)
		cmds := mon.count(func() {
			_, err := store.EndSubject(ctx, "https://acme.scalekit.dev", sub+"_counted", time.Now())
			check(err)
		})
		t0 = time.Now()
		var destroyed int
		check(sm.Iterate(ctx, func(c context.Context) error {
			if sm.GetString(c, "sub") != sub {
				return nil
			}
			destroyed++
			return sm.Destroy(c)
		}))
		theirs := time.Since(t0)
		if destroyed != n {
			log.Fatalf("scs destroyed %d, want %d", destroyed, n)
		}
		fmt.Fprintf(w, "| %d | %.2f ms | %d (%d) | %.0f ms |\n", n, float64(ours)/1e6, cmds.sent, cmds.all, float64(theirs)/1e6)
		log.Printf("end all of %d: ours %v (%d commands sent, %d run), scs %v", n, ours, cmds.sent, cmds.all, theirs)
	}
	fmt.Fprintln(w)
}

// fill stores n sessions of distinct users, 64 at a time.
func fill(ctx context.Context, store *logout.RedisStore, n int) {
	parallel(n, 64, func(i int) {
		s := logout.Session{Issuer: "https://acme.scalekit.dev", Subject: fmt.Sprintf("usr_fill_%d", i), SessionID: fmt.Sprintf("ses_fill_%d", i),
			IDToken: idToken, Expiry: time.Now().Add(2 * time.Hour)}
		_, err := store.Save(ctx, s)
		check(err)
	})
}

// saveMany stores n sessions of one user.
func saveMany(ctx context.Context, store *logout.RedisStore, sub string, n int) {
	for range n {
		s := logout.Session{Issuer: "https://acme.scalekit.dev", Subject: sub, SessionID: "ses_x", IDToken: idToken, Expiry: time.Now().Add(time.Hour)}
		_, err := store.Save(ctx, s)
		check(err)
	}
}
