package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berth/berth/internal/meta/sqlstore"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
)

// runSplit runs berth as main does (execute: errors printed, as JSON with
// --json), with stdin, and returns stdout and stderr apart.
func runSplit(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := newRootCommand(func() []string { return nil })
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	err = execute(context.Background(), root)
	return out.String(), errOut.String(), err
}

// opsCommand is one operations command, with arguments that get it as far
// as opening the registry.
type opsCommand struct {
	args  []string
	stdin string
}

// opsCommands is every command that works on an existing registry: all
// but serve and migrate (which create one) and version.
var opsCommands = []opsCommand{
	{args: []string{"gc"}},
	{args: []string{"gc", "--dry-run", "--json"}},
	{args: []string{"gc", "status", "--json"}},
	{args: []string{"sweep", "--json"}},
	{args: []string{"purge", "demo/app", "--yes", "--json"}},
	{args: []string{"tag", "history", "demo/app", "--json"}},
	{args: []string{"tag", "restore", "demo/app:v1", "--to", "sha256:" + strings.Repeat("0", 64), "--json"}},
	{args: []string{"tag", "expire", "demo/app:v1", "--in", "1d", "--json"}},
	{args: []string{"tag", "forget", "demo/app:v1", "--yes", "--json"}},
	{args: []string{"usage", "demo", "--split", "--json"}},
	{args: []string{"quota", "set", "demo", "1GiB", "--json"}},
	{args: []string{"quota", "list", "--json"}},
	{args: []string{"quota", "delete", "demo"}},
	{args: []string{"namespace", "create", "demo", "--json"}},
	{args: []string{"namespace", "retention", "demo", "--json"}},
	{args: []string{"namespace", "visibility", "demo", "--json"}},
	{args: []string{"policy", "set", "keep", "--namespace", "demo", "--keep-newest", "1", "--json"}},
	{args: []string{"policy", "list", "--json"}},
	{args: []string{"policy", "preview", "--namespace", "demo", "--keep-newest", "1", "--json"}},
	{args: []string{"policy", "delete", "keep", "--namespace", "demo", "--json"}},
	{args: []string{"usage", "verify", "--json"}},
	{args: []string{"user", "add", "bob", "--password-stdin", "--json"}, stdin: "secret-password"},
	{args: []string{"user", "passwd", "bob", "--password-stdin"}, stdin: "secret-password"},
	{args: []string{"user", "admin", "bob", "true"}},
	{args: []string{"user", "delete", "bob"}},
	{args: []string{"user", "list", "--json"}},
	{args: []string{"robot", "add", "demo+ci", "--role", "read", "--json"}},
	{args: []string{"robot", "list", "--json"}},
	{args: []string{"robot", "delete", "demo+ci"}},
	{args: []string{"grant", "bob", "read", "demo"}},
	{args: []string{"revoke", "bob", "demo"}},
	{args: []string{"grants", "demo", "--json"}},
	{args: []string{"auth", "rotate-key", "--json"}},
}

func TestOpsCommandsListIsComplete(t *testing.T) {
	var listed []string
	for _, c := range opsCommands {
		var words []string
		for _, a := range c.args {
			if strings.HasPrefix(a, "-") {
				break
			}
			words = append(words, a)
		}
		listed = append(listed, strings.Join(words, " "))
	}
	for _, c := range allCommands(newRootCommand(nil)) {
		if c.RunE == nil || c.Name() == "serve" || c.Name() == "migrate" || c.Name() == "version" {
			continue
		}
		path := strings.Join(strings.Fields(c.CommandPath())[1:], " ")
		if !slices.ContainsFunc(listed, func(l string) bool { return l == path || strings.HasPrefix(l, path+" ") }) {
			t.Errorf("%s is not in opsCommands: it must be checked to create nothing", c.CommandPath())
		}
	}
}

// refuses runs every operations command with extra arguments and checks
// that each fails saying want, with its --json variants printing one JSON
// error with code NO_REGISTRY on stdout.
func refuses(t *testing.T, extra []string, want ...string) {
	t.Helper()
	for _, c := range opsCommands {
		args := append(slices.Clone(c.args), extra...)
		stdout, stderr, err := runSplit(t, c.stdin, args...)
		if err == nil {
			t.Errorf("berth %s: got success, want a refusal\n%s", strings.Join(args, " "), stdout)
			continue
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("berth %s: got error %q, want it to contain %q", strings.Join(args, " "), err, w)
			}
		}
		if !slices.Contains(args, "--json") {
			if !strings.Contains(stderr, "berth: "+err.Error()) || stdout != "" {
				t.Errorf("berth %s: got stdout %q, stderr %q; want the error on stderr only", strings.Join(args, " "), stdout, stderr)
			}
			continue
		}
		var je jsonError
		if jerr := json.Unmarshal([]byte(stdout), &je); jerr != nil || je.Error != err.Error() || je.Code != "NO_REGISTRY" {
			t.Errorf("berth %s: got stdout %q (%v), want {\"error\": %q, \"code\": \"NO_REGISTRY\"}", strings.Join(args, " "), stdout, jerr, err)
		}
		if stderr != "" {
			t.Errorf("berth %s --json: got stderr %q, want nothing there", strings.Join(args, " "), stderr)
		}
	}
}

// entries lists what dir holds (nil when it does not exist).
func entries(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			names = append(names, p)
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestOpsCommandsCreateNoRegistry(t *testing.T) {
	advice := "point at one with --data DIR, BERTH_DATA, --db or --config, or create one with berth migrate"
	t.Run("no data directory", func(t *testing.T) {
		t.Chdir(t.TempDir())
		refuses(t, []string{"--log-level", "error"}, "no berth registry at ./berth-data (no such directory); "+advice)
		if _, err := os.Stat("berth-data"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("./berth-data after the commands: got %v, want it not to exist", err)
		}
	})
	t.Run("no berth.db", func(t *testing.T) {
		data := t.TempDir()
		refuses(t, []string{"--data", data, "--log-level", "error"}, "no berth registry at "+data+" (no berth.db in it); "+advice)
		if got := entries(t, data); len(got) != 0 {
			t.Errorf("%s after the commands: got %v, want it empty", data, got)
		}
	})
	t.Run("empty berth.db", func(t *testing.T) {
		// As an older berth left it, run from the wrong directory.
		data := t.TempDir()
		if err := os.WriteFile(filepath.Join(data, "berth.db"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		refuses(t, []string{"--data", data, "--log-level", "error"}, "no berth registry at "+data+" (berth.db holds no berth schema); "+advice)
		if _, err := os.Stat(filepath.Join(data, "storage")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s/storage after the commands: got %v, want it not to exist", data, err)
		}
		assertNoTables(t, filepath.Join(data, "berth.db"))
	})
	t.Run("empty postgres database", func(t *testing.T) {
		dsn := sqltest.PostgresDSN(t)
		data := t.TempDir()
		refuses(t, []string{"--data", data, "--db", dsn, "--log-level", "error"},
			"no berth registry in postgres://", "(the database holds no berth schema); point at another with --db, BERTH_DB or --config, or initialise this one with berth migrate")
		if got := entries(t, data); len(got) != 0 {
			t.Errorf("%s after the commands: got %v, want it empty", data, got)
		}
		assertNoTables(t, dsn)
	})
}

// assertNoTables checks that the database at dsn holds no table.
func assertNoTables(t *testing.T, dsn string) {
	t.Helper()
	s, err := sqlstore.Open(context.Background(), dsn, sqlstore.Options{Existing: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q := `SELECT name FROM sqlite_master WHERE type = 'table'`
	if s.Dialect() == "postgres" {
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`
	}
	rows, err := s.DB().Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var tables []string
	for rows.Next() {
		var name sql.NullString
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name.String)
	}
	if len(tables) != 0 {
		t.Errorf("database after the commands: got tables %v, want none", tables)
	}
}

// On PostgreSQL the account commands need no data directory: they touch
// no blob. The others keep their blobs there and refuse without it.
func TestAccountCommandsOnPostgresNeedNoDataDirectory(t *testing.T) {
	dsn := sqltest.PostgresDSN(t)
	t.Chdir(t.TempDir())
	if _, _, err := runSplit(t, "", "migrate", "--db", dsn, "--log-level", "error"); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if stdout, _, err := runSplit(t, "", "user", "list", "--json", "--db", dsn, "--log-level", "error"); err != nil {
		t.Fatalf("user list: %v\n%s", err, stdout)
	}
	_, _, err := runSplit(t, "", "gc", "status", "--db", dsn, "--log-level", "error")
	if err == nil || !strings.Contains(err.Error(), "no berth registry at ./berth-data (no such directory)") {
		t.Errorf("gc status without the data directory: got %v, want a refusal naming ./berth-data", err)
	}
	if _, err := os.Stat("berth-data"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("./berth-data after the commands: got %v, want it not to exist", err)
	}
}

func TestJSONErrors(t *testing.T) {
	data := t.TempDir()
	args := []string{"--data", data, "--log-level", "error"}
	if _, _, err := runSplit(t, "", append([]string{"migrate"}, args...)...); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	for _, c := range []struct {
		args []string
		code string
	}{
		{[]string{"tag", "history", "demo/app", "--json"}, "NAME_UNKNOWN"},
		{[]string{"tag", "restore", "demo/app:v1", "--json"}, "ERROR"},
		{[]string{"gc", "--repo", "demo/nothing", "--json"}, "NOT_FOUND"},
		{[]string{"grants", "--account", "nobody", "--json"}, "ACCOUNT_UNKNOWN"},
	} {
		stdout, stderr, err := runSplit(t, "", append(c.args, args...)...)
		if err == nil {
			t.Errorf("berth %s: got success, want an error", strings.Join(c.args, " "))
			continue
		}
		var je jsonError
		if jerr := json.Unmarshal([]byte(stdout), &je); jerr != nil || je.Error != err.Error() || je.Code != c.code || stderr != "" {
			t.Errorf("berth %s: got stdout %q (%v), stderr %q; want {\"error\": %q, \"code\": %q} on stdout only",
				strings.Join(c.args, " "), stdout, jerr, stderr, err, c.code)
		}
	}
}

func TestGCUnknownRepository(t *testing.T) {
	data := t.TempDir()
	args := []string{"--data", data, "--log-level", "error"}
	if _, _, err := runSplit(t, "", append([]string{"migrate"}, args...)...); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	for _, extra := range [][]string{nil, {"--dry-run"}} {
		_, _, err := runSplit(t, "", append(append([]string{"gc", "--repo", "demo/nothing"}, extra...), args...)...)
		if err == nil || err.Error() != "no repository demo/nothing in this registry" {
			t.Errorf("gc --repo demo/nothing %v: got %v, want \"no repository demo/nothing in this registry\"", extra, err)
		}
	}
}
