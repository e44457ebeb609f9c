package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// httpMetrics are the request metrics (Options.Registerer). Every label
// is bounded: the method is one of the standard ones or "other", the route
// is the route's name (routeName), never its path, and the status is one
// berth answers.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
	bytesIn  *prometheus.CounterVec
	bytesOut *prometheus.CounterVec
}

// durationBuckets reach from a cached HEAD to a large blob's upload.
var durationBuckets = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}

// newHTTPMetrics registers the request metrics on reg; nil when reg is nil
// (the methods of a nil *httpMetrics do nothing).
func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	if reg == nil {
		return nil
	}
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "berth", Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests answered, by method, route name and status."}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "berth", Subsystem: "http", Name: "request_duration_seconds",
			Help: "Time from a request's arrival to the end of its answer, by method and route name.", Buckets: durationBuckets}, []string{"method", "route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "berth", Subsystem: "http", Name: "requests_in_flight",
			Help: "HTTP requests being served."}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "berth", Subsystem: "http", Name: "request_bytes_total",
			Help: "Bytes of request bodies read, by route name."}, []string{"route"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "berth", Subsystem: "http", Name: "response_bytes_total",
			Help: "Bytes of response bodies sent, by route name."}, []string{"route"}),
	}
	reg.MustRegister(m.requests, m.duration, m.inFlight, m.bytesIn, m.bytesOut)
	return m
}

func (m *httpMetrics) begin() {
	if m != nil {
		m.inFlight.Inc()
	}
}

// end records a request that began; status 0 is a response cut before
// its status was sent.
func (m *httpMetrics) end(method, route string, status int, took time.Duration, in, out int64) {
	if m == nil {
		return
	}
	m.inFlight.Dec()
	method = metricMethod(method)
	m.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(method, route).Observe(took.Seconds())
	m.bytesIn.WithLabelValues(route).Add(float64(in))
	m.bytesOut.WithLabelValues(route).Add(float64(out))
}

// metricMethod is method when it is a standard one, else "other": a client
// chooses the method, and a label must not grow with what clients send.
func metricMethod(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "other"
}

// mgmtNames name the management routes in metrics and the request log.
var mgmtNames = [...]string{
	mgmtUnknown:      "unknown",
	mgmtHistory:      "history",
	mgmtRestore:      "restore",
	mgmtExpiry:       "expiry",
	mgmtRetention:    "retention",
	mgmtNamespace:    "namespace",
	mgmtPurge:        "purge",
	mgmtGCStatus:     "gc_status",
	mgmtUsers:        "users",
	mgmtUser:         "user",
	mgmtUserPassword: "user_password",
	mgmtRobots:       "robots",
	mgmtRobot:        "robot",
	mgmtGrants:       "grants",
	mgmtVisibility:   "visibility",
	mgmtRotateKey:    "rotate_key",
}

// routeName names what rt addresses, never its path: the Kind's name
// ("manifest", "blob", "token"...), and for the management API "mgmt_"
// and the resource ("mgmt_purge", "mgmt_grants"...).
func routeName(rt Route) string {
	if rt.Kind != KindManagement {
		return rt.Kind.String()
	}
	k := parseMgmtRoute(rt.Ref).Kind
	if int(k) < 0 || int(k) >= len(mgmtNames) || mgmtNames[k] == "" {
		k = mgmtUnknown
	}
	return "mgmt_" + mgmtNames[k]
}
