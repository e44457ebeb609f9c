// Package blobtest is the behavioural suite every blob.Store backend must
// pass. A backend's test file calls Run (and Benchmark) with a constructor
// that returns a fresh, empty store per call.
package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/blob"
)

// Run runs the suite. newStore must return a new, empty store each call;
// it should register its own cleanup with t.
func Run(t *testing.T, newStore func(t *testing.T) blob.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s blob.Store)
	}{
		{"AppendCommitRead", testAppendCommitRead},
		{"DigestMismatch", testDigestMismatch},
		{"UnsupportedDigest", testUnsupportedDigest},
		{"Offset", testOffset},
		{"UploadSize", testUploadSize},
		{"AppendReadError", testAppendReadError},
		{"AppendCancelled", testAppendCancelled},
		{"Abort", testAbort},
		{"Missing", testMissing},
		{"Delete", testDelete},
		{"SameDigestTwoKeys", testSameDigestTwoKeys},
		{"Walk", testWalk},
		{"WalkStops", testWalkStops},
		{"InvalidNames", testInvalidNames},
		{"SeekRange", testSeekRange},
		{"ConcurrentAppend", testConcurrentAppend},
		{"ConcurrentUploads", testConcurrentUploads},
		{"Large", testLarge},
		{"Ping", testPing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newStore(t))
		})
	}
}

// testPing: a store that can be pinged answers nil when fresh and when
// it holds objects and uploads. (Each backend's tests make it fail.)
func testPing(t *testing.T, s blob.Store) {
	p, ok := s.(blob.Pinger)
	if !ok {
		t.Skip("the store is not a blob.Pinger")
	}
	ctx := context.Background()
	if err := p.Ping(ctx); err != nil {
		t.Fatalf("Ping of a fresh store: %v", err)
	}
	put(t, s, "ping-1", data(1, 100))
	if _, err := s.UploadAppend(ctx, "ping-2", 0, bytes.NewReader(data(2, 10))); err != nil {
		t.Fatal(err)
	}
	if err := p.Ping(ctx); err != nil {
		t.Fatalf("Ping of a store in use: %v", err)
	}
}

// data returns n deterministic pseudo-random bytes.
func data(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)})
	_, _ = r.Read(b)
	return b
}

// upload appends b to a fresh upload id in chunks of chunk bytes (all at once
// if chunk <= 0) and returns the id.
func upload(t testing.TB, s blob.Store, id string, b []byte, chunk int) {
	t.Helper()
	ctx := context.Background()
	if chunk <= 0 {
		chunk = max(len(b), 1)
	}
	off := int64(0)
	for first := true; first || off < int64(len(b)); first = false {
		end := min(off+int64(chunk), int64(len(b)))
		got, err := s.UploadAppend(ctx, id, off, bytes.NewReader(b[off:end]))
		if err != nil {
			t.Fatalf("UploadAppend(%s, %d): %v", id, off, err)
		}
		if got != end {
			t.Fatalf("UploadAppend(%s, %d): got size %d, want %d", id, off, got, end)
		}
		off = end
	}
}

// put uploads b and commits it under a new key, returning the key.
func put(t testing.TB, s blob.Store, id string, b []byte) string {
	t.Helper()
	d := digest.FromBytes(b)
	upload(t, s, id, b, 0)
	key, size, err := s.UploadCommit(context.Background(), id, d)
	if err != nil {
		t.Fatalf("UploadCommit(%s): %v", id, err)
	}
	if size != int64(len(b)) {
		t.Fatalf("UploadCommit(%s): got size %d, want %d", id, size, len(b))
	}
	return key
}

func readAll(t testing.TB, s blob.Store, key string) []byte {
	t.Helper()
	r, err := s.Open(context.Background(), key)
	if err != nil {
		t.Fatalf("Open(%s): %v", key, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading %s: %v", key, err)
	}
	if r.Size() != int64(len(b)) {
		t.Errorf("Open(%s).Size(): got %d, want %d (bytes read)", key, r.Size(), len(b))
	}
	return b
}

func testAppendCommitRead(t *testing.T, s blob.Store) {
	ctx := context.Background()
	tests := []struct {
		name  string
		alg   digest.Algorithm
		size  int
		chunk int
	}{
		{"empty", digest.SHA256, 0, 0},
		{"one byte", digest.SHA256, 1, 0},
		{"single chunk", digest.SHA256, 100_000, 0},
		{"byte chunks", digest.SHA256, 100, 1},
		{"uneven chunks", digest.SHA256, 1_000_003, 65_536},
		{"sha512", digest.SHA512, 300_000, 70_000},
		{"sha512 empty", digest.SHA512, 0, 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := data(uint64(i), tt.size)
			d := tt.alg.FromBytes(b)
			id := fmt.Sprintf("acr-%d", i)
			upload(t, s, id, b, tt.chunk)
			key, size, err := s.UploadCommit(ctx, id, d)
			if err != nil {
				t.Fatalf("UploadCommit: got %v, want nil", err)
			}
			if size != int64(tt.size) {
				t.Errorf("UploadCommit: got size %d, want %d", size, tt.size)
			}
			if got := readAll(t, s, key); !bytes.Equal(got, b) {
				t.Errorf("read back %d bytes (digest %s), want %d bytes (digest %s)", len(got), tt.alg.FromBytes(got), len(b), d)
			}
			info, err := s.Stat(ctx, key)
			if err != nil {
				t.Fatalf("Stat: got %v, want nil", err)
			}
			if info.Key != key || info.Size != int64(tt.size) || info.ModTime.IsZero() {
				t.Errorf("Stat: got %+v, want key %s, size %d, non-zero ModTime", info, key, tt.size)
			}
			if _, err := s.UploadSize(ctx, id); !errors.Is(err, blob.ErrNotFound) {
				t.Errorf("UploadSize after commit: got %v, want ErrNotFound", err)
			}
		})
	}
}

func testDigestMismatch(t *testing.T, s blob.Store) {
	ctx := context.Background()
	b := data(1, 4096)
	tests := []struct {
		name string
		want digest.Digest
	}{
		{"other sha256", digest.FromString("other")},
		{"right bytes wrong algorithm", digest.NewDigestFromEncoded(digest.SHA512, digest.SHA512.FromString("x").Encoded())},
		{"prefix only", digest.FromBytes(b[:4095])},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("mismatch-%d", i)
			upload(t, s, id, b, 1000)
			before := Count(t, s)
			if key, _, err := s.UploadCommit(ctx, id, tt.want); !errors.Is(err, blob.ErrDigestMismatch) {
				t.Fatalf("UploadCommit: got key %q, %v, want ErrDigestMismatch", key, err)
			}
			if n := Count(t, s); n != before {
				t.Errorf("Walk after mismatch: got %d objects, want %d (nothing committed)", n, before)
			}
			// The staging object is left for the caller to continue or abort.
			if size, err := s.UploadSize(ctx, id); err != nil || size != int64(len(b)) {
				t.Errorf("UploadSize after mismatch: got %d, %v, want %d, nil", size, err, len(b))
			}
			// The right digest still commits.
			d := digest.FromBytes(b)
			good, _, err := s.UploadCommit(ctx, id, d)
			if err != nil {
				t.Fatalf("UploadCommit with the right digest: got %v, want nil", err)
			}
			if got := readAll(t, s, good); !bytes.Equal(got, b) {
				t.Errorf("read back after retry: got %d bytes, want %d", len(got), len(b))
			}
		})
	}
}

func testUnsupportedDigest(t *testing.T, s blob.Store) {
	ctx := context.Background()
	upload(t, s, "unsupported", []byte("abc"), 0)
	for _, d := range []digest.Digest{"", "sha256:zz", digest.SHA384.FromString("abc"), "md5:900150983cd24fb0d6963f7d28e17f72"} {
		if _, _, err := s.UploadCommit(ctx, "unsupported", d); !errors.Is(err, blob.ErrUnsupportedDigest) {
			t.Errorf("UploadCommit(%q): got %v, want ErrUnsupportedDigest", d, err)
		}
	}
	if size, err := s.UploadSize(ctx, "unsupported"); err != nil || size != 3 {
		t.Errorf("UploadSize: got %d, %v, want 3, nil", size, err)
	}
}

func testOffset(t *testing.T, s blob.Store) {
	ctx := context.Background()
	upload(t, s, "off", []byte("0123456789"), 0)
	tests := []struct {
		name   string
		id     string
		offset int64
		size   int64 // the size afterwards
	}{
		{"before end", "off", 5, 10},
		{"zero on existing", "off", 0, 10},
		{"past end", "off", 11, 10},
		{"negative", "off", -1, 10},
		{"nonzero on missing", "off-missing", 3, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.UploadAppend(ctx, tt.id, tt.offset, bytes.NewReader([]byte("xyz")))
			if !errors.Is(err, blob.ErrOffset) {
				t.Fatalf("UploadAppend at %d: got %v, want ErrOffset", tt.offset, err)
			}
			size, err := s.UploadSize(ctx, tt.id)
			if tt.size == 0 {
				if !errors.Is(err, blob.ErrNotFound) {
					t.Errorf("UploadSize: got %d, %v, want ErrNotFound (nothing created)", size, err)
				}
				return
			}
			if err != nil || size != tt.size {
				t.Errorf("UploadSize: got %d, %v, want %d, nil", size, err, tt.size)
			}
		})
	}
	if size, err := s.UploadAppend(ctx, "off", 10, bytes.NewReader([]byte("ab"))); err != nil || size != 12 {
		t.Fatalf("UploadAppend at the right offset: got %d, %v, want 12, nil", size, err)
	}
}

func testUploadSize(t *testing.T, s blob.Store) {
	ctx := context.Background()
	if _, err := s.UploadSize(ctx, "size"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("UploadSize of a missing upload: got %v, want ErrNotFound", err)
	}
	if n, err := s.UploadAppend(ctx, "size", 0, bytes.NewReader(nil)); err != nil || n != 0 {
		t.Fatalf("UploadAppend of nothing: got %d, %v, want 0, nil", n, err)
	}
	want := int64(0)
	for i, n := range []int{0, 7, 1, 4096} {
		if size, err := s.UploadSize(ctx, "size"); err != nil || size != want {
			t.Fatalf("UploadSize after %d appends: got %d, %v, want %d, nil", i, size, err, want)
		}
		got, err := s.UploadAppend(ctx, "size", want, bytes.NewReader(make([]byte, n)))
		want += int64(n)
		if err != nil || got != want {
			t.Fatalf("UploadAppend %d: got %d, %v, want %d, nil", i, got, err, want)
		}
	}
}

var errBroken = errors.New("client went away")

// brokenReader yields n bytes, then errBroken.
type brokenReader struct{ n int }

func (r *brokenReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, errBroken
	}
	k := min(len(p), r.n)
	for i := range p[:k] {
		p[i] = 'x'
	}
	r.n -= k
	return k, nil
}

func testAppendReadError(t *testing.T, s blob.Store) {
	ctx := context.Background()
	// On the first append nothing is left behind.
	if _, err := s.UploadAppend(ctx, "broken", 0, &brokenReader{n: 100_000}); !errors.Is(err, errBroken) {
		t.Fatalf("UploadAppend with a failing reader: got %v, want errBroken", err)
	}
	if _, err := s.UploadSize(ctx, "broken"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("UploadSize after a failed first append: got %v, want ErrNotFound", err)
	}
	// Later, the upload keeps the size it had before the failed call.
	b := data(2, 3000)
	upload(t, s, "broken", b[:1000], 0)
	size, err := s.UploadAppend(ctx, "broken", 1000, &brokenReader{n: 5_000_000})
	if !errors.Is(err, errBroken) {
		t.Fatalf("UploadAppend with a failing reader: got %v, want errBroken", err)
	}
	if size != 1000 {
		t.Errorf("UploadAppend with a failing reader: got size %d, want 1000", size)
	}
	if size, err := s.UploadSize(ctx, "broken"); err != nil || size != 1000 {
		t.Fatalf("UploadSize after a failed append: got %d, %v, want 1000, nil", size, err)
	}
	// The client resumes at the acknowledged offset.
	if size, err := s.UploadAppend(ctx, "broken", 1000, bytes.NewReader(b[1000:])); err != nil || size != 3000 {
		t.Fatalf("UploadAppend resume: got %d, %v, want 3000, nil", size, err)
	}
	key, _, err := s.UploadCommit(ctx, "broken", digest.FromBytes(b))
	if err != nil {
		t.Fatalf("UploadCommit after resume: got %v, want nil", err)
	}
	if got := readAll(t, s, key); !bytes.Equal(got, b) {
		t.Errorf("read back after resume: got %d bytes, want %d", len(got), len(b))
	}
}

func testAppendCancelled(t *testing.T, s blob.Store) {
	upload(t, s, "cancel", []byte("abc"), 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.UploadAppend(ctx, "cancel", 3, bytes.NewReader([]byte("def"))); !errors.Is(err, context.Canceled) {
		t.Fatalf("UploadAppend with a cancelled context: got %v, want context.Canceled", err)
	}
	if size, err := s.UploadSize(context.Background(), "cancel"); err != nil || size != 3 {
		t.Errorf("UploadSize after a cancelled append: got %d, %v, want 3, nil", size, err)
	}
}

func testAbort(t *testing.T, s blob.Store) {
	ctx := context.Background()
	if err := s.UploadAbort(ctx, "abort"); err != nil {
		t.Fatalf("UploadAbort of a missing upload: got %v, want nil", err)
	}
	upload(t, s, "abort", []byte("some bytes"), 3)
	for i := range 2 {
		if err := s.UploadAbort(ctx, "abort"); err != nil {
			t.Fatalf("UploadAbort #%d: got %v, want nil", i+1, err)
		}
		if _, err := s.UploadSize(ctx, "abort"); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("UploadSize after abort #%d: got %v, want ErrNotFound", i+1, err)
		}
	}
	d := digest.FromString("some bytes")
	if _, _, err := s.UploadCommit(ctx, "abort", d); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("UploadCommit after abort: got %v, want ErrNotFound", err)
	}
	// The id can be reused from offset 0.
	if size, err := s.UploadAppend(ctx, "abort", 0, bytes.NewReader([]byte("new"))); err != nil || size != 3 {
		t.Errorf("UploadAppend after abort: got %d, %v, want 3, nil", size, err)
	}
}

func testMissing(t *testing.T, s blob.Store) {
	ctx := context.Background()
	put(t, s, "present", []byte("present")) // a store that is not empty
	d := digest.FromString("never uploaded")
	key := blob.NewKey(d)
	if _, err := s.Open(ctx, key); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Open(missing): got %v, want ErrNotFound", err)
	}
	if _, err := s.Stat(ctx, key); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Stat(missing): got %v, want ErrNotFound", err)
	}
	// A prefix of a real key names no object either.
	if _, err := s.Stat(ctx, "sha256"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Stat(key prefix): got %v, want ErrNotFound", err)
	}
	if _, err := s.Open(ctx, "sha256"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Open(key prefix): got %v, want ErrNotFound", err)
	}
	if _, err := s.UploadSize(ctx, "missing"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("UploadSize(missing): got %v, want ErrNotFound", err)
	}
	if _, _, err := s.UploadCommit(ctx, "missing", d); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("UploadCommit(missing): got %v, want ErrNotFound", err)
	}
}

func testDelete(t *testing.T, s blob.Store) {
	ctx := context.Background()
	if err := s.Delete(ctx, blob.NewKey(digest.FromString("never"))); err != nil {
		t.Fatalf("Delete of a missing key: got %v, want nil", err)
	}
	key := put(t, s, "del", []byte("to delete"))
	other := put(t, s, "keep", []byte("to keep"))
	for i := range 2 {
		if err := s.Delete(ctx, key); err != nil {
			t.Fatalf("Delete #%d: got %v, want nil", i+1, err)
		}
		if _, err := s.Stat(ctx, key); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Stat after Delete #%d: got %v, want ErrNotFound", i+1, err)
		}
		if _, err := s.Open(ctx, key); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Open after Delete #%d: got %v, want ErrNotFound", i+1, err)
		}
	}
	if got := readAll(t, s, other); string(got) != "to keep" {
		t.Errorf("other object after Delete: got %q, want %q", got, "to keep")
	}
	// Committing again after deletes (which may prune directories) works.
	again := put(t, s, "again", []byte("to delete"))
	if got := readAll(t, s, again); string(got) != "to delete" {
		t.Errorf("re-upload after Delete: got %q, want %q", got, "to delete")
	}
}

// testSameDigestTwoKeys: DESIGN §4 — a re-upload of a digest gets its own key,
// and deleting the old key never touches the new bytes.
func testSameDigestTwoKeys(t *testing.T, s blob.Store) {
	ctx := context.Background()
	b := []byte("same bytes")
	d := digest.FromBytes(b)
	k1 := put(t, s, "first", b)
	k2 := put(t, s, "second", b)
	if k1 == k2 {
		t.Fatalf("two uploads of %s: got the same key %q, want distinct", d, k1)
	}
	for _, k := range []string{k1, k2} {
		if err := blob.ValidKey(k); err != nil {
			t.Errorf("UploadCommit returned key %q: %v", k, err)
		}
		// Backends that name keys after the digest must name the right one.
		if got, err := blob.KeyDigest(k); err == nil && got != d {
			t.Errorf("KeyDigest(%q): got %q, want %q", k, got, d)
		}
	}
	if err := s.Delete(ctx, k1); err != nil {
		t.Fatalf("Delete(first): %v", err)
	}
	if got := readAll(t, s, k2); !bytes.Equal(got, b) {
		t.Errorf("second key after deleting first: got %q, want %q", got, b)
	}
}

func testWalk(t *testing.T, s blob.Store) {
	ctx := context.Background()
	collect := func() (objs, ups map[string]int64) {
		t.Helper()
		objs, ups = map[string]int64{}, map[string]int64{}
		err := s.Walk(ctx, func(i blob.Info) error {
			if _, dup := objs[i.Key]; dup {
				t.Errorf("Walk reported %q twice", i.Key)
			}
			if i.ModTime.IsZero() {
				t.Errorf("Walk: %q has a zero ModTime", i.Key)
			}
			objs[i.Key] = i.Size
			return nil
		})
		if err != nil {
			t.Fatalf("Walk: %v", err)
		}
		err = s.WalkUploads(ctx, func(id string, i blob.Info) error {
			if i.Key != id {
				t.Errorf("WalkUploads: got Info.Key %q, want the id %q", i.Key, id)
			}
			ups[id] = i.Size
			return nil
		})
		if err != nil {
			t.Fatalf("WalkUploads: %v", err)
		}
		return objs, ups
	}
	objs, ups := collect()
	if len(objs) != 0 || len(ups) != 0 {
		t.Fatalf("empty store: got %v objects and %v uploads, want none", objs, ups)
	}

	want := map[string]int64{}
	for i, n := range []int{0, 10, 1000} {
		want[put(t, s, fmt.Sprintf("walk-%d", i), data(uint64(10+i), n))] = int64(n)
	}
	upload(t, s, "staging-a", data(20, 500), 100)
	upload(t, s, "staging-b", nil, 0)
	upload(t, s, "staging-c", []byte("x"), 0)
	if _, _, err := s.UploadCommit(ctx, "staging-c", digest.FromString("y")); !errors.Is(err, blob.ErrDigestMismatch) {
		t.Fatalf("UploadCommit(staging-c): got %v, want ErrDigestMismatch", err)
	}
	deleted := put(t, s, "deleted", []byte("gone"))
	if err := s.Delete(ctx, deleted); err != nil {
		t.Fatalf("Delete: %v", err)
	}

	objs, ups = collect()
	if !mapsEqual(objs, want) {
		t.Errorf("Walk: got %v, want %v", objs, want)
	}
	wantUps := map[string]int64{"staging-a": 500, "staging-b": 0, "staging-c": 1}
	if !mapsEqual(ups, wantUps) {
		t.Errorf("WalkUploads: got %v, want %v", ups, wantUps)
	}
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func testWalkStops(t *testing.T, s blob.Store) {
	ctx := context.Background()
	for i := range 3 {
		put(t, s, fmt.Sprintf("stop-%d", i), []byte{byte(i)})
		upload(t, s, fmt.Sprintf("stopup-%d", i), []byte{byte(i)}, 0)
	}
	stop := errors.New("stop")
	calls := 0
	if err := s.Walk(ctx, func(blob.Info) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Walk with fn failing: got %v after %d calls, want stop after 1", err, calls)
	}
	calls = 0
	if err := s.WalkUploads(ctx, func(string, blob.Info) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Errorf("WalkUploads with fn failing: got %v after %d calls, want stop after 1", err, calls)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Walk(cctx, func(blob.Info) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("Walk with a cancelled context: got %v, want context.Canceled", err)
	}
	if err := s.WalkUploads(cctx, func(string, blob.Info) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("WalkUploads with a cancelled context: got %v, want context.Canceled", err)
	}
}

func testInvalidNames(t *testing.T, s blob.Store) {
	ctx := context.Background()
	d := digest.FromString("abc")
	upload(t, s, "valid", []byte("abc"), 0)
	for _, key := range []string{"", "/etc/passwd", "../escape", "a/../../escape", "a/./b", "a//b", "a/", ".hidden", `a\..\..\b`} {
		if _, err := s.Open(ctx, key); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("Open(%q): got %v, want ErrInvalidKey", key, err)
		}
		if _, err := s.Stat(ctx, key); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("Stat(%q): got %v, want ErrInvalidKey", key, err)
		}
		if err := s.Delete(ctx, key); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("Delete(%q): got %v, want ErrInvalidKey", key, err)
		}
	}
	for _, id := range []string{"", "..", "a/b", "../uploads", "a.b", "a b"} {
		if _, err := s.UploadAppend(ctx, id, 0, bytes.NewReader([]byte("x"))); !errors.Is(err, blob.ErrInvalidUploadID) {
			t.Errorf("UploadAppend(id %q): got %v, want ErrInvalidUploadID", id, err)
		}
		if _, err := s.UploadSize(ctx, id); !errors.Is(err, blob.ErrInvalidUploadID) {
			t.Errorf("UploadSize(id %q): got %v, want ErrInvalidUploadID", id, err)
		}
		if _, _, err := s.UploadCommit(ctx, id, d); !errors.Is(err, blob.ErrInvalidUploadID) {
			t.Errorf("UploadCommit(id %q): got %v, want ErrInvalidUploadID", id, err)
		}
		if err := s.UploadAbort(ctx, id); !errors.Is(err, blob.ErrInvalidUploadID) {
			t.Errorf("UploadAbort(id %q): got %v, want ErrInvalidUploadID", id, err)
		}
	}
	// Nothing was committed by the rejected calls.
	n := 0
	if err := s.Walk(ctx, func(blob.Info) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("Walk after rejected commits: got %d objects, %v, want 0, nil", n, err)
	}
}

func testSeekRange(t *testing.T, s blob.Store) {
	b := data(3, 100_000)
	key := put(t, s, "seek", b)
	r, err := s.Open(context.Background(), key)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer r.Close()
	if r.Size() != int64(len(b)) {
		t.Fatalf("Size: got %d, want %d", r.Size(), len(b))
	}
	tests := []struct {
		name   string
		offset int64
		whence int
		pos    int64 // expected absolute position
		n      int
	}{
		{"start", 0, io.SeekStart, 0, 10},
		{"middle", 50_000, io.SeekStart, 50_000, 1234},
		{"relative", 100, io.SeekCurrent, 50_000 + 1234 + 100, 500},
		{"from end", -10, io.SeekEnd, 99_990, 10},
		{"last byte", int64(len(b)) - 1, io.SeekStart, int64(len(b)) - 1, 1},
		{"back to start", 0, io.SeekStart, 0, len(b)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pos, err := r.Seek(tt.offset, tt.whence)
			if err != nil || pos != tt.pos {
				t.Fatalf("Seek(%d, %d): got %d, %v, want %d, nil", tt.offset, tt.whence, pos, err, tt.pos)
			}
			got := make([]byte, tt.n)
			if _, err := io.ReadFull(r, got); err != nil {
				t.Fatalf("ReadFull(%d): %v", tt.n, err)
			}
			if want := b[tt.pos : tt.pos+int64(tt.n)]; !bytes.Equal(got, want) {
				t.Errorf("bytes [%d, %d): differ from what was uploaded", tt.pos, tt.pos+int64(tt.n))
			}
		})
	}
	// At the end, Read reports EOF.
	if _, err := r.Seek(0, io.SeekEnd); err != nil {
		t.Fatalf("Seek to end: %v", err)
	}
	if n, err := r.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("Read at end: got %d, %v, want 0, io.EOF", n, err)
	}
	// A section, as http.ServeContent reads a Range.
	sec := io.NewSectionReader(readerAt{r}, 1000, 2000)
	got, err := io.ReadAll(sec)
	if err != nil || !bytes.Equal(got, b[1000:3000]) {
		t.Errorf("section [1000, 3000): got %d bytes, %v, want the uploaded bytes", len(got), err)
	}
}

// readerAt reads at an offset through Seek+Read, as a Range request does.
type readerAt struct{ r io.ReadSeeker }

func (a readerAt) ReadAt(p []byte, off int64) (int, error) {
	if _, err := a.r.Seek(off, io.SeekStart); err != nil {
		return 0, err
	}
	return io.ReadFull(a.r, p)
}

func testConcurrentAppend(t *testing.T, s blob.Store) {
	ctx := context.Background()
	const writers = 8
	chunks := make([][]byte, writers)
	for i := range chunks {
		chunks[i] = data(uint64(100+i), 256<<10)
	}
	upload(t, s, "race", []byte("head"), 0)
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			_, errs[i] = s.UploadAppend(ctx, "race", 4, bytes.NewReader(chunks[i]))
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("writers %d and %d both succeeded at the same offset, want exactly one", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, blob.ErrOffset):
			t.Errorf("writer %d: got %v, want nil or ErrOffset", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer succeeded, want exactly one")
	}
	want := append([]byte("head"), chunks[winner]...)
	d := digest.FromBytes(want)
	key, _, err := s.UploadCommit(ctx, "race", d)
	if err != nil {
		t.Fatalf("UploadCommit: got %v, want nil (the winner's bytes, uncorrupted)", err)
	}
	if got := readAll(t, s, key); !bytes.Equal(got, want) {
		t.Errorf("read back: got %d bytes, want %d (head + writer %d)", len(got), len(want), winner)
	}
}

// testConcurrentUploads: distinct uploads proceed in parallel without
// interfering, including commit racing with append on another id.
func testConcurrentUploads(t *testing.T, s blob.Store) {
	ctx := context.Background()
	const n = 8
	keys := make([]string, n)
	blobs := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		blobs[i] = data(uint64(200+i), 100_000+i)
		wg.Go(func() {
			id := fmt.Sprintf("par-%d", i)
			off := int64(0)
			for off < int64(len(blobs[i])) {
				end := min(off+7000, int64(len(blobs[i])))
				size, err := s.UploadAppend(ctx, id, off, bytes.NewReader(blobs[i][off:end]))
				if err != nil || size != end {
					t.Errorf("UploadAppend(%s, %d): got %d, %v, want %d, nil", id, off, size, err, end)
					return
				}
				off = end
			}
			d := digest.FromBytes(blobs[i])
			key, _, err := s.UploadCommit(ctx, id, d)
			keys[i] = key
			if err != nil {
				t.Errorf("UploadCommit(%s): %v", id, err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for i, k := range keys {
		if got := readAll(t, s, k); !bytes.Equal(got, blobs[i]) {
			t.Errorf("upload %d: read back %d bytes, want %d", i, len(got), len(blobs[i]))
		}
	}
}

// stream is a deterministic reader of n pseudo-random bytes that never holds
// them all in memory.
func stream(seed uint64, n int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{byte(seed), 0xff}), n)
}

func testLarge(t *testing.T, s blob.Store) {
	if testing.Short() {
		t.Skip("64 MiB upload skipped in -short mode")
	}
	ctx := context.Background()
	const size = 64 << 20
	const chunk = 10 << 20 // uneven: the last chunk is short
	h := sha256.New()
	src := io.TeeReader(stream(7, size), h)
	off := int64(0)
	for off < size {
		n := min(int64(chunk), size-off)
		got, err := s.UploadAppend(ctx, "large", off, io.LimitReader(src, n))
		if err != nil || got != off+n {
			t.Fatalf("UploadAppend at %d: got %d, %v, want %d, nil", off, got, err, off+n)
		}
		off += n
	}
	d := digest.NewDigest(digest.SHA256, h)
	key, got, err := s.UploadCommit(ctx, "large", d)
	if err != nil || got != size {
		t.Fatalf("UploadCommit: got %d, %v, want %d, nil", got, err, size)
	}
	r, err := s.Open(ctx, key)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer r.Close()
	if r.Size() != size {
		t.Errorf("Size: got %d, want %d", r.Size(), size)
	}
	h2 := sha256.New()
	n, err := io.Copy(h2, r)
	if err != nil || n != size {
		t.Fatalf("reading back: got %d bytes, %v, want %d, nil", n, err, size)
	}
	if got := digest.NewDigest(digest.SHA256, h2); got != d {
		t.Errorf("read back: got digest %s, want %s", got, d)
	}
}

// Benchmark measures a 64 MiB upload (appended in 8 MiB chunks, then
// committed) and a 64 MiB streamed read. newStore must return a fresh store.
func Benchmark(b *testing.B, newStore func(tb testing.TB) blob.Store) {
	const size = 64 << 20
	const chunk = 8 << 20
	payload := data(9, size)
	d := digest.FromBytes(payload)
	ctx := context.Background()

	b.Run("UploadAppendCommit/64MiB", func(b *testing.B) {
		s := newStore(b)
		b.SetBytes(size)
		i := 0
		for b.Loop() {
			id := fmt.Sprintf("bench-%d", i)
			i++
			for off := 0; off < size; off += chunk {
				if _, err := s.UploadAppend(ctx, id, int64(off), bytes.NewReader(payload[off:off+chunk])); err != nil {
					b.Fatalf("UploadAppend: %v", err)
				}
			}
			key, _, err := s.UploadCommit(ctx, id, d)
			if err != nil {
				b.Fatalf("UploadCommit: %v", err)
			}
			b.StopTimer()
			if err := s.Delete(ctx, key); err != nil {
				b.Fatalf("Delete: %v", err)
			}
			b.StartTimer()
		}
	})

	b.Run("OpenRead/64MiB", func(b *testing.B) {
		s := newStore(b)
		key := put(b, s, "bench-read", payload)
		buf := make([]byte, 1<<20)
		b.SetBytes(size)
		for b.Loop() {
			r, err := s.Open(ctx, key)
			if err != nil {
				b.Fatalf("Open: %v", err)
			}
			n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf)
			r.Close()
			if err != nil || n != size {
				b.Fatalf("read: got %d, %v, want %d, nil", n, err, size)
			}
		}
	})
}

// Count returns how many committed objects Walk reports.
func Count(t testing.TB, s blob.Store) int {
	t.Helper()
	n := 0
	if err := s.Walk(context.Background(), func(blob.Info) error { n++; return nil }); err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return n
}
