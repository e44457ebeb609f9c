package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/api"
	"github.com/berth/berth/internal/app"
	"github.com/berth/berth/internal/config"
	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/review"
)

// gcFlags make every window 0, so what the test deletes is garbage at once.
var gcFlags = []string{"--log-level", "error", "--gc-grace", "0", "--tag-retention", "0"}

// pushAndDelete pushes repo:tag (a config and one layer) through the
// registry package over the data directory as user:alice, then deletes the
// tag as user:bob. It returns the bytes of the two blobs.
func pushAndDelete(t *testing.T, data, repo, tag string) int64 {
	t.Helper()
	ctx := registry.WithActor(context.Background(), meta.UserActor("alice"))
	svc := openServices(t, data)
	defer svc.Close(ctx)
	size := pushTag(t, svc.Registry, repo, tag, bytes.Repeat([]byte("berth layer "), 500))
	if err := svc.Registry.DeleteTag(registry.WithActor(ctx, meta.UserActor("bob")), repo, tag); err != nil {
		t.Fatalf("deleting tag: %v", err)
	}
	return size
}

// openServices migrates the data directory and opens the services over it
// with every window 0.
func openServices(t *testing.T, data string) *app.Services {
	t.Helper()
	if _, err := run(t, nil, "migrate", "--data", data, "--log-level", "error"); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	cfg := config.Default()
	cfg.Data = data
	cfg.Log.Level = "error"
	cfg.GC.Grace = 0
	cfg.GC.TagRetention = 0
	svc, err := app.OpenServices(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// pushTag pushes repo:tag (a config and layer) as user:alice and returns
// the bytes of the two blobs.
func pushTag(t *testing.T, reg *registry.Registry, repo, tag string, layer []byte) int64 {
	t.Helper()
	ctx := registry.WithActor(context.Background(), meta.UserActor("alice"))
	cfgBlob := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	var size int64
	for _, b := range [][]byte{cfgBlob, layer} {
		if _, err := reg.PushBlob(ctx, repo, digest.FromBytes(b).String(), int64(len(b)), bytes.NewReader(b)); err != nil {
			t.Fatalf("pushing blob: %v", err)
		}
		size += int64(len(b))
	}
	m, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest.FromBytes(cfgBlob), "size": len(cfgBlob)},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest.FromBytes(layer), "size": len(layer)}},
	})
	if _, err := reg.PutManifest(ctx, repo, tag, "application/vnd.oci.image.manifest.v1+json", m); err != nil {
		t.Fatalf("pushing manifest: %v", err)
	}
	return size
}

func gcJSON(t *testing.T, args ...string) gc.Summary {
	t.Helper()
	out, err := run(t, nil, args...)
	if err != nil {
		t.Fatalf("berth %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	var s gc.Summary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("berth %s: output is not a JSON summary: %v\n%s", strings.Join(args, " "), err, out)
	}
	return s
}

func TestGCCommand(t *testing.T) {
	data := t.TempDir()
	size := pushAndDelete(t, data, "acme/app", "v1")
	base := append([]string{"--data", data}, gcFlags...)

	want := map[review.Kind]int{review.KindTag: 1, review.KindManifest: 1, review.KindBlob: 2}
	check := func(name string, s gc.Summary, dryRun bool) {
		t.Helper()
		if s.DryRun != dryRun {
			t.Errorf("%s: dry_run got %v, want %v", name, s.DryRun, dryRun)
		}
		for kind, n := range want {
			if s.Deleted[kind] != n {
				t.Errorf("%s: deleted[%s] got %d, want %d (summary %+v)", name, kind, s.Deleted[kind], n, s.Deleted)
			}
		}
		if s.BytesFreed != size {
			t.Errorf("%s: bytes_freed got %d, want %d", name, s.BytesFreed, size)
		}
	}

	dry := gcJSON(t, append([]string{"gc", "--dry-run", "--json"}, base...)...)
	check("gc --dry-run", dry, true)
	if len(dry.Deletions) == 0 {
		t.Error("gc --dry-run --json lists no deletions")
	}
	// A dry run deletes nothing: the same dry run again sees the same.
	check("second gc --dry-run", gcJSON(t, append([]string{"gc", "--dry-run", "--json"}, base...)...), true)

	out, err := run(t, nil, append([]string{"gc", "--dry-run"}, base...)...)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"KIND", "acme/app", "v1", "would delete", "dry run: nothing was deleted", humanBytes(size)} {
		if !strings.Contains(out, s) {
			t.Errorf("gc --dry-run output lacks %q:\n%s", s, out)
		}
	}

	out, err = run(t, nil, append([]string{"gc"}, base...)...)
	if err != nil {
		t.Fatalf("gc: %v\n%s", err, out)
	}
	for _, s := range []string{"deleted:", "manifests", "blobs", "bytes freed", "duration"} {
		if !strings.Contains(out, s) {
			t.Errorf("gc output lacks %q:\n%s", s, out)
		}
	}
	// The real run deleted what the dry run announced: nothing is left.
	again := gcJSON(t, append([]string{"gc", "--json"}, base...)...)
	if n := deletedCount(again); n != 0 || again.BytesFreed != 0 {
		t.Errorf("gc after gc: deleted %v (%d bytes), want nothing", again.Deleted, again.BytesFreed)
	}

	var st gc.Status
	out, err = run(t, nil, append([]string{"gc", "status", "--json"}, base...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("gc status --json: %v\n%s", err, out)
	}
	if st.Due != 0 || st.ReclaimableNow != 0 || !st.ReclaimableDone {
		t.Errorf("gc status after gc: got %+v, want nothing due or reclaimable", st)
	}
}

func TestGCCommandRealRunCounts(t *testing.T) {
	data := t.TempDir()
	size := pushAndDelete(t, data, "acme/app", "v1")
	s := gcJSON(t, append([]string{"gc", "--json", "--list", "--data", data}, gcFlags...)...)
	if s.DryRun || s.Deleted[review.KindTag] != 1 || s.Deleted[review.KindManifest] != 1 || s.Deleted[review.KindBlob] != 2 || s.BytesFreed != size {
		t.Errorf("gc --json: got deleted %v, %d bytes freed, want 1 tag, 1 manifest, 2 blobs, %d bytes", s.Deleted, s.BytesFreed, size)
	}
	if len(s.Deletions) != deletedCount(s) {
		t.Errorf("gc --list: %d deletions listed, %d counted", len(s.Deletions), deletedCount(s))
	}
}

func TestSweepRefusesShortAge(t *testing.T) {
	_, err := run(t, nil, "sweep", "--older-than", "30s", "--data", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "too short") {
		t.Fatalf("sweep --older-than 30s: got %v, want a refusal", err)
	}
}

func TestPurgeCommand(t *testing.T) {
	data := t.TempDir()
	pushAndDelete(t, data, "acme/app", "v1")
	args := append([]string{"--data", data}, gcFlags...)
	if _, err := run(t, nil, append([]string{"purge", "acme/app"}, args...)...); err == nil || !strings.Contains(err.Error(), "--yes") {
		t.Fatalf("purge without --yes and without a terminal: got %v, want a refusal naming --yes", err)
	}
	s := gcJSON(t, append([]string{"purge", "acme/app", "--yes", "--json"}, args...)...)
	if s.Deleted[review.KindRepository] != 1 {
		t.Errorf("purge: got deleted %v, want the repository row", s.Deleted)
	}
	if _, err := run(t, nil, append([]string{"purge", "acme/app", "--yes"}, args...)...); err == nil || !strings.Contains(err.Error(), "no repository") {
		t.Errorf("purge of a purged repository: got %v, want 'no repository'", err)
	}
}

func TestTagAndNamespaceCommands(t *testing.T) {
	data := t.TempDir()
	pushAndDelete(t, data, "acme/app", "v1")
	args := []string{"--data", data, "--log-level", "error"}
	// The default window (2w) applies to the CLI: v1 is restorable.
	out, err := run(t, nil, append([]string{"tag", "history", "acme/app:v1"}, args...)...)
	if err != nil || !strings.Contains(out, "restorable until") || !strings.Contains(out, "user:alice") || !strings.Contains(out, "user:bob (deleted)") {
		t.Fatalf("tag history: got %v, want a restorable lifetime started by user:alice, ended by user:bob (deleted)\n%s", err, out)
	}
	out, err = run(t, nil, append([]string{"tag", "history", "acme/app", "--json"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	var h api.TagHistory
	if err := json.Unmarshal([]byte(out), &h); err != nil || len(h.Lifetimes) != 1 || !h.Lifetimes[0].Restorable {
		t.Fatalf("tag history --json: got %+v (%v), want one restorable lifetime\n%s", h, err, out)
	}
	if l := h.Lifetimes[0]; l.StartedBy != meta.UserActor("alice") || l.EndedBy != meta.UserActor("bob") || l.EndCause != meta.CauseDeleted {
		t.Errorf("tag history --json: got started by %q, ended by %q (%q); want user:alice, user:bob (deleted)", l.StartedBy, l.EndedBy, l.EndCause)
	}
	out, err = run(t, nil, append([]string{"tag", "restore", "acme/app:v1", "--to", h.Lifetimes[0].Digest.String()}, args...)...)
	if err != nil || !strings.Contains(out, "restored acme/app:v1") || !strings.Contains(out, "live") {
		t.Fatalf("tag restore: %v\n%s", err, out)
	}
	// Again: the tag already points there; nothing changes, and it says so.
	out, err = run(t, nil, append([]string{"tag", "restore", "acme/app:v1", "--to", h.Lifetimes[0].Digest.String()}, args...)...)
	if err != nil || !strings.Contains(out, "nothing changed: acme/app:v1 already points at "+h.Lifetimes[0].Digest.String()) {
		t.Fatalf("tag restore onto the live digest: got %v, want it to say nothing changed\n%s", err, out)
	}
	out, err = run(t, nil, append([]string{"tag", "restore", "acme/app:v1", "--to", h.Lifetimes[0].Digest.String(), "--json"}, args...)...)
	var same api.TagRestore
	if err != nil || json.Unmarshal([]byte(out), &same) != nil || same.Changed || !same.Live || !strings.Contains(out, `"changed": false`) {
		t.Fatalf("tag restore --json onto the live digest: got %+v (%v), want live, \"changed\": false\n%s", same, err, out)
	}
	// A berth command on the database acts as the operator.
	out, err = run(t, nil, append([]string{"tag", "history", "acme/app:v1", "--json"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	var after api.TagHistory
	if err := json.Unmarshal([]byte(out), &after); err != nil || len(after.Lifetimes) != 2 || after.Lifetimes[0].StartedBy != meta.ActorOperator || after.Lifetimes[0].EndedBy != "" {
		t.Errorf("tag history after restore: got %+v (%v), want the restored lifetime first, started by operator, not ended\n%s", after, err, out)
	}
	out, err = run(t, nil, append([]string{"tag", "expire", "acme/app:v1", "--in", "3d", "--json"}, args...)...)
	if err != nil || !strings.Contains(out, `"expires_at"`) {
		t.Fatalf("tag expire --in 3d: %v\n%s", err, out)
	}
	out, err = run(t, nil, append([]string{"namespace", "retention", "acme", "3d", "--json"}, args...)...)
	if err != nil || !strings.Contains(out, `"effective": "3d"`) {
		t.Fatalf("namespace retention acme 3d: %v\n%s", err, out)
	}
	// A past expiry would end the tag before berth records it: refused.
	if _, err := run(t, nil, append([]string{"tag", "expire", "acme/app:v1", "--at", "2000-01-01T00:00:00Z"}, args...)...); err == nil || !strings.Contains(err.Error(), "in the past") {
		t.Errorf("tag expire --at 2000-01-01: got %v, want a refusal saying it is in the past", err)
	}
	if _, err := run(t, nil, append([]string{"tag", "expire", "acme/app:v1"}, args...)...); err == nil {
		t.Error("tag expire without --in/--at/--never: got nil error")
	}
}

// berth gc applies the retention policies due: --dry-run lists the tags
// they would prune, the real run prunes them and counts them.
func TestGCCommandPrunesByPolicy(t *testing.T) {
	data := t.TempDir()
	svc := openServices(t, data)
	pushTag(t, svc.Registry, "acme/app", "old", []byte("old layer"))
	pushTag(t, svc.Registry, "acme/app", "new", []byte("new layer"))
	ctx := context.Background()
	err := svc.Stores.Meta.Update(ctx, func(tx meta.Tx) error {
		p := meta.TagPolicy{Namespace: "acme", Name: "keep-1", Kind: meta.PolicyKeepNewest, Count: 1, PatternMatches: true, CreatedBy: meta.ActorOperator}
		if _, _, err := tx.PutPolicy(ctx, p); err != nil {
			return err
		}
		r, err := tx.Repository(ctx, "acme/app", meta.LockNone)
		if err != nil {
			return err
		}
		return tx.ExpediteReview(ctx, meta.Review{Kind: review.KindPolicy, Object: review.PolicyObject(r.ID), ReviewAfter: time.Now(), Cause: review.CausePolicyChanged})
	})
	if err != nil {
		t.Fatal(err)
	}
	svc.Close(ctx)
	base := append([]string{"--data", data}, gcFlags...)

	out, err := run(t, nil, append([]string{"gc", "--dry-run"}, base...)...)
	if err != nil {
		t.Fatalf("gc --dry-run: %v\n%s", err, out)
	}
	for _, s := range []string{"PRUNED TAG", "old", "acme:keep-1", "not among the 1 newest tags", "tags pruned by policies"} {
		if !strings.Contains(out, s) {
			t.Errorf("gc --dry-run output lacks %q:\n%s", s, out)
		}
	}
	s := gcJSON(t, append([]string{"gc", "--json", "--list"}, base...)...)
	if s.Pruned != 1 || len(s.PrunedTags) != 1 || s.PrunedTags[0].Tag != "old" || s.PrunedTags[0].Rule != "acme:keep-1" {
		t.Errorf("gc --json --list: pruned %d, %+v; want old by acme:keep-1", s.Pruned, s.PrunedTags)
	}
	// The window is 0: its manifest and blobs went in the same run.
	if s.Deleted[review.KindTag] != 1 || s.Deleted[review.KindManifest] != 1 {
		t.Errorf("gc --json: deleted %v, want the pruned tag and its manifest", s.Deleted)
	}
}
