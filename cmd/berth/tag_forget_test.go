package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/berth/berth/internal/api"
)

// TestTagForget: berth tag forget asks for --yes without a terminal, then
// deletes the ended lifetimes of the tag and leaves the live one.
func TestTagForget(t *testing.T) {
	data := t.TempDir()
	ctx, reg, done := openRegistry(t, data)
	old, _ := pushManifest(t, ctx, reg, "acme/app", "v1", []byte("first"))
	pushManifest(t, ctx, reg, "acme/app", "v1", []byte("second"))
	done()
	args := []string{"--data", data, "--log-level", "error"}

	if out, err := run(t, nil, append([]string{"tag", "forget", "acme/app:v1"}, args...)...); err == nil || !strings.Contains(err.Error(), "pass --yes") {
		t.Fatalf("tag forget without --yes: got %v, want a refusal asking for --yes\n%s", err, out)
	}
	out, err := run(t, nil, append([]string{"tag", "forget", "acme/app:v1", "--yes", "--json"}, args...)...)
	var f api.TagForgotten
	if err != nil || json.Unmarshal([]byte(out), &f) != nil || f.Forgotten != 1 || len(f.Manifests) != 1 || f.Manifests[0] != old {
		t.Fatalf("tag forget --json: %v, want 1 lifetime of %s forgotten\n%s", err, old, out)
	}
	out, err = run(t, nil, append([]string{"tag", "forget", "acme/app:v1", "--yes"}, args...)...)
	if err != nil || !strings.Contains(out, "nothing to forget") {
		t.Errorf("tag forget again: %v, want nothing to forget\n%s", err, out)
	}
	out, err = run(t, nil, append([]string{"tag", "history", "acme/app:v1", "--json"}, args...)...)
	var h api.TagHistory
	if err != nil || json.Unmarshal([]byte(out), &h) != nil || len(h.Lifetimes) != 1 || !h.Lifetimes[0].Live {
		t.Errorf("tag history after forget: %v, want only the live lifetime\n%s", err, out)
	}
}
