// SPDX-License-Identifier: Apache-2.0

// Telemetry: the OpenTelemetry instruments and tracer of a handler, built once
// so that a flow pays nothing for them when no provider is installed, and the
// calls the flows make to report.

package logout

import (
	"context"
	"net/http"
	"reflect"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// telemetry is one handler's instruments, tracer and precomputed attribute
// sets. A nil *telemetry is telemetry turned off (both providers no-ops):
// every method then returns at once.
type telemetry struct {
	tracer trace.Tracer // nil: no spans
	// tracerIdle and meterIdle are OpenTelemetry's global providers as
	// they were when the handler was built with none of its own, if no SDK
	// was installed behind them yet: until one is, the handler starts no
	// span and measures nothing.
	tracerIdle trace.TracerProvider
	meterIdle  metric.MeterProvider
	metered    bool
	meter      metric.Meter
	gauges     metric.Registration // the backstop's, set once by New

	logouts      metric.Int64Counter
	sessionsEnd  metric.Int64Counter
	storeDur     metric.Float64Histogram
	backstopJobs metric.Int64Counter
	deliveries   metric.Int64Counter
	refreshes    metric.Int64Counter
	providerDur  metric.Float64Histogram

	logoutOpts   [2][numLogoutOutcomes][]metric.AddOption // by everywhere
	logoutAttrs  [2][numLogoutOutcomes][]attribute.KeyValue
	endOpts      [len(endReasons)][]metric.AddOption
	storeOpts    [numStoreOps][numStoreOutcomes][]metric.RecordOption
	backstopOpts [numBackstopEvents][]metric.AddOption
	deliveryOpts [numDeliveryKinds][numDeliveryOutcomes][]metric.AddOption
	deliveryAttr [numDeliveryOutcomes][]attribute.KeyValue
	refreshOpts  [numRefreshOutcomes][]metric.AddOption
	providerOpts [numProviderOps][numProviderOutcomes][]metric.RecordOption
}

// endReasons are the reasons logout.sessions.ended counts by.
var endReasons = [...]EndReason{
	EndLogout, EndEverywhere, EndOtherDevices, EndByUser, EndBackChannel,
	EndWebhook, EndRefreshRefused, EndIdle, EndExpired, EndReplaced,
}

// newTelemetry builds the instruments on mp and the tracer on tp; nil means
// OpenTelemetry's global provider. With both no-ops it returns nil.
//
// The global providers are read here, once. Before an app installs its SDK
// they are placeholders that forward to the SDK once it is installed, so a
// handler built before otel.SetMeterProvider reports to it all the same;
// until then it measures nothing and starts no span. (OpenTelemetry's eBPF
// auto-instrumentation, which hooks the placeholders, therefore sees no span
// from this package: give it a TracerProvider.)
func newTelemetry(mp metric.MeterProvider, tp trace.TracerProvider) *telemetry {
	t := &telemetry{}
	if mp == nil {
		if mp = otel.GetMeterProvider(); isGlobalPlaceholder(mp) {
			t.meterIdle = mp
		}
	}
	if tp == nil {
		if tp = otel.GetTracerProvider(); isGlobalPlaceholder(tp) {
			t.tracerIdle = tp
		}
	}
	_, noMeter := mp.(metricnoop.MeterProvider)
	_, noTracer := tp.(tracenoop.TracerProvider)
	if noMeter && noTracer {
		return nil
	}
	if !noTracer {
		t.tracer = tp.Tracer(instrumentationScope)
	}
	if !noMeter {
		t.metered = true
		t.meter = mp.Meter(instrumentationScope)
		t.instruments()
	}
	return t
}

// isGlobalPlaceholder reports whether p is the provider OpenTelemetry's
// global getters return before any is installed.
func isGlobalPlaceholder(p any) bool {
	t := reflect.TypeOf(p)
	return t != nil && t.Kind() == reflect.Pointer && t.Elem().PkgPath() == "go.opentelemetry.io/otel/internal/global"
}

// instruments creates the instruments and every attribute set they are
// given, so that recording a measurement allocates nothing.
func (t *telemetry) instruments() {
	m := t.meter
	t.logouts = counter(m, metricLogouts, "{logout}", "Logout requests, by outcome.")
	t.sessionsEnd = counter(m, metricSessionsEnded, "{session}", "App sessions ended, by reason, as OnSessionEnd hears of them.")
	t.storeDur = histogram(m, metricStoreDuration, "Duration of session store calls, by operation and outcome.")
	t.backstopJobs = counter(m, metricBackstopJobs, "{job}", "Backstop jobs, by event: scheduled, then ended, done, failed or dropped.")
	t.deliveries = counter(m, metricDeliveries, "{delivery}", "Webhook and back-channel logout deliveries received, by outcome.")
	t.refreshes = counter(m, metricRefreshes, "{refresh}", "Token refreshes, by outcome.")
	t.providerDur = histogram(m, metricProviderCalls, "Duration of calls to the provider's session API and token endpoint, by operation and outcome.")

	for e, everywhere := range [2]bool{false, true} {
		for o, names := range logoutOutcomeNames {
			kv := []attribute.KeyValue{attribute.String(attrLogoutOutcome, names[0]), attribute.Bool(attrEverywhere, everywhere)}
			if names[1] != "" {
				kv = append(kv, attribute.String(attrLogoutReason, names[1]))
			}
			t.logoutAttrs[e][o] = kv
			t.logoutOpts[e][o] = addOpts(kv...)
		}
	}
	for i, r := range endReasons {
		t.endOpts[i] = addOpts(attribute.String(attrEndReason, string(r)))
	}
	for op, opName := range storeOpNames {
		for o, oName := range storeOutcomeNames {
			t.storeOpts[op][o] = recordOpts(attribute.String(attrStoreOp, opName), attribute.String(attrStoreOutcome, oName))
		}
	}
	for ev, name := range backstopEventNames {
		t.backstopOpts[ev] = addOpts(attribute.String(attrBackstopEvent, name))
	}
	for o, names := range deliveryOutcomeNames {
		kv := []attribute.KeyValue{attribute.String(attrDeliveryOutcome, names[0])}
		if names[1] != "" {
			kv = append(kv, attribute.String(attrDeliveryReason, names[1]))
		}
		t.deliveryAttr[o] = kv
		for k, kind := range deliveryKindNames {
			t.deliveryOpts[k][o] = addOpts(append(kv[:len(kv):len(kv)], attribute.String(attrDeliveryKind, kind))...)
		}
	}
	for o, name := range refreshOutcomeNames {
		t.refreshOpts[o] = addOpts(attribute.String(attrRefreshOutcome, name))
	}
	for op, opName := range providerOpNames {
		for o, oName := range providerOutcomeNames {
			t.providerOpts[op][o] = recordOpts(attribute.String(attrProviderOp, opName), attribute.String(attrProviderOutcome, oName))
		}
	}
}

func counter(m metric.Meter, name, unit, desc string) metric.Int64Counter {
	c, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
	if err != nil {
		otel.Handle(err)
		if c == nil {
			return metricnoop.Int64Counter{}
		}
	}
	return c
}

func histogram(m metric.Meter, name, desc string) metric.Float64Histogram {
	h, err := m.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc), metric.WithExplicitBucketBoundaries(durationBuckets...))
	if err != nil {
		otel.Handle(err)
		if h == nil {
			return metricnoop.Float64Histogram{}
		}
	}
	return h
}

func addOpts(kv ...attribute.KeyValue) []metric.AddOption {
	return []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(kv...))}
}

func recordOpts(kv ...attribute.KeyValue) []metric.RecordOption {
	return []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(kv...))}
}

// metering reports whether measurements go anywhere.
func (t *telemetry) metering() bool {
	return t != nil && t.metered && (t.meterIdle == nil || otel.GetMeterProvider() != t.meterIdle)
}

// tracing reports whether spans go anywhere.
func (t *telemetry) tracing() bool {
	return t != nil && t.tracer != nil && (t.tracerIdle == nil || otel.GetTracerProvider() != t.tracerIdle)
}

// span starts a span under ctx, or returns ctx as it is and noSpan.
func (t *telemetry) span(ctx context.Context, name string, opts []trace.SpanStartOption) (context.Context, trace.Span) {
	if !t.tracing() {
		return ctx, noSpan
	}
	return t.tracer.Start(ctx, name, opts...)
}

// request starts the span of a request this package serves, under the
// request's own span when it has one (otelhttp's, say), and returns the
// request carrying it.
func (t *telemetry) request(r *http.Request, name string) (*http.Request, trace.Span) {
	if !t.tracing() {
		return r, noSpan
	}
	ctx, span := t.tracer.Start(r.Context(), name, internalSpan...)
	return r.WithContext(ctx), span
}

// logout counts a logout request and gives its span the outcome.
func (t *telemetry) logout(ctx context.Context, span trace.Span, everywhere bool, o logoutOutcome) {
	if t == nil {
		return
	}
	e := 0
	if everywhere {
		e = 1
	}
	if t.metering() {
		t.logouts.Add(ctx, 1, t.logoutOpts[e][o]...)
	}
	if span.IsRecording() {
		span.SetAttributes(t.logoutAttrs[e][o]...)
		if o == logoutStoreError {
			span.SetStatus(codes.Error, "session store failed")
		}
	}
}

// sessionEnded counts one SessionEnd.
func (t *telemetry) sessionEnded(ctx context.Context, reason EndReason) {
	if !t.metering() {
		return
	}
	for i, r := range endReasons {
		if r == reason {
			t.sessionsEnd.Add(ctx, 1, t.endOpts[i]...)
			return
		}
	}
}

// storeCall times one store call and spans it. Start it with
// telemetry.store and end it with the call's error.
type storeCall struct {
	t     *telemetry
	ctx   context.Context
	op    storeOp
	start time.Time
	span  trace.Span
}

func (t *telemetry) store(ctx context.Context, op storeOp) (context.Context, storeCall) {
	c := storeCall{t: t, ctx: ctx, op: op, span: noSpan}
	if t == nil {
		return ctx, c
	}
	if t.tracing() {
		ctx, c.span = t.tracer.Start(ctx, storeSpanNames[op], internalSpan...)
		c.ctx = ctx
	}
	if t.metering() {
		c.start = time.Now()
	}
	return ctx, c
}

func (c storeCall) end(err error) {
	if c.t == nil {
		return
	}
	o := storeOutcomeOf(err)
	if !c.start.IsZero() {
		c.t.storeDur.Record(c.ctx, time.Since(c.start).Seconds(), c.t.storeOpts[c.op][o]...)
	}
	if c.span.IsRecording() {
		c.span.SetAttributes(attribute.String(attrStoreOp, storeOpNames[c.op]), attribute.String(attrStoreOutcome, storeOutcomeNames[o]))
		if o > storeNoSession {
			// The outcome, never the error's text: a store's errors may
			// name keys, and nothing here may carry a handle.
			c.span.SetStatus(codes.Error, storeOutcomeNames[o])
		}
	}
	c.span.End()
}

// backstop counts one backstop event.
func (t *telemetry) backstop(ev backstopEvent) {
	if t.metering() {
		t.backstopJobs.Add(context.Background(), 1, t.backstopOpts[ev]...)
	}
}

// observeBackstop reports the backstop's queue through stats whenever the
// app's reader collects, until stopObserving. Call it once, from New.
func (t *telemetry) observeBackstop(stats func(context.Context) (int, time.Duration, error)) {
	if t == nil || !t.metered {
		return
	}
	depth, err := t.meter.Int64ObservableGauge(metricBackstopDepth, metric.WithUnit("{job}"),
		metric.WithDescription("Backstop jobs waiting or running."))
	if err != nil {
		otel.Handle(err)
		return
	}
	age, err := t.meter.Float64ObservableGauge(metricBackstopAge, metric.WithUnit("s"),
		metric.WithDescription("How long the oldest backstop job past its grace period has waited: 0 when none has."))
	if err != nil {
		otel.Handle(err)
		return
	}
	reg, err := t.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		n, oldest, err := stats(ctx)
		if err != nil {
			return err
		}
		o.ObserveInt64(depth, int64(n))
		o.ObserveFloat64(age, oldest.Seconds())
		return nil
	}, depth, age)
	if err != nil {
		otel.Handle(err)
		return
	}
	t.gauges = reg
}

// stopObserving stops reporting the backstop's queue: a closed handler's
// queue is no longer the app's.
func (t *telemetry) stopObserving() {
	if t != nil && t.gauges != nil {
		t.gauges.Unregister()
	}
}

// delivery counts a webhook or back-channel delivery and gives its span the
// outcome.
func (t *telemetry) delivery(ctx context.Context, span trace.Span, kind deliveryKind, o deliveryOutcome) {
	if t == nil {
		return
	}
	if t.metering() {
		t.deliveries.Add(ctx, 1, t.deliveryOpts[kind][o]...)
	}
	if span.IsRecording() {
		span.SetAttributes(t.deliveryAttr[o]...)
		if o == deliveryStoreUnavailable || o == deliveryKeyUnavailable {
			span.SetStatus(codes.Error, deliveryOutcomeNames[o][0])
		}
	}
}

// refresh counts a refresh and gives its span the outcome.
func (t *telemetry) refresh(ctx context.Context, span trace.Span, res refreshResult) {
	if t == nil {
		return
	}
	o := refreshOutcomeOf(res)
	if t.metering() {
		t.refreshes.Add(ctx, 1, t.refreshOpts[o]...)
	}
	if span.IsRecording() {
		span.SetAttributes(attribute.String(attrRefreshOutcome, refreshOutcomeNames[o]))
		if o == refreshFailed {
			span.SetStatus(codes.Error, "refresh failed")
		}
	}
}

// providerCall times one call to the provider and spans it, as an HTTP
// client call. Start it with telemetry.provider and end it with the answer's
// status (0 for none) and the call's error.
type providerCall struct {
	t     *telemetry
	ctx   context.Context
	op    providerOp
	start time.Time
	span  trace.Span
}

func (t *telemetry) provider(ctx context.Context, op providerOp, method, host string) (context.Context, providerCall) {
	c := providerCall{t: t, ctx: ctx, op: op, span: noSpan}
	if t == nil {
		return ctx, c
	}
	if t.tracing() {
		ctx, c.span = t.tracer.Start(ctx, providerSpanNames[op], clientSpan...)
		c.ctx = ctx
		c.span.SetAttributes(attribute.String("http.request.method", method), attribute.String("server.address", host),
			attribute.String("url.template", providerRoutes[op]), attribute.String(attrProviderOp, providerOpNames[op]))
	}
	if t.metering() {
		c.start = time.Now()
	}
	return ctx, c
}

func (c providerCall) end(status int, err error) {
	if c.t == nil {
		return
	}
	o := providerOutcomeOf(status, err)
	if !c.start.IsZero() {
		c.t.providerDur.Record(c.ctx, time.Since(c.start).Seconds(), c.t.providerOpts[c.op][o]...)
	}
	if c.span.IsRecording() {
		if status != 0 {
			c.span.SetAttributes(attribute.Int("http.response.status_code", status))
		}
		c.span.SetAttributes(attribute.String(attrProviderOutcome, providerOutcomeNames[o]))
		if o > providerNotFound {
			c.span.SetStatus(codes.Error, providerOutcomeNames[o])
		}
	}
	c.span.End()
}
