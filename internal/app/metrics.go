package app

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/berth/berth/internal/registry"
)

// newMetrics returns a dedicated Prometheus registry holding the Go runtime
// and process collectors, and the /metrics handler over it. The packages
// that export metrics register theirs through their Options (gc.Options
// Registerer). A dedicated registry, rather than the global default, keeps
// two servers in one test process from colliding.
func newMetrics() (*prometheus.Registry, http.Handler) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// usageScrapeTimeout bounds the reads of one scrape's usage gauges.
const usageScrapeTimeout = 5 * time.Second

// otherNamespaces is the namespace label of what the namespaces past the
// largest hold together; no namespace is named so (names start with a
// letter or a digit).
const otherNamespaces = "_other"

// usageCollector exports the usage counters (docs/design/usage.md, "Reading
// usage"), read at scrape time in one snapshot: berth_usage_bytes, what
// the registry holds, and berth_namespace_usage_bytes for the top largest
// namespaces, the others summed under namespace="_other", so that 100k
// namespaces do not become 100k series.
type usageCollector struct {
	reg       *registry.Registry
	top       int
	log       *slog.Logger
	registry  *prometheus.Desc
	namespace *prometheus.Desc
}

func newUsageCollector(reg *registry.Registry, top int, log *slog.Logger) *usageCollector {
	return &usageCollector{reg: reg, top: top, log: log,
		registry: prometheus.NewDesc("berth_usage_bytes",
			"Bytes the registry holds: its manifests and the distinct blobs they reference, each blob once.", nil, nil),
		namespace: prometheus.NewDesc("berth_namespace_usage_bytes",
			"Bytes a namespace holds (each blob once in it), for the largest namespaces; _other sums the rest.", []string{"namespace"}, nil),
	}
}

func (c *usageCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.registry
	ch <- c.namespace
}

// Collect reads the counters; a failed read is logged and leaves the
// gauges out of this scrape rather than failing the whole scrape.
func (c *usageCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), usageScrapeTimeout)
	defer cancel()
	o, err := c.reg.UsageOverview(ctx, c.top)
	if err != nil {
		c.log.Warn("metrics: reading the usage counters", "err", err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.registry, prometheus.GaugeValue, float64(o.Registry.Bytes))
	for _, n := range o.Top {
		ch <- prometheus.MustNewConstMetric(c.namespace, prometheus.GaugeValue, float64(n.Bytes), n.Scope)
	}
	ch <- prometheus.MustNewConstMetric(c.namespace, prometheus.GaugeValue, float64(o.Others.Bytes), otherNamespaces)
}
