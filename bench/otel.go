// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/endsession/logout"
)

// otelRow names the logout row with the OpenTelemetry SDK installed.
const otelRow = "logout.RedisStore with an OTel SDK installed"

// otelLogout is logout.RedisStore with the OpenTelemetry SDK installed as an
// app installs it: every measurement aggregated for a reader (which, as a
// Prometheus exporter's, collects only when scraped), and every span sampled
// and handed to a batching processor whose exporter drops them. Against the
// plain logout.RedisStore row it shows what the instrumentation costs once
// an SDK is there; without one it costs nothing (the package's tests count
// the allocations).
func otelLogout(rdb *redis.Client, users *atomic.Int64) system {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	h, err := logout.New(context.Background(), logout.Config{
		Store: logout.NewRedisStore(rdb), EndSessionEndpoint: endSession, PostLogoutRedirectURI: postLogout, Logger: quiet,
		MeterProvider: mp, TracerProvider: tp,
	})
	check(err)
	return system{otelRow, ours, h, func() []*http.Cookie {
		n := users.Add(1)
		return signIn(h, logout.Session{
			Issuer: "https://acme.scalekit.dev", Subject: fmt.Sprintf("usr_%d", n), SessionID: fmt.Sprintf("ses_%d", n), Email: "ada@example.com",
			IDToken: idToken, AccessToken: accessToken, RefreshToken: "rt_0123456789",
		})
	}}
}
