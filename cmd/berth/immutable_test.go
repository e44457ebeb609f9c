package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/berth/berth/internal/api"
	"github.com/berth/berth/internal/app"
	"github.com/berth/berth/internal/config"
	"github.com/berth/berth/internal/meta"
)

// TestCommandsRefuseImmutable: the tag and purge commands get the
// registry's refusal of a write an immutable rule forbids, naming the rule,
// with a failing exit (and code DENIED with --json); nothing changes.
func TestCommandsRefuseImmutable(t *testing.T) {
	data := t.TempDir()
	pushAndDelete(t, data, "acme/app", "v1")
	args := []string{"--data", data, "--log-level", "error"}
	out, err := run(t, nil, append([]string{"tag", "history", "acme/app:v1", "--json"}, args...)...)
	var h api.TagHistory
	if err != nil || json.Unmarshal([]byte(out), &h) != nil || len(h.Lifetimes) != 1 {
		t.Fatalf("tag history: %v\n%s", err, out)
	}
	if out, err := run(t, nil, append([]string{"tag", "restore", "acme/app:v1", "--to", h.Lifetimes[0].Digest.String()}, args...)...); err != nil {
		t.Fatalf("tag restore: %v\n%s", err, out)
	}

	ctx := context.Background()
	cfg := config.Default()
	cfg.Data = data
	cfg.Log.Level = "error"
	svc, err := app.OpenServices(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = svc.Stores.Meta.Update(ctx, func(tx meta.Tx) error {
		if _, err := tx.Namespace(ctx, "acme", meta.LockUpdate); err != nil {
			return err
		}
		_, _, err := tx.PutPolicy(ctx, meta.TagPolicy{Namespace: "acme", Name: "releases", Kind: meta.PolicyImmutable, TagPattern: "^v", PatternMatches: true})
		return err
	})
	if cerr := svc.Close(ctx); err != nil || cerr != nil {
		t.Fatalf("saving the rule: %v; closing: %v", err, cerr)
	}

	const refusal = `tag "v1" is immutable (rule acme:releases) and cannot be `
	_, err = run(t, nil, append([]string{"tag", "expire", "acme/app:v1", "--in", "3d"}, args...)...)
	if err == nil || !strings.Contains(err.Error(), refusal+"given an expiry") {
		t.Errorf("tag expire: got %v, want a refusal naming the rule", err)
	}
	stdout, _, err := runSplit(t, "", append([]string{"tag", "expire", "acme/app:v1", "--at", "2100-01-01T00:00:00Z", "--json"}, args...)...)
	var je jsonError
	if err == nil || json.Unmarshal([]byte(stdout), &je) != nil || je.Code != "DENIED" || !strings.Contains(je.Error, refusal) {
		t.Errorf("tag expire --json: got %v, %s; want a failure with code DENIED naming the rule", err, stdout)
	}
	_, err = run(t, nil, append([]string{"purge", "acme", "--yes"}, args...)...)
	if err == nil || !strings.Contains(err.Error(), "purge acme refused: "+refusal+"purged with repository acme/app") {
		t.Errorf("purge acme: got %v, want a refusal naming the rule", err)
	}
	out, err = run(t, nil, append([]string{"tag", "history", "acme/app:v1", "--json"}, args...)...)
	if err != nil || json.Unmarshal([]byte(out), &h) != nil || len(h.Lifetimes) != 2 || !h.Lifetimes[0].Live || h.Lifetimes[0].ExpiresAt != nil {
		t.Errorf("tag history after the refusals: %v, want v1 live without expiry\n%s", err, out)
	}
}
