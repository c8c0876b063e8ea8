// SPDX-License-Identifier: Apache-2.0

package logout_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/endsession/logout"
	"github.com/endsession/logout/scalekittest"
)

// otelEnv is the OpenTelemetry SDK as an app installs it, with a reader the
// test collects by hand and a recorder of every span.
type otelEnv struct {
	reader *sdkmetric.ManualReader
	mp     *sdkmetric.MeterProvider
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
}

func newOtel(t testing.TB) *otelEnv {
	t.Helper()
	o := &otelEnv{reader: sdkmetric.NewManualReader(), spans: tracetest.NewSpanRecorder()}
	o.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(o.reader))
	o.tp = sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithSpanProcessor(o.spans))
	t.Cleanup(func() {
		o.mp.Shutdown(context.Background())
		o.tp.Shutdown(context.Background())
	})
	return o
}

// config gives a Handler's config the providers.
func (o *otelEnv) config(c *logout.Config) { c.MeterProvider, c.TracerProvider = o.mp, o.tp }

func (o *otelEnv) collect(t testing.TB) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := o.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	return rm
}

// value is what a dashboard reads for the instrument name over the data
// points whose attributes include each "key=value" of attrs: a counter's
// sum, a histogram's count of observations, a gauge's last value (summed
// over the matching points in each case).
func (o *otelEnv) value(t testing.TB, name string, attrs ...string) float64 {
	t.Helper()
	matches := func(set attribute.Set) bool {
		for _, kv := range attrs {
			k, v, _ := strings.Cut(kv, "=")
			if got, ok := set.Value(attribute.Key(k)); !ok || got.Emit() != v {
				return false
			}
		}
		return true
	}
	total := 0.0
	for _, sm := range o.collect(t).ScopeMetrics {
		if sm.Scope.Name != "github.com/endsession/logout" {
			t.Errorf("instrumentation scope %q, want the module path", sm.Scope.Name)
		}
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					if matches(p.Attributes) {
						total += float64(p.Value)
					}
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					if matches(p.Attributes) {
						total += float64(p.Count)
					}
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					if matches(p.Attributes) {
						total += float64(p.Value)
					}
				}
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					if matches(p.Attributes) {
						total += p.Value
					}
				}
			default:
				t.Fatalf("%s: unexpected data %T", name, m.Data)
			}
		}
	}
	return total
}

// metricWant is one figure a dashboard reads.
type metricWant struct {
	name  string
	attrs []string
	want  float64
}

func (o *otelEnv) check(t *testing.T, wants []metricWant) {
	t.Helper()
	for _, w := range wants {
		if got := o.value(t, w.name, w.attrs...); got != w.want {
			t.Errorf("%s{%s} = %v, want %v", w.name, strings.Join(w.attrs, ","), got, w.want)
		}
	}
}

// checkClean fails if any attribute of any data point or span, or any span
// name or status, holds one of the values: a token, a handle, an email or a
// user ID must never become an attribute.
func (o *otelEnv) checkClean(t *testing.T, values ...string) {
	t.Helper()
	var seen []string
	add := func(set attribute.Set) {
		for _, kv := range set.ToSlice() {
			seen = append(seen, string(kv.Key)+"="+kv.Value.Emit())
		}
	}
	for _, sm := range o.collect(t).ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					add(p.Attributes)
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					add(p.Attributes)
				}
			}
		}
	}
	for _, s := range o.spans.Ended() {
		seen = append(seen, s.Name(), s.Status().Description)
		add(attribute.NewSet(s.Attributes()...))
	}
	if len(seen) == 0 {
		t.Fatal("nothing was recorded")
	}
	for _, v := range values {
		if len(v) < 4 {
			continue
		}
		for _, s := range seen {
			if strings.Contains(s, v) {
				t.Errorf("telemetry carries %.40q in %q", v, s)
			}
		}
	}
}

// span returns the one ended span named name.
func (o *otelEnv) span(t *testing.T, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	var found []sdktrace.ReadOnlySpan
	for _, s := range o.spans.Ended() {
		if s.Name() == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		var names []string
		for _, s := range o.spans.Ended() {
			names = append(names, s.Name())
		}
		t.Fatalf("%d spans named %s, want 1; spans: %v", len(found), name, names)
	}
	return found[0]
}

func spanAttr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

func sessionValues(s logout.Session, cookies []*http.Cookie) []string {
	v := []string{s.Subject, s.SessionID, s.Email, s.IDToken, s.AccessToken, s.RefreshToken}
	for _, c := range cookies {
		v = append(v, c.Value)
	}
	return v
}

// After the logouts a day brings (one that ends a session, a second click,
// a refusal of each kind, a sign-out everywhere), the counters say what
// happened, and each store call is timed by operation and outcome.
func TestMetricLogoutOutcomes(t *testing.T) {
	o := newOtel(t)
	h, _ := newHandler(t, newMiniStore(t), o.config)
	s := testSession()
	cookies := signIn(t, h, s)

	bad := logoutRequest(http.MethodPost, nil)
	bad.URL.RawQuery = "return_to=https%3A%2F%2Fevil.example%2F"
	c1, c2 := signIn(t, h, s), signIn(t, h, s)
	for _, step := range []struct {
		h      http.Handler
		r      *http.Request
		status int
	}{
		{h, logoutRequest(http.MethodPost, cookies), http.StatusSeeOther},
		{h, logoutRequest(http.MethodPost, cookies), http.StatusSeeOther}, // a second click: the session is gone
		{h, logoutRequest(http.MethodPost, nil), http.StatusSeeOther},
		{h, logoutRequest(http.MethodGet, cookies), http.StatusMethodNotAllowed},
		{h, logoutRequest(http.MethodPost, cookies, "Sec-Fetch-Site", "cross-site"), http.StatusForbidden},
		{h, bad, http.StatusBadRequest},
		{h.Everywhere(), logoutRequest(http.MethodPost, c1), http.StatusSeeOther},
	} {
		if got := serve(step.h, step.r).StatusCode; got != step.status {
			t.Fatalf("%s %s: status %d, want %d", step.r.Method, step.r.URL, got, step.status)
		}
	}
	if _, err := currentSession(h, c2); err == nil {
		t.Fatal("sign out everywhere left the user's other session")
	}

	o.check(t, []metricWant{
		{"logout.requests", []string{"logout.outcome=ended", "logout.everywhere=false"}, 1},
		{"logout.requests", []string{"logout.outcome=ended", "logout.everywhere=true"}, 1},
		{"logout.requests", []string{"logout.outcome=no_session"}, 2},
		{"logout.requests", []string{"logout.outcome=store_error"}, 0},
		{"logout.requests", []string{"logout.outcome=refused", "logout.refused.reason=method"}, 1},
		{"logout.requests", []string{"logout.outcome=refused", "logout.refused.reason=cross_origin"}, 1},
		{"logout.requests", []string{"logout.outcome=refused", "logout.refused.reason=bad_request"}, 1},
		{"logout.requests", nil, 7},
		{"logout.sessions.ended", []string{"logout.end.reason=logout"}, 2},
		{"logout.sessions.ended", []string{"logout.end.reason=everywhere"}, 1},
		{"logout.sessions.ended", nil, 3},
		{"logout.store.duration", []string{"logout.store.operation=end", "logout.store.outcome=ok"}, 2},
		{"logout.store.duration", []string{"logout.store.operation=end", "logout.store.outcome=no_session"}, 1},
		// "Everywhere" reads the session, ends the others, then this one.
		{"logout.store.duration", []string{"logout.store.operation=load", "logout.store.outcome=ok"}, 1},
		{"logout.store.duration", []string{"logout.store.operation=end_others", "logout.store.outcome=ok"}, 1},
		{"logout.store.duration", []string{"logout.store.operation=save", "logout.store.outcome=ok"}, 3},
		{"logout.store.duration", []string{"logout.store.outcome=error"}, 0},
	})
	o.checkClean(t, sessionValues(s, append(append(cookies, c1...), c2...))...)
}

// Redis goes down: a logout still completes for the user, and the
// dashboard shows the store failing, by operation, on the logout and on
// signed-in pages, with the spans marked as errors. Redis comes back empty:
// the next logout finds no session, and the store answers again.
func TestMetricStoreOutage(t *testing.T) {
	o := newOtel(t)
	srv := startRedisServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	var hookErrs int
	h, _ := newHandler(t, logout.NewRedisStore(rdb), func(c *logout.Config) {
		o.config(c)
		c.StoreTimeout = 500 * time.Millisecond
		c.OnError = func(*http.Request, error) { hookErrs++ }
	})
	s := testSession()
	cookies := signIn(t, h, s)
	srv.Stop()

	if got := serve(h, logoutRequest(http.MethodPost, cookies)).StatusCode; got != http.StatusSeeOther {
		t.Fatalf("logout with Redis down: %d, want 303 (the browser still goes to the provider)", got)
	}
	page := h.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for range 3 {
		page.ServeHTTP(httptest.NewRecorder(), logoutRequest(http.MethodGet, cookies))
	}
	failed := func(op string) float64 {
		return o.value(t, "logout.store.duration", "logout.store.operation="+op, "logout.store.outcome=error") +
			o.value(t, "logout.store.duration", "logout.store.operation="+op, "logout.store.outcome=timeout")
	}
	if got := failed("end"); got != 1 || hookErrs != 1 {
		t.Errorf("failed store ends %v (OnError heard %d), want 1", got, hookErrs)
	}
	if got := failed("renew"); got != 3 {
		t.Errorf("failed session reads on signed-in pages %v, want 3", got)
	}
	o.check(t, []metricWant{
		{"logout.requests", []string{"logout.outcome=store_error"}, 1},
		{"logout.requests", []string{"logout.outcome=ended"}, 0},
		{"logout.store.duration", []string{"logout.store.operation=end", "logout.store.outcome=ok"}, 0},
	})
	if sp := o.span(t, "logout.store.end"); sp.Status().Code != codes.Error {
		t.Errorf("the failed store call's span has status %v, want Error", sp.Status())
	}
	if sp := o.span(t, "logout"); sp.Status().Code != codes.Error || spanAttr(sp, "logout.outcome") != "store_error" {
		t.Errorf("the logout's span: status %v, outcome %q; want Error, store_error", sp.Status(), spanAttr(sp, "logout.outcome"))
	}

	srv.Start() // back, and empty: the session died with the server
	serve(h, logoutRequest(http.MethodPost, cookies))
	o.check(t, []metricWant{
		{"logout.requests", []string{"logout.outcome=no_session"}, 1},
		{"logout.store.duration", []string{"logout.store.operation=end", "logout.store.outcome=no_session"}, 1},
	})
	o.checkClean(t, sessionValues(s, cookies)...)
}

// Webhook deliveries are counted by outcome, and a refusal by its reason:
// forged, stale, unsigned, replayed, of another type, and one the store
// could not take.
func TestMetricWebhookDeliveries(t *testing.T) {
	o := newOtel(t)
	e := newWHEnv(t, false)
	wh, err := logout.NewWebhookHandler(logout.WebhookConfig{
		Secrets: []string{e.secret}, Issuer: whIssuer, Store: e.store, Logger: newLogger(e.logSink),
		MeterProvider: o.mp, TracerProvider: o.tp,
	})
	if err != nil {
		t.Fatal(err)
	}
	good := newDelivery(e.secret, logoutEvent("usr_alice", "ses_1", nil), time.Now())
	forged := newDelivery(newWebhookSecret(), logoutEvent("usr_bob", "", nil), time.Now())
	stale := newDelivery(e.secret, logoutEvent("usr_bob", "", nil), time.Now().Add(-time.Hour))
	unsigned := newDelivery(e.secret, logoutEvent("usr_bob", "", nil), time.Now())
	unsigned.signature = ""
	other := newDelivery(e.secret, `{"type":"organization.created","data":{}}`, time.Now())
	for _, step := range []struct {
		d      delivery
		status int
	}{
		{good, http.StatusOK},
		{good, http.StatusOK}, // the provider's retry of a delivery whose answer it lost
		{forged, http.StatusUnauthorized},
		{stale, http.StatusUnauthorized},
		{unsigned, http.StatusUnauthorized},
		{other, http.StatusOK},
	} {
		if got := postWebhook(wh, step.d).StatusCode; got != step.status {
			t.Fatalf("delivery %s: %d, want %d", step.d.id, got, step.status)
		}
	}
	e.mini.SetError("LOADING Redis is loading the dataset in memory")
	if got := postWebhook(wh, newDelivery(e.secret, logoutEvent("usr_bob", "ses_3", nil), time.Now())).StatusCode; got != http.StatusServiceUnavailable {
		t.Fatalf("delivery with the store down: %d, want 503", got)
	}
	e.mini.SetError("")
	if e.alive(t, "alice1") || !e.alive(t, "bob") {
		t.Fatal("the deliveries ended the wrong sessions")
	}

	kind := "logout.delivery.kind=webhook"
	o.check(t, []metricWant{
		{"logout.deliveries", []string{kind, "logout.delivery.outcome=verified"}, 1},
		{"logout.deliveries", []string{kind, "logout.delivery.outcome=replayed"}, 1},
		{"logout.deliveries", []string{kind, "logout.delivery.outcome=ignored"}, 1},
		{"logout.deliveries", []string{kind, "logout.delivery.outcome=store_unavailable"}, 1},
		{"logout.deliveries", []string{kind, "logout.delivery.outcome=refused", "logout.delivery.refused.reason=signature"}, 1},
		{"logout.deliveries", []string{kind, "logout.delivery.outcome=refused", "logout.delivery.refused.reason=timestamp"}, 1},
		{"logout.deliveries", []string{kind, "logout.delivery.outcome=refused", "logout.delivery.refused.reason=headers"}, 1},
		{"logout.deliveries", []string{"logout.delivery.kind=back_channel"}, 0},
		{"logout.sessions.ended", []string{"logout.end.reason=webhook"}, 1},
		{"logout.store.duration", []string{"logout.store.operation=end_sid", "logout.store.outcome=ok"}, 1},
		{"logout.store.duration", []string{"logout.store.operation=remember", "logout.store.outcome=ok"}, 1},
		{"logout.store.duration", []string{"logout.store.operation=seen", "logout.store.outcome=ok"}, 2},
		{"logout.store.duration", []string{"logout.store.operation=seen", "logout.store.outcome=error"}, 1},
	})
	o.checkClean(t, "usr_alice", "usr_bob", "ses_1", "ses_3", e.secret, e.tokens["alice1"], e.tokens["bob"], "ada@example.com")
}

// Back-channel logout tokens are counted the same way: verified, replayed,
// and refused for their shape, their type, their claims or their signature.
func TestMetricBackChannelDeliveries(t *testing.T) {
	o := newOtel(t)
	e := newBCEnv(t, false)
	bc, err := logout.NewBackChannelHandler(context.Background(), logout.BackChannelConfig{
		Issuer: e.fake.Issuer(), ClientID: bcClient, Store: e.store, Logger: newLogger(e.logSink),
		MeterProvider: o.mp, TracerProvider: o.tp,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.bc = bc
	good := e.sign(t, e.claims())
	wrongAudience := e.claims()
	wrongAudience["aud"] = "skc_someone_else"
	accessToken, err := e.fake.Sign(e.claims(), "at+jwt")
	if err != nil {
		t.Fatal(err)
	}
	noteSecret(accessToken)
	forged := good[:len(good)-4] + "AAAA"
	if forged == good {
		forged = good[:len(good)-4] + "BBBB"
	}
	for _, step := range []struct {
		body   string
		status int
	}{
		{form(good), http.StatusOK},
		{form(good), http.StatusBadRequest}, // replayed
		{form(e.sign(t, wrongAudience)), http.StatusBadRequest},
		{form(accessToken), http.StatusBadRequest},
		{form(forged), http.StatusBadRequest},
		{form("not.a.jwt"), http.StatusBadRequest},
		{"", http.StatusBadRequest},
	} {
		if got := e.post(t, step.body).StatusCode; got != step.status {
			t.Fatalf("%.40q: %d, want %d", step.body, got, step.status)
		}
	}
	kind := "logout.delivery.kind=back_channel"
	refused := func(reason string) []string {
		return []string{kind, "logout.delivery.outcome=refused", "logout.delivery.refused.reason=" + reason}
	}
	o.check(t, []metricWant{
		{"logout.deliveries", []string{kind, "logout.delivery.outcome=verified"}, 1},
		{"logout.deliveries", []string{kind, "logout.delivery.outcome=replayed"}, 1},
		{"logout.deliveries", refused("claims"), 1},
		{"logout.deliveries", refused("token_type"), 1},
		{"logout.deliveries", refused("signature"), 1},
		{"logout.deliveries", refused("malformed"), 2},
		{"logout.sessions.ended", []string{"logout.end.reason=back-channel"}, 1},
	})
	o.checkClean(t, "usr_alice", "ses_1", good, e.tokens["alice1"])
}

// gatedTransport holds every request until it is opened, and says when the
// first one arrives.
type gatedTransport struct {
	arrived chan struct{}
	open    chan struct{}
}

func (g *gatedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	select {
	case g.arrived <- struct{}{}:
	default:
	}
	select {
	case <-g.open:
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
	return http.DefaultTransport.RoundTrip(r)
}

// A logout whose browser never reaches the provider: the backstop schedules
// a job, the queue shows it (and, once it is due but stuck on a slow
// provider, its age), and when the provider answers the job ends the
// session there and the queue is empty again. A logout whose browser did get
// there counts as done, with nothing to end.
func TestMetricBackstopEndsProviderSession(t *testing.T) {
	o := newOtel(t)
	e := newProvEnv(t, scalekittest.Config{})
	gate := &gatedTransport{arrived: make(chan struct{}, 1), open: make(chan struct{})}
	p, err := logout.NewProvider(logout.ProviderConfig{
		Issuer: e.fake.Issuer(), ClientID: provClient, ClientSecret: provSecret, HTTPClient: &http.Client{Transport: gate},
		MeterProvider: o.mp, TracerProvider: o.tp,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.provider = p
	_, rdb := newMini(t)
	h := e.handler(t, logout.NewRedisStore(rdb), time.Millisecond, o.config)

	abandoned := e.signInAtFake(t, newJar(t), "ada@example.com")
	abandonedCookies := signIn(t, h, e.appSession(abandoned))
	serve(h, logoutRequest(http.MethodPost, abandonedCookies))
	select {
	case <-gate.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the backstop never called the provider")
	}
	// The job is due and running, held by the provider.
	o.check(t, []metricWant{
		{"logout.backstop.jobs", []string{"logout.backstop.event=scheduled"}, 1},
		{"logout.backstop.queue.depth", nil, 1},
	})
	if age := o.value(t, "logout.backstop.queue.oldest_due_age"); age <= 0 {
		t.Errorf("oldest due job's age %v while it waits on the provider, want above 0", age)
	}

	jar := newJar(t)
	followed := e.signInAtFake(t, jar, "bob@example.com")
	followedCookies := signIn(t, h, e.appSession(followed))
	resp := serve(h, logoutRequest(http.MethodPost, followedCookies))
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if r, err := browser.Get(resp.Header.Get("Location")); err != nil || r.StatusCode != http.StatusFound {
		t.Fatalf("the browser at the end-session endpoint: %v", err)
	}
	close(gate.open)
	waitFor(t, 10*time.Second, "both backstop jobs to finish", func() bool {
		return o.value(t, "logout.backstop.jobs", "logout.backstop.event=ended")+o.value(t, "logout.backstop.jobs", "logout.backstop.event=done") == 2
	})
	if got := status(t, e.fake, abandoned.SessionID); got != scalekittest.StatusRevoked {
		t.Errorf("abandoned provider session %s, want revoked", got)
	}
	o.check(t, []metricWant{
		{"logout.backstop.jobs", []string{"logout.backstop.event=scheduled"}, 2},
		{"logout.backstop.jobs", []string{"logout.backstop.event=ended"}, 1},
		{"logout.backstop.jobs", []string{"logout.backstop.event=done"}, 1},
		{"logout.backstop.jobs", []string{"logout.backstop.event=failed"}, 0},
		{"logout.backstop.jobs", []string{"logout.backstop.event=dropped"}, 0},
		{"logout.backstop.queue.depth", nil, 0},
		{"logout.backstop.queue.oldest_due_age", nil, 0},
		{"logout.provider.duration", []string{"logout.provider.operation=get_session", "logout.provider.outcome=ok"}, 2},
		{"logout.provider.duration", []string{"logout.provider.operation=revoke_session", "logout.provider.outcome=ok"}, 1},
		{"logout.provider.duration", []string{"logout.provider.operation=token_client_credentials", "logout.provider.outcome=ok"}, 1},
		{"logout.sessions.ended", []string{"logout.end.reason=logout"}, 2},
	})
	o.checkClean(t, append(sessionValues(e.appSession(abandoned), abandonedCookies), sessionValues(e.appSession(followed), followedCookies)...)...)
}

// A backstop that cannot reach the provider gives up after its retries,
// and one refused for a full queue or a closed handler is dropped: both
// show, as failed and dropped.
func TestMetricBackstopFailsAndDrops(t *testing.T) {
	defer logout.SetBackstopRetry(time.Millisecond)()
	o := newOtel(t)
	e := newProvEnv(t, scalekittest.Config{})
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusBadGateway) }))
	t.Cleanup(down.Close)
	p, err := logout.NewProvider(logout.ProviderConfig{Issuer: down.URL, ClientID: provClient, ClientSecret: provSecret, MeterProvider: o.mp, TracerProvider: o.tp})
	if err != nil {
		t.Fatal(err)
	}
	e.provider = p
	_, rdb := newMini(t)
	h := e.handler(t, logout.NewRedisStore(rdb), time.Millisecond, o.config)
	serve(h, logoutRequest(http.MethodPost, signIn(t, h, testSession())))
	waitFor(t, 10*time.Second, "the backstop to give up", func() bool {
		return o.value(t, "logout.backstop.jobs", "logout.backstop.event=failed") == 1
	})
	if err := h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	serve(h, logoutRequest(http.MethodPost, signIn(t, h, testSession()))) // after Close: refused
	waitFor(t, 10*time.Second, "the dropped job", func() bool {
		return o.value(t, "logout.backstop.jobs", "logout.backstop.event=dropped") == 1
	})
	o.check(t, []metricWant{
		{"logout.backstop.jobs", []string{"logout.backstop.event=scheduled"}, 1},
		{"logout.backstop.jobs", []string{"logout.backstop.event=ended"}, 0},
		{"logout.provider.duration", []string{"logout.provider.operation=token_client_credentials", "logout.provider.outcome=unavailable"}, 4},
	})
}

// Refreshes are counted by outcome: one that rotates the tokens, one that
// finds another refresh already did, one the provider refuses (which ends
// the session), and one for a session already gone.
func TestMetricRefreshOutcomes(t *testing.T) {
	o := newOtel(t)
	e := newProvEnv(t, scalekittest.Config{})
	p, err := logout.NewProvider(logout.ProviderConfig{Issuer: e.fake.Issuer(), ClientID: provClient, ClientSecret: provSecret, MeterProvider: o.mp, TracerProvider: o.tp})
	if err != nil {
		t.Fatal(err)
	}
	e.provider = p
	_, rdb := newMini(t)
	h := e.handler(t, logout.NewRedisStore(rdb), time.Hour, o.config)
	tok := e.signInAtFake(t, newJar(t), "ada@example.com")
	cookies := signIn(t, h, e.appSession(tok))

	// This request loaded the session before another one refreshed it.
	var joined error
	h.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := h.Refresh(httptest.NewRecorder(), refreshRequest(cookies))
		if err != nil {
			t.Fatalf("first refresh: %v", err)
		}
		noteSecret(s.RefreshToken)
		noteSecret(s.AccessToken)
		noteSecret(s.IDToken)
		_, joined = h.Refresh(w, r)
	})).ServeHTTP(httptest.NewRecorder(), refreshRequest(cookies))
	if joined != nil {
		t.Fatalf("the refresh that lost the race: %v", joined)
	}
	if _, err := e.fake.RevokeSession(tok.SessionID); err != nil {
		t.Fatal(err)
	}
	for range 2 { // refused, which ends the session; then no session
		h.Refresh(httptest.NewRecorder(), refreshRequest(cookies))
	}
	o.check(t, []metricWant{
		{"logout.refreshes", []string{"logout.refresh.outcome=rotated"}, 1},
		{"logout.refreshes", []string{"logout.refresh.outcome=joined"}, 1},
		{"logout.refreshes", []string{"logout.refresh.outcome=refused"}, 1},
		{"logout.refreshes", []string{"logout.refresh.outcome=no_session"}, 1},
		{"logout.refreshes", []string{"logout.refresh.outcome=failed"}, 0},
		{"logout.sessions.ended", []string{"logout.end.reason=refresh-refused"}, 1},
		{"logout.provider.duration", []string{"logout.provider.operation=token_refresh", "logout.provider.outcome=ok"}, 1},
		{"logout.provider.duration", []string{"logout.provider.operation=token_refresh", "logout.provider.outcome=refused"}, 1},
	})
	o.checkClean(t, sessionValues(e.appSession(tok), cookies)...)
}

// With no provider installed, the logout and a signed-in page allocate
// exactly what they allocate with telemetry turned off (no-op providers,
// which turn every instrumentation call into a nil check). With an SDK
// installed they allocate more, which shows the count sees the
// instrumentation.
func TestMetricsCostNothingWithoutAProvider(t *testing.T) {
	if raceDetector {
		t.Skip("allocation counts vary under the race detector; the run without it counts them")
	}
	if reflect.TypeOf(otel.GetMeterProvider()).Elem().PkgPath() != "go.opentelemetry.io/otel/internal/global" ||
		reflect.TypeOf(otel.GetTracerProvider()).Elem().PkgPath() != "go.opentelemetry.io/otel/internal/global" {
		t.Fatal("a test installed a global OpenTelemetry provider; this one needs the process's defaults")
	}
	store := newCookieStore(t)
	off, _ := newHandler(t, store, func(c *logout.Config) {
		c.MeterProvider, c.TracerProvider = metricnoop.NewMeterProvider(), tracenoop.NewTracerProvider()
	})
	global, _ := newHandler(t, store, nil)
	sdk, _ := newHandler(t, store, newOtel(t).config)
	cookies := signIn(t, off, testSession())

	allocs := func(h http.Handler, method string) float64 {
		r := logoutRequest(method, cookies)
		if got := serve(h, r).StatusCode; got >= 400 {
			t.Fatalf("status %d", got)
		}
		return testing.AllocsPerRun(200, func() { h.ServeHTTP(httptest.NewRecorder(), r) })
	}
	page := func(h *logout.Handler) http.Handler {
		return h.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, err := h.Session(r); err != nil {
				t.Errorf("the page has no session: %v", err)
			}
		}))
	}
	for _, c := range []struct {
		name        string
		off, global http.Handler
		sdk         http.Handler
		method      string
	}{
		{"logout", off, global, sdk, http.MethodPost},
		{"signed-in page", page(off), page(global), page(sdk), http.MethodGet},
	} {
		o, g, s := allocs(c.off, c.method), allocs(c.global, c.method), allocs(c.sdk, c.method)
		t.Logf("%s: %v allocations with telemetry off, %v without a provider, %v with the SDK", c.name, o, g, s)
		if g != o {
			t.Errorf("%s: %v allocations without a provider, want %v as with telemetry off", c.name, g, o)
		}
		if s <= o {
			t.Errorf("%s: %v allocations with the SDK, no more than %v with telemetry off: the count misses the instrumentation", c.name, s, o)
		}
	}
}

// A handler built before the app installs its SDK as OpenTelemetry's global
// provider reports to it once it is installed, and measured nothing before.
// It runs in a process of its own, since a global provider cannot be
// uninstalled.
func TestMetricGlobalProviderInstalledAfterNew(t *testing.T) {
	if os.Getenv("LOGOUT_TEST_OTEL_GLOBAL") != "1" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMetricGlobalProviderInstalledAfterNew$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "LOGOUT_TEST_OTEL_GLOBAL=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestMetricGlobalProviderInstalledAfterNew") {
			t.Fatalf("in a process of its own: %v\n%s", err, out)
		}
		return
	}
	h, _ := newHandler(t, newCookieStore(t), nil)
	cookies := signIn(t, h, testSession())
	serve(h, logoutRequest(http.MethodPost, cookies))

	o := newOtel(t)
	otel.SetMeterProvider(o.mp)
	otel.SetTracerProvider(o.tp)
	serve(h, logoutRequest(http.MethodPost, cookies))
	o.check(t, []metricWant{
		{"logout.requests", []string{"logout.outcome=ended"}, 1},
		{"logout.store.duration", []string{"logout.store.operation=end"}, 1},
	})
	o.span(t, "logout")
}

// A logout's span is a child of the request's own span (otelhttp's, say),
// and its store call a child of the logout's, all in one trace.
func TestTraceLogoutUnderTheRequestSpan(t *testing.T) {
	o := newOtel(t)
	h, _ := newHandler(t, newMiniStore(t), o.config)
	s := testSession()
	cookies := signIn(t, h, s)
	ctx, parent := o.tp.Tracer("app").Start(context.Background(), "POST /logout", trace.WithSpanKind(trace.SpanKindServer))
	serve(h, logoutRequest(http.MethodPost, cookies).WithContext(ctx))
	parent.End()

	lo, end := o.span(t, "logout"), o.span(t, "logout.store.end")
	if lo.Parent().SpanID() != parent.SpanContext().SpanID() || lo.SpanContext().TraceID() != parent.SpanContext().TraceID() {
		t.Error("the logout's span is not a child of the request's")
	}
	if end.Parent().SpanID() != lo.SpanContext().SpanID() || end.SpanContext().TraceID() != parent.SpanContext().TraceID() {
		t.Error("the store call's span is not a child of the logout's")
	}
	for _, c := range []struct {
		span      sdktrace.ReadOnlySpan
		key, want string
	}{
		{lo, "logout.outcome", "ended"},
		{lo, "logout.everywhere", "false"},
		{end, "logout.store.operation", "end"},
		{end, "logout.store.outcome", "ok"},
	} {
		if got := spanAttr(c.span, c.key); got != c.want {
			t.Errorf("%s: %s=%q, want %q", c.span.Name(), c.key, got, c.want)
		}
	}
	if lo.Status().Code == codes.Error || end.Status().Code == codes.Error {
		t.Error("a logout that ended a session has a span marked as an error")
	}
	if lo.EndTime().Before(end.EndTime()) {
		t.Error("the logout's span ended before its store call")
	}
	// A logout with no span of its own request starts a trace.
	serve(h, logoutRequest(http.MethodPost, nil))
	var roots int
	for _, sp := range o.spans.Ended() {
		if sp.Name() == "logout" && !sp.Parent().IsValid() {
			roots++
		}
	}
	if roots != 1 {
		t.Errorf("%d root logout spans, want 1", roots)
	}
	o.checkClean(t, sessionValues(s, cookies)...)
}

// The backstop's job is a span, and each call it makes to the provider a
// client span under it: the session read, the revocation, and the API
// token they needed.
func TestTraceProviderCallsUnderTheBackstopJob(t *testing.T) {
	o := newOtel(t)
	e := newProvEnv(t, scalekittest.Config{})
	p, err := logout.NewProvider(logout.ProviderConfig{Issuer: e.fake.Issuer(), ClientID: provClient, ClientSecret: provSecret, TracerProvider: o.tp, MeterProvider: o.mp})
	if err != nil {
		t.Fatal(err)
	}
	e.provider = p
	_, rdb := newMini(t)
	h := e.handler(t, logout.NewRedisStore(rdb), time.Millisecond, o.config)
	tok := e.signInAtFake(t, newJar(t), "ada@example.com")
	cookies := signIn(t, h, e.appSession(tok))
	serve(h, logoutRequest(http.MethodPost, cookies))
	if err := h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	job, get, revoke, token := o.span(t, "logout.backstop.job"), o.span(t, "logout.provider.get_session"),
		o.span(t, "logout.provider.revoke_session"), o.span(t, "logout.provider.token_client_credentials")
	for _, c := range []struct {
		child, parent sdktrace.ReadOnlySpan
	}{{get, job}, {revoke, job}, {token, get}} {
		if c.child.Parent().SpanID() != c.parent.SpanContext().SpanID() {
			t.Errorf("%s is not a child of %s", c.child.Name(), c.parent.Name())
		}
		if c.child.SpanKind() != trace.SpanKindClient {
			t.Errorf("%s is a %v span, want client", c.child.Name(), c.child.SpanKind())
		}
	}
	for _, c := range []struct {
		span      sdktrace.ReadOnlySpan
		key, want string
	}{
		{get, "http.request.method", "GET"},
		{get, "url.template", "/api/v1/sessions/{session_id}"},
		{get, "http.response.status_code", "200"},
		{revoke, "http.request.method", "POST"},
		{revoke, "logout.provider.outcome", "ok"},
		{token, "url.template", "/oauth/token"},
	} {
		if got := spanAttr(c.span, c.key); got != c.want {
			t.Errorf("%s: %s=%q, want %q", c.span.Name(), c.key, got, c.want)
		}
	}
	o.checkClean(t, append(sessionValues(e.appSession(tok), cookies), provSecret)...)
}

// A delivery's span is a child of the request's, with its outcome, and its
// store calls are children of it.
func TestTraceDeliveries(t *testing.T) {
	o := newOtel(t)
	e := newWHEnv(t, false)
	wh, err := logout.NewWebhookHandler(logout.WebhookConfig{
		Secrets: []string{e.secret}, Issuer: whIssuer, Store: e.store, Logger: newLogger(e.logSink), TracerProvider: o.tp, MeterProvider: o.mp,
	})
	if err != nil {
		t.Fatal(err)
	}
	d := newDelivery(e.secret, logoutEvent("usr_alice", "ses_1", nil), time.Now())
	ctx, parent := o.tp.Tracer("app").Start(context.Background(), "POST /webhooks/scalekit")
	r := httptest.NewRequest(http.MethodPost, "/webhooks/scalekit", strings.NewReader(string(d.body))).WithContext(ctx)
	r.Header.Set("webhook-id", d.id)
	r.Header.Set("webhook-timestamp", d.timestamp)
	r.Header.Set("webhook-signature", d.signature)
	if got := serve(wh, r).StatusCode; got != http.StatusOK {
		t.Fatalf("delivery: %d", got)
	}
	parent.End()
	span := o.span(t, "logout.webhook")
	if span.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Error("the delivery's span is not a child of the request's")
	}
	if got := spanAttr(span, "logout.delivery.outcome"); got != "verified" {
		t.Errorf("logout.delivery.outcome=%q, want verified", got)
	}
	var children []string
	for _, sp := range o.spans.Ended() {
		if sp.Parent().SpanID() == span.SpanContext().SpanID() {
			children = append(children, sp.Name())
		}
	}
	slices.Sort(children)
	if want := []string{"logout.store.end_sid", "logout.store.remember", "logout.store.seen"}; !slices.Equal(children, want) {
		t.Errorf("the delivery's store calls: %v, want %v", children, want)
	}

	postWebhook(wh, newDelivery(newWebhookSecret(), logoutEvent("usr_bob", "", nil), time.Now()))
	for _, sp := range o.spans.Ended() {
		if sp.Name() == "logout.webhook" && sp != span {
			if got := fmt.Sprint(spanAttr(sp, "logout.delivery.outcome"), "/", spanAttr(sp, "logout.delivery.refused.reason")); got != "refused/signature" {
				t.Errorf("a forged delivery's span says %s, want refused/signature", got)
			}
		}
	}
	o.checkClean(t, "usr_alice", "usr_bob", "ses_1", e.secret, "ada@example.com")
}

// BenchmarkLogoutTelemetry times a logout on a CookieStore (no I/O, so the
// instrumentation's share shows) with telemetry off, with no provider
// installed, and with the SDK installed, sampling every span.
func BenchmarkLogoutTelemetry(b *testing.B) {
	store := newCookieStore(b)
	noops := func(c *logout.Config) {
		c.MeterProvider, c.TracerProvider = metricnoop.NewMeterProvider(), tracenoop.NewTracerProvider()
	}
	sdk := func(c *logout.Config) {
		c.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
		c.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	}
	for _, c := range []struct {
		name   string
		change func(*logout.Config)
	}{{"off", noops}, {"no provider", nil}, {"SDK", sdk}} {
		b.Run(c.name, func(b *testing.B) {
			h, _ := newHandler(b, store, c.change)
			r := logoutRequest(http.MethodPost, signIn(b, h, testSession()))
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(httptest.NewRecorder(), r)
			}
		})
	}
}
