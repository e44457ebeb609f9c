package api_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/berth/berth/internal/api"
)

// requestLine finds the one request log line of method and uri.
func requestLine(t *testing.T, logs string, method, uri string) map[string]any {
	t.Helper()
	var found []map[string]any
	for _, l := range logLines(t, logs) {
		if l["msg"] == "request" && l["method"] == method && l["uri"] == uri {
			found = append(found, l)
		}
	}
	if len(found) != 1 {
		t.Fatalf("request log lines of %s %s: got %d, want 1; log:\n%s", method, uri, len(found), logs)
	}
	return found[0]
}

// TestRequestLog: one line per request with the bytes received and sent,
// the route's name, the client, the request id (also in the response) and
// the user agent; a push's existence probe (HEAD answered 404) at debug
// with result=absent and no error; a failed request at info with its error.
func TestRequestLog(t *testing.T) {
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) {
			var logs syncBuffer
			e := newEnvWith(t, backend, api.Options{Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
			const repo = "demo/log"
			b := randomBytes(5000)
			d := digest.FromBytes(b).String()

			resp, body := e.do("HEAD", "/v2/"+repo+"/blobs/"+d, map[string]string{"User-Agent": "containerd/2.0"}, nil)
			e.expect(resp, body, http.StatusNotFound)
			e.pushBlob(repo, b)
			resp, body = e.do("GET", "/v2/"+repo+"/blobs/"+d, map[string]string{"X-Request-Id": "ci-job-42/step-3"}, nil)
			e.expect(resp, body, http.StatusOK)
			if got := resp.Header.Get("X-Request-Id"); got != "ci-job-42/step-3" {
				t.Errorf("X-Request-Id of the GET: got %q, want the client's", got)
			}
			resp, body = e.do("GET", "/v2/"+repo+"/manifests/missing", nil, nil)
			e.expect(resp, body, http.StatusNotFound)
			missingID := resp.Header.Get("X-Request-Id")

			l := requestLine(t, logs.String(), "HEAD", "/v2/"+repo+"/blobs/"+d)
			if l["level"] != "DEBUG" || l["result"] != "absent" || l["error"] != nil || l["user_agent"] != "containerd/2.0" || l["route"] != "blob" {
				t.Errorf("probe line: got %v, want level DEBUG, result absent, no error, user_agent containerd/2.0, route blob", l)
			}
			l = requestLine(t, logs.String(), "POST", "/v2/"+repo+"/blobs/uploads/?digest="+d)
			if jsonNumber(l["bytes_in"]) != "5000" || jsonNumber(l["status"]) != "201" || l["level"] != "INFO" || l["route"] != "uploads" {
				t.Errorf("upload line: got %v, want bytes_in 5000, status 201 at INFO, route uploads", l)
			}
			if l["client"] != "127.0.0.1" || l["user_agent"] != "Go-http-client/1.1" || l["bytes"] != nil {
				t.Errorf("upload line: got %v, want client 127.0.0.1, user_agent Go-http-client/1.1 and no bytes attribute", l)
			}
			l = requestLine(t, logs.String(), "GET", "/v2/"+repo+"/blobs/"+d)
			if jsonNumber(l["bytes_out"]) != "5000" || jsonNumber(l["bytes_in"]) != "0" || l["request_id"] != "ci-job-42/step-3" {
				t.Errorf("download line: got %v, want bytes_out 5000, bytes_in 0, request_id ci-job-42/step-3", l)
			}
			l = requestLine(t, logs.String(), "GET", "/v2/"+repo+"/manifests/missing")
			if l["level"] != "INFO" || !strings.Contains(l["error"].(string), "manifest") || l["request_id"] != missingID || missingID == "" {
				t.Errorf("failed GET line: got %v, want level INFO, an error naming the manifest, request_id %q (the response's)", l, missingID)
			}
		})
	}
}

// TestRequestID: a sane X-Request-Id from the client is echoed and
// logged; a missing, overlong or non-ASCII one is replaced by a fresh id,
// different for every request.
func TestRequestID(t *testing.T) {
	var logs syncBuffer
	e := newEnvWith(t, backendSQLite, api.Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	seen := map[string]bool{}
	for _, tt := range []struct {
		name, sent string
		echoed     bool
	}{
		{"uuid", "0b7e2f3c-64a1-4b1e-9d5e-1c2f3a4b5c6d", true},
		{"printable with spaces", "job 7 / push #3", true},
		{"128 characters", strings.Repeat("a", 128), true},
		{"none", "", false},
		{"none again", "", false},
		{"129 characters", strings.Repeat("a", 129), false},
		{"non-ASCII", "café", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tt.sent != "" {
				hdr["X-Request-Id"] = tt.sent
			}
			resp, body := e.do("GET", "/v2/", hdr, nil)
			e.expect(resp, body, http.StatusOK)
			got := resp.Header.Get("X-Request-Id")
			switch {
			case tt.echoed && got != tt.sent:
				t.Errorf("X-Request-Id: got %q, want the client's %q", got, tt.sent)
			case !tt.echoed && (got == "" || got == tt.sent || len(got) > 128 || seen[got]):
				t.Errorf("X-Request-Id: got %q, want a fresh id (sent %q; seen %v)", got, tt.sent, seen)
			}
			seen[got] = true
			lines := logLines(t, logs.String())
			if last := lines[len(lines)-1]; last["request_id"] != got {
				t.Errorf("logged request_id: got %v, want %q", last["request_id"], got)
			}
		})
	}
}

// TestTrustedProxies: the client of a request is its connection's peer,
// unless the peer is a trusted proxy: then it is the rightmost address of
// X-Forwarded-For that is not a trusted proxy. A client's own
// X-Forwarded-For, sent directly or left of what trusted proxies appended,
// is ignored.
func TestTrustedProxies(t *testing.T) {
	reg := newEnv(t, backendSQLite).reg
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, tt := range []struct {
		name    string
		trusted []netip.Prefix
		peer    string
		xff     []string
		want    string
	}{
		{"no trusted proxies", nil, "10.0.0.5:4000", []string{"203.0.113.9"}, "10.0.0.5"},
		{"untrusted peer's header ignored", trusted, "192.0.2.9:4000", []string{"203.0.113.9"}, "192.0.2.9"},
		{"trusted peer's header used", trusted, "10.0.0.5:4000", []string{"203.0.113.9"}, "203.0.113.9"},
		{"trusted peer without a header", trusted, "10.0.0.5:4000", nil, "10.0.0.5"},
		{"spoofed entries left of the client", trusted, "10.0.0.5:4000", []string{"6.6.6.6, 203.0.113.9, 10.0.0.7"}, "203.0.113.9"},
		{"header over several lines", trusted, "10.0.0.5:4000", []string{"6.6.6.6", "203.0.113.9"}, "203.0.113.9"},
		{"only trusted hops", trusted, "10.0.0.5:4000", []string{"10.1.1.1, 10.0.0.7"}, "10.1.1.1"},
		{"garbage stops at the last trusted hop", trusted, "10.0.0.5:4000", []string{"203.0.113.9, bogus, 10.0.0.7"}, "10.0.0.7"},
		{"entry with a port", trusted, "10.0.0.5:4000", []string{"203.0.113.9:5555"}, "203.0.113.9"},
		{"IPv6 client", trusted, "10.0.0.5:4000", []string{"[2001:db8::1]:80"}, "2001:db8::1"},
		{"IPv6 loopback proxy", trusted, "[::1]:4000", []string{"198.51.100.4"}, "198.51.100.4"},
		{"IPv4-mapped peer", trusted, "[::ffff:10.0.0.5]:4000", []string{"198.51.100.4"}, "198.51.100.4"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			h := api.New(reg, api.Options{TrustedProxies: tt.trusted, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
			r := httptest.NewRequest("GET", "/v2/", nil)
			r.RemoteAddr = tt.peer
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusOK {
				t.Fatalf("GET /v2/: got %d, want 200", w.Code)
			}
			lines := logLines(t, logs.String())
			if len(lines) != 1 || lines[0]["client"] != tt.want {
				t.Errorf("logged client: got %v, want %q", lines, tt.want)
			}
		})
	}
}

// TestHTTPMetrics: requests are counted by method, route name and
// status; bytes in and out by route name; durations by method and route;
// the in-flight gauge is back to 0 after them. A method outside the
// standard set is counted as "other".
func TestHTTPMetrics(t *testing.T) {
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			e := newEnvWith(t, backend, api.Options{Registerer: reg})
			const repo = "demo/metrics"
			b := randomBytes(3000)
			d := e.pushBlob(repo, b)
			resp, body := e.do("GET", "/v2/"+repo+"/blobs/"+d.String(), nil, nil)
			e.expect(resp, body, http.StatusOK)
			resp, body = e.do("HEAD", "/v2/"+repo+"/manifests/latest", nil, nil)
			e.expect(resp, body, http.StatusNotFound)
			resp, body = e.do("PURGE", "/v2/"+repo+"/manifests/latest", nil, nil)
			e.expect(resp, body, http.StatusMethodNotAllowed)
			resp, body = e.do("GET", "/berth/v1/gc/status", nil, nil)
			e.expect(resp, body, http.StatusNotImplemented)

			want := `
# HELP berth_http_request_bytes_total Bytes of request bodies read, by route name.
# TYPE berth_http_request_bytes_total counter
berth_http_request_bytes_total{route="blob"} 0
berth_http_request_bytes_total{route="manifest"} 0
berth_http_request_bytes_total{route="mgmt_gc_status"} 0
berth_http_request_bytes_total{route="uploads"} 3000
# HELP berth_http_requests_in_flight HTTP requests being served.
# TYPE berth_http_requests_in_flight gauge
berth_http_requests_in_flight 0
# HELP berth_http_requests_total HTTP requests answered, by method, route name and status.
# TYPE berth_http_requests_total counter
berth_http_requests_total{method="GET",route="blob",status="200"} 1
berth_http_requests_total{method="GET",route="mgmt_gc_status",status="501"} 1
berth_http_requests_total{method="HEAD",route="manifest",status="404"} 1
berth_http_requests_total{method="POST",route="uploads",status="201"} 1
berth_http_requests_total{method="other",route="manifest",status="405"} 1
`
			if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "berth_http_requests_total", "berth_http_request_bytes_total", "berth_http_requests_in_flight"); err != nil {
				t.Error(err)
			}
			if got, err := testutil.GatherAndCount(reg, "berth_http_request_duration_seconds"); err != nil || got != 5 {
				t.Errorf("duration series: got %d (%v), want 5 (one per method and route)", got, err)
			}
			out, err := testutil.GatherAndLint(reg)
			if err != nil || len(out) > 0 {
				t.Errorf("lint: %v %v", out, err)
			}
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			for _, mf := range mfs {
				if mf.GetName() != "berth_http_response_bytes_total" {
					continue
				}
				for _, m := range mf.GetMetric() {
					if m.GetLabel()[0].GetValue() == "blob" && m.GetCounter().GetValue() < 3000 {
						t.Errorf("response bytes of blob: got %v, want at least the 3000 of the GET", m.GetCounter().GetValue())
					}
				}
			}
		})
	}
}
