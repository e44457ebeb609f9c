package main

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
)

// TestUsageVerify: a counter that differs from the rows is reported, with
// exit status 1 (one JSON document with --json); --fix rewrites it, and the
// next verification finds nothing.
func TestUsageVerify(t *testing.T) {
	for _, b := range sqltest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			data := t.TempDir()
			dsn := data + "/berth.db"
			args := []string{"--data", data, "--log-level", "error"}
			if b.Name != "sqlite" {
				dsn = b.DSN(t)
				args = append(args, "--db", dsn)
			}
			cli := func(cmd ...string) (string, error) {
				t.Helper()
				return run(t, nil, append(cmd, args...)...)
			}
			if out, err := cli("migrate"); err != nil {
				t.Fatalf("migrate: %v\n%s", err, out)
			}
			if out, err := cli("namespace", "create", "acme"); err != nil {
				t.Fatalf("namespace create: %v\n%s", err, out)
			}
			if out, err := cli("usage", "verify"); err != nil || !strings.Contains(out, "no difference") {
				t.Fatalf("verify of a fresh registry: %v\n%s", err, out)
			}
			sqltest.Exec(t, dsn, `INSERT INTO usage (scope, id, shard, bytes, manifests, blobs) SELECT 'n', id, 0, 5, 0, 0 FROM namespace WHERE name = 'acme'`)
			out, err := cli("usage", "verify")
			if !errors.Is(err, errUsageDiffers) || !strings.Contains(out, "namespace acme: counter 5 B (5 bytes)") || !strings.Contains(out, "1 differences") {
				t.Fatalf("verify of a drifted counter: got %v, want errUsageDiffers naming namespace acme\n%s", err, out)
			}
			out, err = cli("usage", "verify", "--json")
			var rep usageVerifyReport
			if !errors.Is(err, errUsageDiffers) || json.Unmarshal([]byte(out), &rep) != nil || len(rep.Differences) != 1 || rep.Differences[0].Got.Bytes != 5 {
				t.Fatalf("verify --json: got %v, want one difference in one JSON document\n%s", err, out)
			}
			if out, err := cli("usage", "verify", "--fix"); err != nil || !strings.Contains(out, "1 differences, fixed") {
				t.Fatalf("verify --fix: %v\n%s", err, out)
			}
			if out, err := cli("usage", "verify"); err != nil || !strings.Contains(out, "no difference") {
				t.Fatalf("verify after the fix: %v\n%s", err, out)
			}
		})
	}
}
