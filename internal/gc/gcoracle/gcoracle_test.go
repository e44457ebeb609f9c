package gcoracle_test

import (
	"strings"
	"testing"
	"time"

	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/gc/gcoracle"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/review"
	"github.com/berth/berth/internal/testenv/registryenv"
)

// windows is the policy of the registry and the collector under test.
var windows = review.Policy{Grace: time.Hour, UploadExpiry: 24 * time.Hour, TagRetention: 14 * 24 * time.Hour, CollectUntagged: true}

// past is longer than every window.
const past = 16 * 24 * time.Hour

func forEachBackend(t *testing.T, fn func(t *testing.T, e *registryenv.Env)) {
	t.Parallel()
	registryenv.ForEachBackend(t, fn, func(o *registryenv.Options) {
		o.Registry = registry.Options{Policy: windows}
	})
}

// exec runs a statement behind the registry's back.
func exec(t *testing.T, e *registryenv.Env, q string) {
	t.Helper()
	e.Exec(q)
}

// assertFinding checks that rep holds exactly one finding, of class c,
// about an object whose name starts with object.
func assertFinding(t *testing.T, rep *gcoracle.Report, c gcoracle.Class, object string) {
	t.Helper()
	if len(rep.Findings) != 1 || rep.Findings[0].Class != c || !strings.HasPrefix(rep.Findings[0].Object, object) {
		t.Fatalf("findings: got %v, want one %s about %s", rep.Findings, c, object)
	}
	t.Logf("finding: %s", rep.Findings[0])
}

func storageKey(t *testing.T, e *registryenv.Env, d string) string {
	t.Helper()
	var k string
	if err := e.Store.DB().QueryRowContext(e.Ctx, `SELECT storage_key FROM blob WHERE digest = '`+d+`'`).Scan(&k); err != nil {
		t.Fatalf("storage key of %s: %v", d, err)
	}
	return k
}

// A registry right after its pushes is at a fixed point: everything is
// reachable from a tag, a grace or a marker, and every review is due later.
func TestCleanAfterPush(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *registryenv.Env) {
		img := e.PushImage("ns/app", "v1", []byte("layer one"), []byte("layer two"))
		arm := e.PushImage("ns/app", "", []byte("arm layer"))
		e.PushIndex("ns/app", "multi", img, arm)
		e.PushReferrer("ns/app", img, "application/vnd.example.sig", []byte("signature"))
		e.PushBlob("ns/app", []byte("just a blob"))
		e.Tag("ns/other", "v1", e.PushImage("ns/other", "", []byte("layer one")))
		rep := e.Check(windows)
		if len(rep.Findings) != 0 {
			t.Fatalf("findings on a fresh registry: %v", rep.Findings)
		}
		if rep.Reachable["manifest"] != 5 || rep.Pending == 0 {
			t.Errorf("reachable %v, %d pending reviews: want 5 manifests and pending reviews", rep.Reachable, rep.Pending)
		}
	})
}

// The collector's fixed point, once every window has passed, is clean; a
// deleted tag's image is kept for its window, then collected.
func TestCleanAfterCollection(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *registryenv.Env) {
		e.PushImage("ns/app", "v1", []byte("kept"))
		e.PushImage("ns/app", "old", []byte("dropped"))
		e.PushImage("ns/app", "", []byte("untagged"))
		e.PushBlob("ns/app", []byte("orphan blob"))
		resp, body := e.Do("DELETE", "/v2/ns/app/manifests/old", nil, nil)
		e.Expect(resp, body, 202)
		opts := gc.DefaultOptions()
		opts.Now, opts.Policy = e.Clock.Now, windows
		c := gc.New(e.Store, e.Blobs, opts)
		settle := func() {
			for range 6 {
				if _, err := c.RunOnce(e.Ctx, gc.RunOptions{}); err != nil {
					t.Fatalf("RunOnce: %v", err)
				}
			}
		}
		e.Clock.Add(2 * windows.Grace)
		settle()
		if rep := e.Check(windows); len(rep.Findings) != 0 || rep.Reachable["manifest"] != 2 {
			t.Fatalf("inside the deleted tag's window: findings %v, reachable %v (want 2 manifests)", rep.Findings, rep.Reachable)
		}
		e.Clock.Add(past)
		settle()
		e.Clock.Add(past)
		settle()
		rep := e.Check(windows)
		if len(rep.Findings) != 0 {
			t.Fatalf("findings at the collector's fixed point: %v", rep.Findings)
		}
		if rep.Reachable["manifest"] != 1 || rep.Rows["manifest"] != 1 || rep.Rows["blob"] != 2 {
			t.Errorf("reachable %v, rows %v: want 1 manifest and its 2 blobs", rep.Reachable, rep.Rows)
		}
	})
}

// The bytes of a tagged image's layer deleted behind the registry's back:
// SAFETY.
func TestDeletedReachableBlob(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *registryenv.Env) {
		layer := e.PushBlob("ns/app", []byte("precious layer"))
		e.PushImage("ns/app", "v1", []byte("precious layer"))
		if err := e.Blobs.Delete(e.Ctx, storageKey(t, e, layer.String())); err != nil {
			t.Fatal(err)
		}
		assertFinding(t, e.Check(windows), gcoracle.Safety, "blob "+layer.String())
	})
}

// Bytes that no longer hash to their digest: SAFETY, when the oracle can
// read them.
func TestCorruptBlob(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *registryenv.Env) {
		e.PushImage("ns/app", "v1", []byte("layer"))
		exec(t, e, `UPDATE blob SET size = size + 1 WHERE size = 5`)
		fixUsage(t, e) // the usage counters follow the tampered size
		assertFinding(t, e.Check(windows), gcoracle.Safety, "blob sha256:")
	})
}

// fixUsage rewrites the usage counters after a test changed rows behind the
// store's back, and fails unless it found differences.
func fixUsage(t *testing.T, e *registryenv.Env) {
	t.Helper()
	var diffs []meta.UsageDiff
	err := e.Store.Update(e.Ctx, func(tx meta.Tx) (err error) {
		diffs, err = tx.VerifyUsage(e.Ctx, true)
		return err
	})
	if err != nil || len(diffs) == 0 {
		t.Fatalf("fixing usage: %v, %d differences; want some", err, len(diffs))
	}
}

// A usage counter that differs from the rows: USAGE, naming the counter.
func TestUsageDrift(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *registryenv.Env) {
		e.PushImage("ns/app", "v1", []byte("layer"))
		exec(t, e, `UPDATE usage SET bytes = bytes + 7 WHERE scope = 'n'`)
		assertFinding(t, e.Check(windows), gcoracle.Usage, "namespace ns")
		fixUsage(t, e)
		e.AssertFixedPoint(windows)
	})
}

// A manifest pushed by digest whose review was lost: once its grace has
// passed nothing keeps it and nothing will look at it again. LEAK.
func TestLeakedManifest(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *registryenv.Env) {
		e.PushImage("ns/app", "v1", []byte("tagged"))
		m := e.PushImage("ns/app", "", []byte("untagged"))
		e.Clock.Add(2 * windows.Grace)
		exec(t, e, `DELETE FROM review`)
		assertFinding(t, e.Check(windows), gcoracle.Leak, "manifest ns/app@"+m.Digest.String())
	})
}

// A manifest whose review is due later is not a leak yet; once due, the
// review left undecided and the manifest are both findings.
func TestPendingReviewExcuses(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *registryenv.Env) {
		e.PushImage("ns/app", "", []byte("untagged"))
		e.Clock.Add(2 * windows.Grace)
		exec(t, e, `DELETE FROM review WHERE kind <> 'manifest'`)
		exec(t, e, `UPDATE review SET review_after = review_after + 3600000000000`)
		if rep := e.Check(windows); len(rep.Findings) != 0 || rep.Pending != 1 {
			t.Fatalf("with a review due later: findings %v, pending %d; want none and 1", rep.Findings, rep.Pending)
		}
		exec(t, e, `UPDATE review SET review_after = 0`)
		rep := e.Check(windows)
		if len(rep.Leaks()) != 2 || !strings.HasPrefix(rep.Findings[0].Object, "review manifest") || !strings.HasPrefix(rep.Findings[1].Object, "manifest ns/app@") {
			t.Fatalf("with the review due: findings %v; want the review and the manifest", rep.Findings)
		}
	})
}

// A link whose marker is gone and which no manifest uses, with no review:
// LEAK.
func TestLeakedLink(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *registryenv.Env) {
		d := e.PushBlob("ns/app", []byte("pushed, never referenced"))
		e.Clock.Add(2 * windows.Grace)
		exec(t, e, `DELETE FROM uploaded_blob`)
		exec(t, e, `DELETE FROM review`)
		assertFinding(t, e.Check(windows), gcoracle.Leak, "link ns/app@"+d.String())
	})
}

// A deleted tag keeps its image for the namespace's window; a tag row left
// after it, with no review, is a LEAK.
func TestTimeMachineWindow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *registryenv.Env) {
		e.PushImage("ns/app", "v1", []byte("layer"))
		resp, body := e.Do("DELETE", "/v2/ns/app/manifests/v1", nil, nil)
		e.Expect(resp, body, 202)
		e.Clock.Add(windows.TagRetention - time.Minute)
		exec(t, e, `DELETE FROM review`)
		if rep := e.Check(windows); len(rep.Findings) != 0 || rep.Reachable["manifest"] != 1 {
			t.Fatalf("inside the window: findings %v, reachable %v; want none and 1 manifest", rep.Findings, rep.Reachable)
		}
		e.Clock.Add(2 * time.Minute)
		rep := e.Check(windows)
		var tags, manifests int
		for _, f := range rep.Findings {
			switch {
			case f.Class == gcoracle.Leak && strings.HasPrefix(f.Object, "tag ns/app:v1"):
				tags++
			case f.Class == gcoracle.Leak && strings.HasPrefix(f.Object, "manifest ns/app@"):
				manifests++
			}
		}
		if tags != 1 || manifests != 1 {
			t.Fatalf("after the window: findings %v; want the tag row and its manifest leaked", rep.Findings)
		}
	})
}

// A stored manifest that a live tag names but whose row is gone: SAFETY.
func TestMissingTaggedManifest(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *registryenv.Env) {
		e.PushImage("ns/app", "v1", []byte("layer"))
		exec(t, e, `UPDATE tag SET manifest_digest = 'sha256:`+strings.Repeat("0", 64)+`'`)
		rep := e.Check(windows)
		if len(rep.Safety()) != 1 || !strings.HasPrefix(rep.Safety()[0].Object, "manifest ns/app@sha256:000") {
			t.Fatalf("findings %v: want the tag's missing manifest as SAFETY", rep.Findings)
		}
	})
}
