package internal_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestDependencies keeps the core packages free of HTTP and of every
// backend (STYLE.md rule 15): only internal/app wires backends, and only
// internal/api and internal/webhook speak HTTP. Backends are checked
// transitively; net/http only as a direct import of berth's own packages
// (the Prometheus client library imports it, and that is not ours to use).
func TestDependencies(t *testing.T) {
	backends := []string{
		"github.com/berth/berth/internal/meta/sqlstore",
		"github.com/berth/berth/internal/blob/fs",
		"github.com/berth/berth/internal/blob/s3",
		"github.com/aws/aws-sdk-go-v2/service/s3",
		"github.com/berth/berth/internal/api",
		"github.com/berth/berth/internal/app",
		"github.com/berth/berth/internal/webhook",
		"github.com/berth/berth/internal/web",
		"github.com/jackc/pgx/v5",
		"modernc.org/sqlite",
	}
	for _, pkg := range []string{"oci", "meta", "blob", "gc", "registry", "config", "datadir"} {
		t.Run(pkg, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{join .Imports \",\"}}", "github.com/berth/berth/internal/"+pkg).Output()
			if err != nil {
				t.Fatalf("go list: %v", err)
			}
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				path, imports, _ := strings.Cut(line, " ")
				for _, b := range backends {
					if path == b || strings.HasPrefix(path, b+"/") {
						t.Errorf("internal/%s depends on %s", pkg, path)
					}
				}
				if strings.HasPrefix(path, "github.com/berth/berth/") {
					for _, imp := range strings.Split(imports, ",") {
						if imp == "net/http" || strings.HasPrefix(imp, "net/http/") {
							t.Errorf("%s imports %s", path, imp)
						}
					}
				}
			}
		})
	}
}

// TestWebDependencies keeps the web interface a sibling of the API above
// the use cases (docs/design/web.md, "Where it lives"): it may speak HTTP,
// but it reaches data only through registry, auth and gc, never a
// backend, and neither it nor the API depends on the other; only
// internal/app mounts both.
func TestWebDependencies(t *testing.T) {
	banned := []string{
		"github.com/berth/berth/internal/meta/sqlstore",
		"github.com/berth/berth/internal/blob/fs",
		"github.com/berth/berth/internal/blob/s3",
		"github.com/berth/berth/internal/api",
		"github.com/berth/berth/internal/app",
		"github.com/berth/berth/internal/webhook",
		"github.com/jackc/pgx/v5",
		"modernc.org/sqlite",
	}
	check := func(pkg string, banned []string) {
		out, err := exec.Command("go", "list", "-deps", "github.com/berth/berth/internal/"+pkg).Output()
		if err != nil {
			t.Fatalf("go list: %v", err)
		}
		for _, path := range strings.Fields(string(out)) {
			for _, b := range banned {
				if path == b || strings.HasPrefix(path, b+"/") {
					t.Errorf("internal/%s depends on %s", pkg, path)
				}
			}
		}
	}
	check("web", banned)
	check("api", []string{"github.com/berth/berth/internal/web"})
}

// TestServerBinaryDependencies keeps what only the benchmark needs (its
// plotting library, gonum) and the benchmark's own packages out of the
// berth binary: they share the module, not the program.
func TestServerBinaryDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/berth/berth/cmd/berth").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps cmd/berth: got %d packages, want berth's whole tree", len(deps))
	}
	for _, path := range deps {
		for _, banned := range []string{"gonum.org/", "github.com/berth/berth/bench/"} {
			if strings.HasPrefix(path, banned) {
				t.Errorf("cmd/berth depends on %s", path)
			}
		}
	}
}

// TestVocabularyDependencies keeps the shared vocabularies at the bottom of
// berth's packages (STYLE.md rule 16): internal/review (the collector's
// review kinds, objects, causes and policy) may import only the standard
// library and go-digest, internal/event only the standard library, so that
// meta, registry and gc can all import them.
func TestVocabularyDependencies(t *testing.T) {
	for pkg, allowed := range map[string][]string{
		"review": {"github.com/opencontainers/go-digest"},
		"event":  nil,
	} {
		t.Run(pkg, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-f", "{{join .Imports \" \"}}", "github.com/berth/berth/internal/"+pkg).Output()
			if err != nil {
				t.Fatalf("go list: %v", err)
			}
			for _, imp := range strings.Fields(string(out)) {
				std := !strings.Contains(strings.Split(imp, "/")[0], ".")
				if !std && !slices.Contains(allowed, imp) {
					t.Errorf("internal/%s imports %s; it may import only the standard library and %v", pkg, imp, allowed)
				}
			}
		})
	}
}
