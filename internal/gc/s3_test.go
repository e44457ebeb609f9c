package gc_test

// The collector on S3 (gc.md "Bytes on S3"): the harness's S3 backend, and
// the tests that look at the bucket itself rather than through blob.Store —
// multipart uploads aborted by the collector and by sweep, staging objects,
// and the race of two replicas on one upload id.

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/blob"
	"github.com/berth/berth/internal/blob/s3"
	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/testenv/registryenv"
)

// s3Blobs is a blob/s3 store on a fresh bucket of the test's versitygw,
// set up as the harness's (gcS3), with its bucket.
func s3Blobs(t testing.TB) (blob.Store, *registryenv.Bucket) {
	t.Helper()
	return registryenv.NewS3(t, gcS3)
}

// onS3 runs fn on a harness over PostgreSQL and S3 only.
func onS3(t *testing.T, fn func(t *testing.T, h *harness)) {
	t.Helper()
	t.Parallel()
	fn(t, newHarness(t, registryenv.ByName(t, registryenv.PostgresS3)))
}

// TestS3AbandonedUploadAbortsMultipart: an upload started over the API with
// more than a part (so the S3 store has a multipart upload and a staging
// tail) and left idle past the upload expiry is collected with its session,
// and the collector's UploadAbort leaves no multipart upload and no staging
// object in the bucket.
func TestS3AbandonedUploadAbortsMultipart(t *testing.T) {
	onS3(t, func(t *testing.T, h *harness) {
		resp, body := h.do("POST", "/v2/ns/app/blobs/uploads/", nil, nil)
		h.expect(resp, body, http.StatusAccepted)
		chunk := bytes.Repeat([]byte("p"), s3.MinPartSize+4096)
		resp, body = h.do("PATCH", resp.Header.Get("Location"), map[string]string{"Content-Type": "application/octet-stream"}, chunk)
		h.expect(resp, body, http.StatusAccepted)
		if n := len(h.s3.Multipart(t)); n != 1 {
			t.Fatalf("%d multipart uploads after a PATCH of a part and more, want 1", n)
		}
		if len(h.s3.Staging(t)) == 0 {
			t.Fatal("no staging object after a PATCH")
		}
		h.advance(uploadExpiry / 2)
		h.collect()
		if n := len(h.s3.Multipart(t)); n != 1 {
			t.Fatalf("an upload inside its expiry was aborted (%d multipart uploads)", n)
		}
		h.advance(uploadExpiry)
		if s := h.collect(); s.Deleted["upload"] != 1 {
			t.Fatalf("deleted %v, want 1 upload", s.Deleted)
		}
		if mp := h.s3.Multipart(t); len(mp) != 0 {
			t.Errorf("multipart uploads left after the collector: %v", mp)
		}
		if st := h.s3.Staging(t); len(st) != 0 {
			t.Errorf("staging objects left after the collector: %v", st)
		}
		h.fixedPoint()
	})
}

// TestS3SweepLeftovers: sweep lists the bucket (prefix-paged) and removes,
// once older than the grace, the three leftovers a crash can leave on S3 —
// committed bytes with no row, a staging upload (state and tail) with no
// session, and a multipart upload whose first append died before writing
// its state — and nothing that a row or a session names.
func TestS3SweepLeftovers(t *testing.T) {
	onS3(t, func(t *testing.T, h *harness) {
		keep := randomImage(t, 2)
		h.pushImage("ns/app", "keep", keep)
		resp, body := h.do("POST", "/v2/ns/app/blobs/uploads/", nil, nil)
		h.expect(resp, body, http.StatusAccepted)
		resp, body = h.do("PATCH", resp.Header.Get("Location"), map[string]string{"Content-Type": "application/octet-stream"}, []byte("an open session"))
		h.expect(resp, body, http.StatusAccepted)

		stray, err := h.writeStray()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.raw.UploadAppend(h.ctx, "crashed-session", 0, strings.NewReader("no session row")); err != nil {
			t.Fatal(err)
		}
		orphan := h.s3.Config.Prefix + "blobs/crashed-first-append/0123456789abcdef0123456789abcdef"
		if _, err := h.s3.Client.CreateMultipartUpload(h.ctx, &awss3.CreateMultipartUploadInput{Bucket: aws.String(h.s3.Config.Bucket), Key: aws.String(orphan)}); err != nil {
			t.Fatal(err)
		}
		// Not older than the grace yet: sweep leaves everything.
		sw, err := h.gc.Sweep(h.ctx, gc.SweepOptions{OlderThan: grace})
		if err != nil {
			t.Fatal(err)
		}
		if sw.Leaked != 0 || sw.LeakedUploads != 0 {
			t.Fatalf("sweep of fresh leftovers: %+v", sw)
		}
		h.advance(2 * grace)
		sw, err = h.gc.Sweep(h.ctx, gc.SweepOptions{OlderThan: grace})
		if err != nil {
			t.Fatal(err)
		}
		if sw.Leaked != 1 || sw.Keys[0] != stray {
			t.Errorf("sweep deleted %d objects %v, want only %s", sw.Leaked, sw.Keys, stray)
		}
		// The open session's staging is known; the other two are not.
		if sw.LeakedUploads != 2 {
			t.Errorf("sweep deleted %d staging uploads, want 2 (the session-less staging and the orphan multipart upload): %+v", sw.LeakedUploads, sw)
		}
		if mp := h.s3.Multipart(t); len(mp) != 0 {
			t.Errorf("multipart uploads left after sweep: %v", mp)
		}
		for _, o := range h.s3.Staging(t) {
			if strings.Contains(o, "/crashed-session/") {
				t.Errorf("staging object %s left after sweep", o)
			}
		}
		h.assertPullable(h.tag("ns/app", "keep"))
		h.fixedPoint()
	})
}

// TestS3TwoReplicasOnOneUploadID is the race of gc.md "Bytes on S3": two
// replicas append to one upload id from the same offset (one was killed
// after its part reached S3, or its state write arrives late), so one part
// number of one multipart upload is written twice and the state that wins
// may describe the other replica's bytes. The store cannot commit wrong
// bytes: the digest is checked against the hash state saved with the parts,
// and CompleteMultipartUpload checks every part's ETag against the state's.
func TestS3TwoReplicasOnOneUploadID(t *testing.T) {
	t.Parallel()
	raw, bucket := s3Blobs(t)
	// A second replica: another Store on the same bucket.
	other, err := s3.New(context.Background(), bucket.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const id = "raced-upload"
	part := int64(s3.MinPartSize)
	first := bytes.Repeat([]byte("1"), int(part))
	x := bytes.Repeat([]byte("x"), int(part)+10) // replica A's second part (and a tail)
	y := bytes.Repeat([]byte("y"), int(part)+10) // replica B's, same offset
	if _, err := raw.UploadAppend(ctx, id, 0, bytes.NewReader(first)); err != nil {
		t.Fatal(err)
	}
	state := bucket.Config.Prefix + "uploads/" + id + "/state"
	before := bucket.Get(t, state)
	if _, err := raw.UploadAppend(ctx, id, part, bytes.NewReader(x)); err != nil {
		t.Fatal(err)
	}
	stateA := bucket.Get(t, state)
	// B read the state before A's append committed: put it back, append Y.
	bucket.Put(t, state, before)
	if _, err := other.UploadAppend(ctx, id, part, bytes.NewReader(y)); err != nil {
		t.Fatal(err)
	}
	// A's state write arrives last: it names part 2 with X's ETag, while
	// part 2 on S3 now holds Y.
	bucket.Put(t, state, stateA)

	digestX := digest.FromBytes(append(append([]byte{}, first...), x...))
	digestY := digest.FromBytes(append(append([]byte{}, first...), y...))
	if _, _, err := other.UploadCommit(ctx, id, digestY); !errors.Is(err, blob.ErrDigestMismatch) {
		t.Errorf("commit with Y's digest over X's hash state: %v, want ErrDigestMismatch", err)
	}
	key, _, err := raw.UploadCommit(ctx, id, digestX)
	if err == nil {
		// S3 accepted the parts: then they must be exactly X.
		rd, err := raw.Open(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		got, err := digest.FromReader(rd)
		rd.Close()
		if err != nil || got != digestX {
			t.Fatalf("SAFETY: committed %s hashing to %s (%v), want %s", key, got, err, digestX)
		}
		t.Fatalf("commit over a part overwritten by another replica succeeded (bytes happen to be right)")
	}
	t.Logf("commit refused as it must be: %v", err)
	// Nothing was committed, and aborting leaves nothing.
	n := 0
	if err := raw.Walk(ctx, func(blob.Info) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d committed objects after a refused commit", n)
	}
	if err := other.UploadAbort(ctx, id); err != nil {
		t.Fatal(err)
	}
	if mp := bucket.Multipart(t); len(mp) != 0 {
		t.Errorf("multipart uploads left after abort: %v", mp)
	}
	if obj := bucket.Objects(t); len(obj) != 0 {
		t.Errorf("objects left after abort: %v", obj)
	}
}
