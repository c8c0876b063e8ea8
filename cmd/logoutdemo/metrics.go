// SPDX-License-Identifier: Apache-2.0

// The OpenTelemetry SDK and its Prometheus exporter, served at /metrics.

package main

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// newMetrics installs what an app adds to export the package's metrics: the
// OpenTelemetry SDK with a Prometheus exporter, served at /metrics. The
// demo keeps its own registry and hands the provider to each handler, so
// that demos started side by side (as the tests do) count apart; an app
// with one of each uses the defaults and otel.SetMeterProvider, as the
// README shows.
func newMetrics() (*sdkmetric.MeterProvider, http.Handler, func(), error) {
	reg := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, nil, nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	return mp, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), func() { mp.Shutdown(context.Background()) }, nil
}
