package app

import "net/http"

// metricsHandler serves Prometheus metrics, or is nil when the build has no
// exporter.
//
// TODO(metrics): go.sum lacks client_golang's dependencies (client_model,
// common, procfs, perks, xxhash, protobuf), so promhttp cannot be imported
// yet. After `go get github.com/prometheus/client_golang/prometheus/promhttp@v1.25.0`:
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
//	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
//
// and pass reg to the packages that export metrics through their Options.
func metricsHandler() http.Handler { return nil }
