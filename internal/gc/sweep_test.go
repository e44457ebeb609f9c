package gc_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/blob"
	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/registry"
)

// commitHook is a byte store that calls after between an upload's bytes
// being committed and the registry's transaction recording their row.
type commitHook struct {
	blob.Store
	after func(key string)
}

func (c *commitHook) UploadCommit(ctx context.Context, id string, want digest.Digest) (string, int64, error) {
	key, n, err := c.Store.UploadCommit(ctx, id, want)
	if err == nil && c.after != nil {
		c.after(key)
	}
	return key, n, err
}

// TestSweepSparesBlobCommittedWhileSettling: an upload commit creates an
// object that already looks older than sweep's cutoff (on AWS S3 a
// multipart-completed object is dated when its upload was initiated), and
// sweep lists it before the commit's transaction inserts its row. Sweep
// only makes it a candidate, waits, and checks it again: the row committed
// during the wait, so the bytes stay and the blob can be pulled.
func TestSweepSparesBlobCommittedWhileSettling(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		content := bytes.Repeat([]byte("committed while sweep settles "), 100)
		d := digest.FromBytes(content)
		settling, committed, swept := make(chan struct{}), make(chan struct{}), make(chan struct{})
		var sw gc.SweepSummary
		var swErr error
		var key string
		hook := &commitHook{Store: h.raw, after: func(k string) {
			key = k
			// The object is now older than the cutoff by the collector's clock.
			h.advance(2 * grace)
			go func() {
				defer close(swept)
				sw, swErr = h.gc.Sweep(h.ctx, gc.SweepOptions{OlderThan: grace, Settle: time.Millisecond, Progress: func(s gc.SweepSummary) {
					if s.Phase == gc.SweepSettling {
						close(settling)
						<-committed // the row commits during the wait
					}
				}})
			}()
			select {
			case <-settling:
			case <-swept: // a sweep that never waits: it had its chance to delete
			}
		}}
		reg := registry.New(h.store, hook, registry.Options{Now: h.clock.Now, Policy: h.opts.Policy})
		// A monolithic push: no upload session names the object while its
		// row is on the way (a session would, on S3: see
		// TestSweepLeavesObjectsOfOpenSessions), so only the wait saves it.
		if _, err := reg.PushBlob(h.ctx, "ns/app", d.String(), int64(len(content)), bytes.NewReader(content)); err != nil {
			t.Fatal(err)
		}
		close(committed)
		<-swept
		if swErr != nil {
			t.Fatal(swErr)
		}
		if sw.Candidates != 1 || sw.Spared != 1 || sw.Leaked != 0 || sw.LeakedUploads != 0 {
			t.Errorf("sweep: got %d candidates, %d spared, %d objects and %d uploads deleted; want 1 candidate spared, nothing deleted (%+v)", sw.Candidates, sw.Spared, sw.Leaked, sw.LeakedUploads, sw)
		}
		if !h.storedKeys()[key] {
			t.Errorf("bytes %s of a committed blob are gone", key)
		}
		if err := h.pullBlob(h.repo("ns/app"), v1.Hash{Algorithm: "sha256", Hex: d.Encoded()}); err != nil {
			t.Errorf("pulling the blob committed during the sweep: %v", err)
		}
	})
}

// TestSweepDeletesInBatches: leaked objects go in one batch delete (one
// DeleteObjects on S3), not one request each, a dry run deletes none, and
// nothing goes while the store cannot make the commits so far durable.
func TestSweepDeletesInBatches(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		var strays []string
		for i := range 3 {
			id := "stray-" + string(rune('a'+i))
			b := []byte("stray bytes " + id)
			if _, err := h.raw.UploadAppend(h.ctx, id, 0, bytes.NewReader(b)); err != nil {
				t.Fatal(err)
			}
			key, _, err := h.raw.UploadCommit(h.ctx, id, digest.FromBytes(b))
			if err != nil {
				t.Fatal(err)
			}
			strays = append(strays, key)
		}
		h.advance(2 * grace)
		dry, err := h.gc.Sweep(h.ctx, gc.SweepOptions{OlderThan: grace, Settle: time.Millisecond, DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		if dry.Leaked != 3 || h.blobs.deletes.Load() != 0 {
			t.Fatalf("dry run: reported %d leaked, deleted %d keys; want 3 reported, none deleted", dry.Leaked, h.blobs.deletes.Load())
		}
		// A store that cannot make the collector's commits durable: sweep
		// deletes nothing and says why (gc.md, "its bytes wait for one").
		unsynced := &unsyncable{Store: h.store}
		unsynced.fail.Store(true)
		if _, err := gc.New(unsynced, h.blobs, h.opts).Sweep(h.ctx, gc.SweepOptions{OlderThan: grace, Settle: time.Millisecond}); err == nil || !strings.Contains(err.Error(), "syncing committed transactions") {
			t.Fatalf("sweep whose store cannot sync: %v, want the sync's failure", err)
		}
		if unsynced.calls.Load() != 1 || h.blobs.deletes.Load() != 0 {
			t.Fatalf("sweep whose store cannot sync: %d syncs, %d keys deleted; want 1 and none", unsynced.calls.Load(), h.blobs.deletes.Load())
		}
		batches := h.blobs.batches.Load()
		sw, err := h.gc.Sweep(h.ctx, gc.SweepOptions{OlderThan: grace, Settle: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if sw.Leaked != 3 || h.blobs.deletes.Load() != 3 {
			t.Fatalf("sweep: %d leaked, %d keys deleted; want 3 and 3", sw.Leaked, h.blobs.deletes.Load())
		}
		if got := h.blobs.batches.Load() - batches; got != 1 {
			t.Errorf("sweep: %d batch deletes for 3 keys, want 1", got)
		}
		keys := h.storedKeys()
		for _, k := range strays {
			if keys[k] {
				t.Errorf("stray %s still stored", k)
			}
		}
	})
}

// TestSweepLeavesObjectsOfOpenSessions: on a store whose keys name their
// upload (S3), an object committed by an upload whose session is still open
// is that session's: a commit retried after its first Complete landed but
// whose answer was lost records it then. Sweep leaves it, however old it
// looks, and takes it once the session is gone.
func TestSweepLeavesObjectsOfOpenSessions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		if _, ok := h.raw.(blob.UploadKeyer); !ok {
			t.Skip("keys of this store do not name their upload")
		}
		up, err := h.reg.StartUpload(h.ctx, "ns/app")
		if err != nil {
			t.Fatal(err)
		}
		b := []byte("committed, row not yet recorded")
		if _, err := h.raw.UploadAppend(h.ctx, up.ID, 0, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		key, _, err := h.raw.UploadCommit(h.ctx, up.ID, digest.FromBytes(b))
		if err != nil {
			t.Fatal(err)
		}
		h.advance(2 * grace)
		sw, err := h.gc.Sweep(h.ctx, gc.SweepOptions{OlderThan: grace, Settle: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if sw.Leaked != 0 || !h.storedKeys()[key] {
			t.Fatalf("sweep with the session open: deleted %d objects (%v), want the session's object kept", sw.Leaked, sw.Keys)
		}
		if err := h.reg.CancelUpload(h.ctx, "ns/app", up.ID); err != nil {
			t.Fatal(err)
		}
		sw, err = h.gc.Sweep(h.ctx, gc.SweepOptions{OlderThan: grace, Settle: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if sw.Leaked != 1 || h.storedKeys()[key] {
			t.Fatalf("sweep after the session ended: deleted %v, want %s", sw.Keys, key)
		}
	})
}
