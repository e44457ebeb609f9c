package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/berth/berth/internal/api"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
)

// TestNamespaceCommands: on every metadata backend, retention refuses an
// unknown namespace (pointing at create, and creating nothing), and create
// makes one, once.
func TestNamespaceCommands(t *testing.T) {
	for _, b := range sqltest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			args := []string{"--data", t.TempDir(), "--log-level", "error"}
			if b.Name != "sqlite" {
				args = append(args, "--db", b.DSN(t))
			}
			cli := func(cmd ...string) (string, error) {
				t.Helper()
				return run(t, nil, append(cmd, args...)...)
			}
			if out, err := cli("migrate"); err != nil {
				t.Fatalf("migrate: %v\n%s", err, out)
			}
			_, err := cli("namespace", "retention", "acme", "3d")
			if err == nil || !strings.Contains(err.Error(), "namespace acme does not exist") ||
				!strings.Contains(err.Error(), "berth namespace create acme --retention 3d") {
				t.Fatalf("retention of an unknown namespace: got %v, want a refusal pointing at berth namespace create", err)
			}
			if _, err := cli("namespace", "retention", "acme"); err == nil || !strings.Contains(err.Error(), "does not exist") {
				t.Fatalf("reading the retention after the refusal: got %v, want 'does not exist' (nothing created)", err)
			}

			out, err := cli("namespace", "create", "acme", "--retention", "30d", "--json")
			if err != nil {
				t.Fatalf("namespace create: %v\n%s", err, out)
			}
			var doc api.NamespaceRetention
			if err := json.Unmarshal([]byte(out), &doc); err != nil || doc.Namespace != "acme" || doc.Effective != "30d" {
				t.Errorf("namespace create --json: got %+v (%v), want acme with 30d\n%s", doc, err, out)
			}
			if _, err := cli("namespace", "create", "acme"); err == nil || !strings.Contains(err.Error(), "already exists (retention 30d)") {
				t.Errorf("creating it again: got %v, want 'already exists' with the window unchanged", err)
			}
			out, err = cli("namespace", "retention", "acme", "3d")
			if err != nil || !strings.Contains(out, "3d (set on the namespace)") {
				t.Errorf("retention of the created namespace: %v\n%s", err, out)
			}
			// The grammar of every duration berth reads (--tag-retention
			// takes 1.5d, so this argument does too), written back in the
			// largest natural units.
			out, err = cli("namespace", "retention", "acme", "1.5d")
			if err != nil || !strings.Contains(out, "1d12h (set on the namespace)") {
				t.Errorf("retention 1.5d: %v\n%s", err, out)
			}
			out, err = cli("namespace", "retention", "acme", "500ms", "--json")
			if err != nil {
				t.Fatalf("retention 500ms: %v\n%s", err, out)
			}
			if err := json.Unmarshal([]byte(out), &doc); err != nil || doc.Retention == nil || *doc.Retention != "500ms" {
				t.Errorf("retention 500ms: got %+v (%v)\n%s", doc, err, out)
			}
			if _, err := cli("namespace", "retention", "acme", "1.5"); err == nil || !strings.Contains(err.Error(), "no unit") {
				t.Errorf("retention 1.5: got %v, want a missing unit refused", err)
			}
			out, err = cli("namespace", "create", "team")
			if err != nil || !strings.Contains(out, "(server default)") {
				t.Errorf("namespace create team: %v\n%s", err, out)
			}
			for _, bad := range [][]string{{"Acme"}, {"acme/app"}, {"x", "--retention", "-1h"}, {"x", "--retention", "soon"}} {
				if _, err := cli(append([]string{"namespace", "create"}, bad...)...); err == nil {
					t.Errorf("namespace create %v: got nil error", bad)
				}
			}
		})
	}
}
