package app

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
)

// TestUsageMetrics: /metrics holds berth_usage_bytes, what the registry
// holds (the config every image shares counted once), and
// berth_namespace_usage_bytes for the metrics_usage_namespaces largest
// namespaces, the others summed under namespace="_other".
func TestUsageMetrics(t *testing.T) {
	for _, b := range sqltest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			cfg.Metrics = true
			cfg.MetricsUsageNamespaces = 1
			if b.Name != "sqlite" {
				cfg.DB = b.DSN(t)
			}
			base, _ := start(t, cfg, io.Discard)
			cfgBlob := int64(len(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`))
			held := map[string]int64{}
			var registry int64 = cfgBlob
			for _, ref := range []string{"big/app:v1", "big/app:v2", "small/app:v1", "tiny/app:v1"} {
				repo, tag, _ := strings.Cut(ref, ":")
				ns, _, _ := strings.Cut(repo, "/")
				m := int64(len(pushImage(t, base, repo, tag)))
				layer := int64(len("layer bytes of " + repo + ":" + tag))
				if held[ns] == 0 {
					held[ns] = cfgBlob
				}
				held[ns] += m + layer
				registry += m + layer
			}
			status, body := get(t, base+"/metrics")
			if status != http.StatusOK {
				t.Fatalf("GET /metrics: got %d, want 200", status)
			}
			for _, want := range []string{
				fmt.Sprintf("berth_usage_bytes %d", registry),
				fmt.Sprintf(`berth_namespace_usage_bytes{namespace="big"} %d`, held["big"]),
				fmt.Sprintf(`berth_namespace_usage_bytes{namespace="_other"} %d`, held["small"]+held["tiny"]),
			} {
				if !strings.Contains(body, "\n"+want+"\n") {
					t.Errorf("/metrics lacks %s:\n%s", want, grepLines(body, "usage_bytes"))
				}
			}
			if strings.Contains(body, `namespace="small"`) || strings.Contains(body, `namespace="tiny"`) {
				t.Errorf("/metrics has a series of a namespace past the largest:\n%s", grepLines(body, "usage_bytes"))
			}
		})
	}
}

// grepLines are the lines of s containing sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
