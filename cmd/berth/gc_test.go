package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

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
	ctx, reg, done := openRegistry(t, data)
	defer done()
	_, size := pushManifest(t, ctx, reg, repo, tag, bytes.Repeat([]byte("berth layer "), 500))
	if err := reg.DeleteTag(registry.WithActor(ctx, meta.UserActor("bob")), repo, tag); err != nil {
		t.Fatalf("deleting tag: %v", err)
	}
	return size
}

// openRegistry migrates the data directory and opens its registry (windows
// 0), acting as user:alice.
func openRegistry(t *testing.T, data string) (context.Context, *registry.Registry, func()) {
	t.Helper()
	ctx := registry.WithActor(context.Background(), meta.UserActor("alice"))
	if _, err := run(t, nil, "migrate", "--data", data, "--log-level", "error"); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	cfg := config.Default()
	cfg.Data = data
	cfg.Log.Level = "error"
	cfg.GC.Grace = 0
	cfg.GC.TagRetention = 0
	svc, err := app.OpenServices(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, svc.Registry, func() { svc.Close(ctx) }
}

// pushManifest pushes repo:tag, an image of one config and layer, and
// returns its digest and the bytes of its blobs.
func pushManifest(t *testing.T, ctx context.Context, reg *registry.Registry, repo, tag string, layer []byte) (digest.Digest, int64) {
	t.Helper()
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
	return digest.FromBytes(m), size
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

// gc lists the attachment tags it ends with their subject, and
// --gc-attachments-follow-subject=false leaves them live.
func TestGCCommandAttachments(t *testing.T) {
	for _, follow := range []bool{true, false} {
		t.Run(fmt.Sprint("follow=", follow), func(t *testing.T) {
			data := t.TempDir()
			ctx, reg, done := openRegistry(t, data)
			subject, _ := pushManifest(t, ctx, reg, "acme/app", "v1", []byte("image layer"))
			sig := "sha256-" + subject.Encoded() + ".sig"
			pushManifest(t, ctx, reg, "acme/app", sig, []byte("signature layer"))
			if err := reg.DeleteTag(ctx, "acme/app", "v1"); err != nil {
				t.Fatal(err)
			}
			done()
			args := append([]string{"gc", "--data", data, fmt.Sprint("--gc-attachments-follow-subject=", follow)}, gcFlags...)
			out, err := run(t, nil, append(args, "--dry-run")...)
			if err != nil {
				t.Fatalf("gc --dry-run: %v\n%s", err, out)
			}
			for _, s := range []string{"tags it would end", sig + " ", "subject_collected", "subject " + subject.String() + " collected",
				"attachment tags ended with their subject  1"} {
				if strings.Contains(out, s) != follow {
					t.Errorf("gc --dry-run output contains %q: %v, want %v:\n%s", s, !follow, follow, out)
				}
			}
			s := gcJSON(t, append(args, "--json", "--list")...)
			if want := map[bool]int{true: 1, false: 0}[follow]; s.AttachmentsEnded != want || len(s.Ends) != want {
				t.Errorf("gc --json: attachment_tags_ended %d, %d tag ends listed; want %d", s.AttachmentsEnded, len(s.Ends), want)
			}
			// Window 0: the ended signature tag and its manifest go in the
			// same run.
			if want := map[bool]int{true: 2, false: 1}[follow]; s.Deleted[review.KindManifest] != want {
				t.Errorf("gc --json: deleted %d manifests, want %d", s.Deleted[review.KindManifest], want)
			}
		})
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
	ctx, reg, done := openRegistry(t, data)
	pushManifest(t, ctx, reg, "acme/app", "old", []byte("old layer"))
	pushManifest(t, ctx, reg, "acme/app", "new", []byte("new layer"))
	p := meta.TagPolicy{Namespace: "acme", Name: "keep-1", Kind: meta.PolicyKeepNewest, Count: 1, PatternMatches: true}
	if _, _, _, err := reg.SetPolicy(ctx, p); err != nil {
		t.Fatal(err)
	}
	done()
	base := append([]string{"--data", data}, gcFlags...)

	out, err := run(t, nil, append([]string{"gc", "--dry-run"}, base...)...)
	if err != nil {
		t.Fatalf("gc --dry-run: %v\n%s", err, out)
	}
	for _, s := range []string{"tags it would end", "old", "policy", "pruned by policy acme:keep-1: not among the 1 newest tags", "tags pruned by policies"} {
		if !strings.Contains(out, s) {
			t.Errorf("gc --dry-run output lacks %q:\n%s", s, out)
		}
	}
	s := gcJSON(t, append([]string{"gc", "--json", "--list"}, base...)...)
	if s.Pruned != 1 || len(s.Ends) != 1 || s.Ends[0].Tag != "old" || s.Ends[0].Cause != meta.CausePolicy || s.Ends[0].Rule != "acme:keep-1" {
		t.Errorf("gc --json --list: pruned %d, ends %+v; want old, by acme:keep-1", s.Pruned, s.Ends)
	}
	// The window is 0: its manifest and blobs went in the same run.
	if s.Deleted[review.KindTag] != 1 || s.Deleted[review.KindManifest] != 1 {
		t.Errorf("gc --json: deleted %v, want the pruned tag and its manifest", s.Deleted)
	}
}
