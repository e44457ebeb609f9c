package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func run(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	root := newRootCommand(func() []string { return env })
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// allCommands walks the tree, skipping cobra's built-in help and completion.
func allCommands(c *cobra.Command) []*cobra.Command {
	cmds := []*cobra.Command{c}
	for _, sub := range c.Commands() {
		if sub.Name() == "help" || sub.Name() == "completion" {
			continue
		}
		cmds = append(cmds, allCommands(sub)...)
	}
	return cmds
}

func TestEveryCommandIsDocumented(t *testing.T) {
	for _, c := range allCommands(newRootCommand(nil)) {
		path := strings.Fields(c.CommandPath())[1:] // drop "berth"
		t.Run(c.CommandPath(), func(t *testing.T) {
			if c.Short == "" || c.Long == "" || c.Example == "" {
				t.Errorf("%s: Short, Long and Example must all be set", c.CommandPath())
			}
			out, err := run(t, nil, append(path, "--help")...)
			if err != nil {
				t.Fatalf("%s --help: %v", c.CommandPath(), err)
			}
			for _, want := range []string{"Usage:", "Examples:", strings.SplitN(c.Long, "\n", 2)[0]} {
				if !strings.Contains(out, want) {
					t.Errorf("%s --help lacks %q:\n%s", c.CommandPath(), want, out)
				}
			}
		})
	}
}

func TestServeFlags(t *testing.T) {
	out, err := run(t, nil, "serve", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, flag := range []string{
		"--config", "--data", "--db", "--log-level", "--log-format", // persistent
		"--addr", "--tls-cert", "--tls-key", "--metrics",
		"--gc-grace", "--upload-expiry", "--tag-retention", "--gc-review-delay",
		"--gc-workers", "--gc-batch-size", "--gc-interval", "--gc-collect-untagged",
	} {
		if !strings.Contains(out, flag) {
			t.Errorf("serve --help lacks %s", flag)
		}
	}
}

func TestVersion(t *testing.T) {
	out, err := run(t, nil, "version")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"berth ", "commit: ", "go: go"} {
		if !strings.Contains(out, want) {
			t.Errorf("version output lacks %q:\n%s", want, out)
		}
	}
}

func TestMigrate(t *testing.T) {
	data := t.TempDir()
	if _, err := run(t, nil, "migrate", "--data", data, "--log-level", "error"); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if _, err := run(t, []string{"BERTH_DATA=" + data, "BERTH_LOG_LEVEL=error"}, "migrate"); err != nil {
		t.Fatalf("migrate again: %v", err)
	}
	if matches, _ := filepath.Glob(filepath.Join(data, "berth.db")); len(matches) != 1 {
		t.Errorf("migrate did not create %s/berth.db", data)
	}
}

func TestInvalidConfigIsReported(t *testing.T) {
	_, err := run(t, []string{"BERTH_GC_BATCH_SIZE=0"}, "serve", "--log-level", "loud", "--tls-cert", "c.pem")
	if err == nil {
		t.Fatal("serve with an invalid config: got nil error")
	}
	for _, want := range []string{"gc.batch_size", "log.level", "tls"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestArgumentsAreRejected(t *testing.T) {
	if _, err := run(t, nil, "version", "extra"); err == nil {
		t.Error("version extra: got nil error")
	}
}
