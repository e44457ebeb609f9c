package app

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berth/berth/internal/config"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
)

// rawGet sends GET target exactly as written on the request line and
// returns the status and the body.
func rawGet(t *testing.T, base, target string) (int, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: registry\r\nConnection: close\r\n\r\n", target)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// TestMetricsOnlyLiteral: /metrics and /berth/v1 answer only when spelled
// as such; an escaped spelling, which a proxy rule on the literal prefix
// would let through, is 404 NOT_FOUND with the OCI envelope.
func TestMetricsOnlyLiteral(t *testing.T) {
	for _, b := range sqltest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			cfg.Metrics = true
			if b.Name != "sqlite" {
				cfg.DB = b.DSN(t)
			}
			base, _ := start(t, cfg, io.Discard)
			for _, tt := range []struct {
				target string
				status int
			}{
				{"/metrics", 200},
				{"/berth/v1/gc/status", 200},
				{"/%6detrics", 404},
				{"/%6Detrics", 404},
				{"/metrics%2F", 404},
				{"/%62erth/v1/gc/status", 404},
				{"/berth/v1/gc%2fstatus", 404},
			} {
				status, body := rawGet(t, base, tt.target)
				if status != tt.status {
					t.Errorf("GET %s: got %d, want %d; body %.200s", tt.target, status, tt.status, body)
					continue
				}
				if status == 404 {
					var env struct{ Errors []struct{ Code string } }
					if err := json.Unmarshal(body, &env); err != nil || len(env.Errors) == 0 || env.Errors[0].Code != "NOT_FOUND" {
						t.Errorf("GET %s: got body %s, want the OCI envelope with NOT_FOUND", tt.target, body)
					}
				}
			}
		})
	}
}

// TestServeCutsIdleBody: serve passes http.body_idle_timeout to the API:
// a PATCH that stops sending mid-body is answered 408 and its connection
// closed after about that long.
func TestServeCutsIdleBody(t *testing.T) {
	const idle = 300 * time.Millisecond
	for _, b := range sqltest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			cfg.HTTP.BodyIdleTimeout = config.Duration(idle)
			if b.Name != "sqlite" {
				cfg.DB = b.DSN(t)
			}
			base, _ := start(t, cfg, io.Discard)
			resp := do(t, http.MethodPost, base+"/v2/demo/hello/blobs/uploads/", "", nil)
			wantStatus(t, resp, http.StatusAccepted)
			conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			sent := time.Now()
			fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: registry\r\nContent-Length: 1000000\r\nContent-Range: 0-999999\r\n\r\n12345", resp.Header.Get("Location"))
			_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			got, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("reading the answer to a stalled PATCH: %v", err)
			}
			got.Body.Close()
			if waited := time.Since(sent); got.StatusCode != http.StatusRequestTimeout || waited < idle || waited > idle+5*time.Second {
				t.Errorf("stalled PATCH: got %d after %v, want 408 after about %v", got.StatusCode, waited, idle)
			}
		})
	}
}
