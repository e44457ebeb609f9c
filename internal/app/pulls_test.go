package app

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
)

// TestServeRecordsPulls: serve records a pull by tag, counts it in
// /metrics, and the tag's history shows it after the server stopped.
func TestServeRecordsPulls(t *testing.T) {
	for _, b := range sqltest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			cfg.Metrics = true
			if b.Name != "sqlite" {
				cfg.DB = b.DSN(t)
			}
			base, stop := start(t, cfg, io.Discard)
			pushImage(t, base, "library/hello", "v1")
			wantStatus(t, do(t, http.MethodHead, base+"/v2/library/hello/manifests/v1", "", nil), http.StatusOK)
			deadline := time.Now().Add(10 * time.Second)
			for {
				_, body := get(t, base+"/metrics")
				if strings.Contains(body, "\nberth_tag_pulls_recorded_total 1\n") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("/metrics lacks berth_tag_pulls_recorded_total 1:\n%s", body)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			svc, err := OpenServices(t.Context(), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer svc.Close(t.Context())
			h, err := svc.Registry.TagHistory(t.Context(), "library/hello", "v1")
			if err != nil {
				t.Fatal(err)
			}
			if len(h.Lifetimes) != 1 || h.Lifetimes[0].PulledAt == nil {
				t.Errorf("history of v1 after a HEAD: got %+v, want its pull recorded", h.Lifetimes)
			}
		})
	}
}
