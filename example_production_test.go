// SPDX-License-Identifier: Apache-2.0

package logout_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/endsession/logout"
)

// The code of docs/production.md and of the README's "Running in
// production", each region between "// docs:NAME" and
// "// docs:end" exactly as the documents show it, so that it
// compiles. A test holds the documents to these regions.

// The Redis client a store relies on.
func Example_productionRedisClient() {
	// docs:redis-client
	rdb := redis.NewClient(&redis.Options{
		Addr:                  os.Getenv("REDIS_ADDR"),
		ContextTimeoutEnabled: true,        // the store's deadlines bound every call
		DialTimeout:           time.Second, // each below Config.StoreTimeout (3 s)
		ReadTimeout:           time.Second,
		WriteTimeout:          time.Second,
		PoolSize:              64, // at least the store calls in flight on one instance
		PoolTimeout:           time.Second,
	})
	store := logout.NewRedisStore(rdb)
	// docs:end
	_ = store
}

// Redis Cluster.
func Example_productionRedisCluster() {
	// docs:redis-cluster
	rdb := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:                 strings.Split(os.Getenv("REDIS_CLUSTER_ADDRS"), ","),
		ContextTimeoutEnabled: true,
		DialTimeout:           time.Second,
		ReadTimeout:           time.Second,
		WriteTimeout:          time.Second,
		PoolSize:              64, // per node
	})
	store := logout.NewRedisStore(rdb) // a user's keys share a hash tag: one slot
	// docs:end
	_ = store
}

// Redis Sentinel, with endings that wait for a replica.
func Example_productionRedisSentinel() {
	// docs:redis-sentinel
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:            "logout",
		SentinelAddrs:         strings.Split(os.Getenv("REDIS_SENTINEL_ADDRS"), ","),
		ContextTimeoutEnabled: true,
		DialTimeout:           time.Second,
		ReadTimeout:           time.Second,
		WriteTimeout:          time.Second,
	})
	store := logout.NewRedisStore(rdb)
	store.WaitReplicas = 1 // an ending a replica has not confirmed is a failure, never "done"
	store.WaitTimeout = 500 * time.Millisecond
	// docs:end
	_ = store
}

// Two apps on one Redis.
func Example_productionKeyPrefix() {
	rdb := redis.NewClient(&redis.Options{Addr: os.Getenv("REDIS_ADDR"), ContextTimeoutEnabled: true})
	// docs:key-prefix
	store := logout.NewRedisStore(rdb)
	store.KeyPrefix = "billing:logout:" // the other app keeps "logout:", or its own

	list := logout.NewRevocationList(rdb) // for a RevocableCookieStore
	list.KeyPrefix = "billing:logout:rev:"
	// docs:end
	_ = store
}

// docs:cookie-keys

// cookieKeys reads LOGOUT_COOKIE_KEYS: base64 keys of 32 bytes, separated
// by commas, the newest first. The first seals new cookies; every one opens.
func cookieKeys(env string) ([][]byte, error) {
	var keys [][]byte
	for i, k := range strings.Split(env, ",") {
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(k))
		if err != nil || len(key) != 32 {
			return nil, fmt.Errorf("LOGOUT_COOKIE_KEYS: key %d is not the base64 of 32 bytes", i+1)
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// docs:end

// Cookie keys from the environment.
func Example_productionCookieKeys() {
	rdb := redis.NewClient(&redis.Options{Addr: os.Getenv("REDIS_ADDR"), ContextTimeoutEnabled: true})
	// docs:cookie-store
	keys, err := cookieKeys(os.Getenv("LOGOUT_COOKIE_KEYS"))
	if err != nil {
		log.Fatal(err)
	}
	store, err := logout.NewRevocableCookieStore(logout.NewRevocationList(rdb), keys...)
	if err != nil {
		log.Fatal(err)
	}
	// docs:end
	_ = store
}

// Exporting the metrics to Prometheus.
func Example_productionPrometheus() {
	// docs:prometheus
	exporter, err := prometheus.New() // go.opentelemetry.io/otel/exporters/prometheus
	if err != nil {
		log.Fatal(err)
	}
	otel.SetMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))) // go.opentelemetry.io/otel/sdk/metric
	http.Handle("GET /metrics", promhttp.Handler())                                   // github.com/prometheus/client_golang/prometheus/promhttp
	// docs:end
}

// Shutting down without dropping the backstop's jobs.
func Example_productionShutdown() {
	var h *logout.Handler // from logout.New
	mux := http.NewServeMux()
	// docs:shutdown
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	srv := &http.Server{Addr: ":8080", Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
			log.Fatal(err)
		}
	}()
	<-ctx.Done()

	// Longer than Config.BackstopDelay (10 s), so that the last logouts'
	// jobs run; shorter than the orchestrator's grace period.
	shutdown, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	srv.Shutdown(shutdown) // no new logouts
	h.Close(shutdown)      // then the backstop finishes what they scheduled
	// docs:end
}
