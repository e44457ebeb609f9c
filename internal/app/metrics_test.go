package app

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
)

// TestHTTPMetricsScraped: after a push and a pull through the server,
// /metrics holds the requests by method, route name and status, their
// durations, the bytes in and out by route, and the requests in flight;
// no label holds a path.
func TestHTTPMetricsScraped(t *testing.T) {
	for _, b := range sqltest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			cfg.Metrics = true
			if b.Name != "sqlite" {
				cfg.DB = b.DSN(t)
			}
			base, _ := start(t, cfg, io.Discard)
			manifest := pushImage(t, base, "library/hello", "v1")
			resp := do(t, http.MethodGet, base+"/v2/library/hello/manifests/v1", "", nil)
			wantStatus(t, resp, http.StatusOK)
			layer := []byte("layer bytes of library/hello:v1")
			wantStatus(t, do(t, http.MethodGet, base+"/v2/library/hello/blobs/"+sha(layer), "", nil), http.StatusOK)

			status, body := get(t, base+"/metrics")
			if status != http.StatusOK {
				t.Fatalf("GET /metrics: got %d, want 200", status)
			}
			n := strconv.Itoa(len(manifest))
			for _, want := range []string{
				`berth_http_requests_total{method="PUT",route="manifest",status="201"} 1`,
				`berth_http_requests_total{method="GET",route="manifest",status="200"} 1`,
				`berth_http_requests_total{method="GET",route="blob",status="200"} 1`,
				`berth_http_requests_total{method="POST",route="uploads",status="202"} 2`,
				`berth_http_requests_total{method="PUT",route="upload",status="201"} 2`,
				`berth_http_request_duration_seconds_count{method="PUT",route="manifest"} 1`,
				`berth_http_request_bytes_total{route="manifest"} ` + n,
				`berth_http_response_bytes_total{route="blob"} ` + strconv.Itoa(len(layer)),
				`berth_http_response_bytes_total{route="manifest"} ` + n,
				`berth_http_requests_in_flight 0`,
				// The pushes' write transactions (sqlstore's metrics).
				`# TYPE berth_db_write_wait_seconds histogram`,
				`# TYPE berth_db_write_seconds histogram`,
			} {
				if !strings.Contains(body, "\n"+want+"\n") {
					t.Errorf("/metrics lacks %s", want)
				}
			}
			for _, l := range strings.Split(body, "\n") {
				if strings.HasPrefix(l, "berth_http_") && strings.Contains(l, "hello") {
					t.Errorf("a label holds a path: %s", l)
				}
			}
		})
	}
}
