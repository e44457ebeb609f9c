package web_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/berth/berth/internal/testenv"
	"github.com/berth/berth/internal/testenv/registryenv"
	"github.com/berth/berth/internal/web"
)

// TestRequestLogCarriesRequestID: a page's log line carries the id its
// answer returns in X-Request-Id, as the API's lines do, so that a proxy's
// or a support ticket's id finds the request in berth's log: the id
// Options.RequestID chooses (the API's rule: the client's, when sane), or
// by default a fresh one per request.
func TestRequestLogCarriesRequestID(t *testing.T) {
	e := registryenv.New(t, registryenv.ByName(t, registryenv.SQLite))
	for _, tt := range []struct {
		name   string
		choose func(r *http.Request) string
		sent   string
		want   string // "": any id, one per request
	}{
		{"default", nil, "ci-job-42", ""},
		{"the API's choice", func(r *http.Request) string { return "api:" + r.Header.Get("X-Request-Id") }, "ci-job-42", "api:ci-job-42"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs testenv.LogBuffer
			h, err := web.New(web.Options{Registry: e.Registry, Now: e.Clock.Now, RequestID: tt.choose,
				Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for range 2 {
				req := httptest.NewRequest(http.MethodGet, "/", nil)
				req.Header.Set("X-Request-Id", tt.sent)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					t.Fatalf("GET /: %d", rec.Code)
				}
				ids = append(ids, rec.Header().Get("X-Request-Id"))
			}
			var logged []string
			for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
				var l map[string]any
				if err := json.Unmarshal([]byte(line), &l); err != nil {
					t.Fatalf("log line %q: %v", line, err)
				}
				if l["msg"] == "request" {
					id, _ := l["request_id"].(string)
					logged = append(logged, id)
				}
			}
			if len(logged) != 2 || logged[0] != ids[0] || logged[1] != ids[1] {
				t.Fatalf("ids logged %q, answered %q: want the same two", logged, ids)
			}
			switch {
			case tt.want != "" && (ids[0] != tt.want || ids[1] != tt.want):
				t.Errorf("ids %q, want %q for both", ids, tt.want)
			case tt.want == "" && (ids[0] == "" || ids[0] == ids[1]):
				t.Errorf("ids %q, want a fresh one per request", ids)
			}
		})
	}
}
