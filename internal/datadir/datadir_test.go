package datadir

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestMkdirAll(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	if err := MkdirAll(dir); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, filepath.Dir(dir)} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != DirMode {
			t.Errorf("%s: got mode %v, want %v", p, got, DirMode)
		}
	}
}

func TestTighten(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		mode    fs.FileMode
		want    fs.FileMode
		changed bool
	}{
		{"world-readable file", 0o644, 0o600, true},
		{"group-writable file", 0o664, 0o600, true},
		{"private file", 0o600, 0o600, false},
		{"owner read-only", 0o400, 0o400, false},
		{"world-readable directory", 0o755 | fs.ModeDir, 0o700, true},
		{"private directory", 0o700 | fs.ModeDir, 0o700, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.name)
			if tt.mode.IsDir() {
				if err := os.Mkdir(p, 0o700); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tt.mode.Perm()); err != nil {
				t.Fatal(err)
			}
			before, changed, err := Tighten(p)
			if err != nil || before != tt.mode.Perm() || changed != tt.changed {
				t.Errorf("Tighten: got %v, %v, %v; want %v, %v, nil", before, changed, err, tt.mode.Perm(), tt.changed)
			}
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != tt.want {
				t.Errorf("mode after Tighten: got %v, want %v", got, tt.want)
			}
		})
	}
	if _, changed, err := Tighten(filepath.Join(dir, "missing")); changed || err != nil {
		t.Errorf("Tighten(missing): got %v, %v; want false, nil", changed, err)
	}
}
