package main

import (
	"os"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// readmeSetting is one row of the README's configuration reference.
type readmeSetting struct {
	line       int
	key, env   string
	flag       string // without "--"; empty for a setting without a flag
	defaultVal string // as --help shows it: "" for "empty…" and "none…"
}

// readmeSettings parses the table under "## Configuration reference".
func readmeSettings(t *testing.T) []readmeSetting {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var rows []readmeSetting
	in := false
	for i, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "## ") {
			in = line == "## Configuration reference"
			continue
		}
		if !in || !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| YAML key") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if len(cells) != 5 {
			t.Fatalf("README.md:%d: got %d cells, want 5: %s", i+1, len(cells), line)
		}
		rows = append(rows, readmeSetting{
			line:       i + 1,
			key:        code(cells[0]),
			env:        code(cells[1]),
			flag:       strings.TrimPrefix(code(cells[2]), "--"),
			defaultVal: readmeDefault(cells[3]),
		})
	}
	if len(rows) < 30 {
		t.Fatalf("README.md: found %d rows in the configuration reference, want every setting", len(rows))
	}
	return rows
}

// code is the first `…` span of a cell, or "" (a "—" cell).
func code(cell string) string {
	_, rest, ok := strings.Cut(cell, "`")
	if !ok {
		return ""
	}
	s, _, _ := strings.Cut(rest, "`")
	return s
}

// readmeDefault is a default cell as the flag's default value string: its
// first code span, or "" when it says the setting is empty or unset.
func readmeDefault(cell string) string {
	if strings.HasPrefix(cell, "empty") || strings.HasPrefix(cell, "none") {
		return ""
	}
	return code(cell)
}

// TestReadmeConfigurationReference checks the README's table against the
// flags: every flag it names exists with that default and environment
// variable in every command that takes it, and every flag of serve is in it.
func TestReadmeConfigurationReference(t *testing.T) {
	rows := readmeSettings(t)
	cmds := allCommands(newRootCommand(nil))
	inTable := map[string]bool{}
	for _, r := range rows {
		if r.flag == "" {
			continue
		}
		inTable[r.flag] = true
		found := 0
		for _, c := range cmds {
			f := c.Flags().Lookup(r.flag)
			if f == nil {
				f = c.PersistentFlags().Lookup(r.flag) // the root's shared flags
			}
			if f == nil {
				continue
			}
			found++
			if f.DefValue != r.defaultVal {
				t.Errorf("README.md:%d: --%s defaults to %q in the table, %q in %s --help", r.line, r.flag, r.defaultVal, f.DefValue, c.CommandPath())
			}
			if r.env != "" && !strings.Contains(f.Usage, "(env "+r.env+")") {
				t.Errorf("README.md:%d: --%s reads %s in the table, but %s --help says: %s", r.line, r.flag, r.env, c.CommandPath(), f.Usage)
			}
		}
		if found == 0 {
			t.Errorf("README.md:%d: no command has a flag --%s", r.line, r.flag)
		}
	}
	for _, c := range cmds {
		if c.Name() != "serve" {
			continue
		}
		visit := func(f *pflag.Flag) {
			if f.Name != "help" && !inTable[f.Name] {
				t.Errorf("serve --%s is not in the README's configuration reference", f.Name)
			}
		}
		c.Flags().VisitAll(visit)
		c.InheritedFlags().VisitAll(visit)
	}
}
