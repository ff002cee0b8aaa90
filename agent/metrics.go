package agent

import (
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/go-metrics"
	prometheussink "github.com/hashicorp/go-metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// telemetry is the agent's metrics sinks. Raft, memberlist and serf write
// to the same global go-metrics registry (the binary is built with the
// hashicorpmetrics tag so that their compat imports resolve to it).
type telemetry struct {
	inmem *metrics.InmemSink
	prom  http.Handler // nil unless prometheus_metrics is on
}

func setupTelemetry(cfg *Config) (*telemetry, error) {
	t := &telemetry{inmem: metrics.NewInmemSink(10*time.Second, time.Minute)}
	sinks := metrics.FanoutSink{t.inmem}
	if cfg.Telemetry != nil && cfg.Telemetry.PrometheusMetrics {
		reg := prometheus.NewRegistry()
		sink, err := prometheussink.NewPrometheusSinkFrom(prometheussink.PrometheusOpts{
			Expiration: time.Minute, Registerer: reg, Name: "skiff",
		})
		if err != nil {
			return nil, fmt.Errorf("prometheus metrics: %w", err)
		}
		sinks = append(sinks, sink)
		t.prom = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	}
	mc := metrics.DefaultConfig("skiff")
	mc.EnableHostname = false
	mc.EnableRuntimeMetrics = true
	if _, err := metrics.NewGlobal(mc, sinks); err != nil {
		return nil, fmt.Errorf("set up metrics: %w", err)
	}
	return t, nil
}

// metrics serves GET /v1/metrics: the in-memory sink as JSON (Nomad's
// shape), or Prometheus text with ?format=prometheus.
func (a *Agent) metrics(w http.ResponseWriter, r *http.Request) (any, error) {
	if r.URL.Query().Get("format") == "prometheus" {
		if a.telemetry.prom == nil {
			return nil, badRequest("Prometheus metrics are off; set telemetry { prometheus_metrics = true } in the agent config")
		}
		a.telemetry.prom.ServeHTTP(w, r)
		return nil, nil
	}
	return a.telemetry.inmem.DisplayMetrics(w, r)
}
