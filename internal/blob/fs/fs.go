package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/berth/berth/internal/blob"
	"github.com/berth/berth/internal/datadir"
)

const (
	blobsDir   = "blobs"
	uploadsDir = "uploads"
	tmpDir     = "tmp"

	copyBufSize = 1 << 20 // bounded memory for appends and hashing
	walkBatch   = 256
)

var (
	_ blob.Store  = (*Store)(nil)
	_ blob.Pinger = (*Store)(nil)
)

// Store is a blob.Store over a directory. See the package documentation for
// the on-disk layout.
type Store struct {
	root    string
	blobs   string
	uploads string

	locks blob.IDLocks
	bufs  sync.Pool
}

// New opens (creating if needed) a store rooted at root.
func New(root string) (*Store, error) {
	if root == "" {
		return nil, errors.New("opening blob store: empty root")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("opening blob store: %w", err)
	}
	for _, d := range []string{blobsDir, uploadsDir, tmpDir} {
		if err := datadir.MkdirAll(filepath.Join(abs, d)); err != nil {
			return nil, fmt.Errorf("opening blob store: %w", err)
		}
	}
	if err := syncDir(abs); err != nil {
		return nil, fmt.Errorf("opening blob store: %w", err)
	}
	s := &Store{
		root:    abs,
		blobs:   filepath.Join(abs, blobsDir),
		uploads: filepath.Join(abs, uploadsDir),
	}
	s.bufs.New = func() any { b := make([]byte, copyBufSize); return &b }
	return s, nil
}

// Root returns the store's absolute root directory.
func (s *Store) Root() string { return s.root }

// Ping checks that the root and its blobs and uploads directories are
// still there, directories: one stat each. A removed or unmounted root
// fails it (an unmounted one only when its mount point lacks them).
func (s *Store) Ping(ctx context.Context) error {
	for _, d := range []string{s.root, s.blobs, s.uploads} {
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("checking blob store: %w", err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("checking blob store: %s is not a directory", d)
		}
	}
	return nil
}

func (s *Store) uploadPath(id string) (string, error) {
	if err := blob.ValidUploadID(id); err != nil {
		return "", err
	}
	return filepath.Join(s.uploads, id), nil
}

func (s *Store) keyPath(key string) (string, error) {
	if err := blob.ValidKey(key); err != nil {
		return "", err
	}
	p := filepath.Join(s.blobs, filepath.FromSlash(key))
	// ValidKey already forbids "..", absolute keys and separators other
	// than "/"; this is a second line of defence.
	if rel, err := filepath.Rel(s.blobs, p); err != nil || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("key %q escapes the store: %w", key, blob.ErrInvalidKey)
	}
	return p, nil
}

// UploadAppend implements blob.Store.
func (s *Store) UploadAppend(ctx context.Context, id string, offset int64, r io.Reader) (_ int64, err error) {
	p, err := s.uploadPath(id)
	if err != nil {
		return 0, fmt.Errorf("appending to upload: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("appending to upload %s: %w", id, err)
	}
	unlock := s.locks.Lock(id)
	defer unlock()

	created := false
	size := int64(0)
	switch fi, err := os.Stat(p); {
	case err == nil:
		size = fi.Size()
	case errors.Is(err, fs.ErrNotExist):
		created = true
	default:
		return 0, fmt.Errorf("appending to upload %s: %w", id, err)
	}
	if offset != size {
		return size, fmt.Errorf("appending to upload %s at offset %d, size is %d: %w", id, offset, size, blob.ErrOffset)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, datadir.FileMode)
	if err != nil {
		return size, fmt.Errorf("appending to upload %s: %w", id, err)
	}
	done := false
	defer func() {
		if done {
			return
		}
		// All-or-nothing, also when r panics: bring the upload back to
		// its state before the call, and close the file.
		if uerr := undoAppend(f, p, created, size); uerr != nil {
			err = errors.Join(err, uerr)
		}
	}()
	if created {
		// Make the new directory entry durable with the first append.
		if err := syncDir(s.uploads); err != nil {
			return 0, fmt.Errorf("appending to upload %s: %w", id, err)
		}
	}
	n, err := s.copy(f, blob.ContextReader(ctx, r))
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		if created {
			size = 0
		}
		return size, fmt.Errorf("appending to upload %s: %w", id, err)
	}
	done = true
	if err := f.Close(); err != nil {
		return size, fmt.Errorf("appending to upload %s: %w", id, err)
	}
	return size + n, nil
}

// undoAppend closes f, the staging file p of an append that failed, and
// brings it back to size bytes, or removes it when the append created it.
func undoAppend(f *os.File, p string, created bool, size int64) error {
	if created {
		f.Close()
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing partial upload: %w", err)
		}
		return nil
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("truncating back: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing truncation: %w", err)
	}
	return nil
}

// UploadSize implements blob.Store.
func (s *Store) UploadSize(ctx context.Context, id string) (int64, error) {
	p, err := s.uploadPath(id)
	if err != nil {
		return 0, fmt.Errorf("sizing upload: %w", err)
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("sizing upload %s: %w", id, blob.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("sizing upload %s: %w", id, err)
	}
	return fi.Size(), nil
}

// UploadCommit implements blob.Store.
// The key is blob.NewKey(want): the digest fans objects out on disk and
// lets sweep name what a leftover holds.
func (s *Store) UploadCommit(ctx context.Context, id string, want digest.Digest) (string, int64, error) {
	src, err := s.uploadPath(id)
	if err != nil {
		return "", 0, fmt.Errorf("committing upload: %w", err)
	}
	h, err := blob.NewHash(want)
	if err != nil {
		return "", 0, fmt.Errorf("committing upload %s: %w", id, err)
	}
	key := blob.NewKey(want)
	dst, err := s.keyPath(key)
	if err != nil {
		return "", 0, fmt.Errorf("committing upload %s: %w", id, err)
	}
	unlock := s.locks.Lock(id)
	defer unlock()

	f, err := os.OpenFile(src, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return "", 0, fmt.Errorf("committing upload %s: %w", id, blob.ErrNotFound)
	}
	if err != nil {
		return "", 0, fmt.Errorf("committing upload %s: %w", id, err)
	}
	size, err := s.copy(h, blob.ContextReader(ctx, f))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, fmt.Errorf("committing upload %s: %w", id, err)
	}
	if got := digest.NewDigest(want.Algorithm(), h); got != want {
		return "", 0, fmt.Errorf("committing upload %s: got %s, want %s: %w", id, got, want, blob.ErrDigestMismatch)
	}
	if err := ctx.Err(); err != nil {
		return "", 0, fmt.Errorf("committing upload %s: %w", id, err)
	}
	// A rename keeps the mtime of the last append, which may be long ago
	// (a PUT closing a session idle for hours). Sweep takes an object with
	// no row older than its cutoff for a crash leftover, so a committed
	// object must look as young as its commit while its row commits.
	now := time.Now()
	if err := os.Chtimes(src, now, now); err != nil {
		return "", 0, fmt.Errorf("committing upload %s: %w", id, err)
	}
	if err := s.rename(src, dst); err != nil {
		return "", 0, fmt.Errorf("committing upload %s to %s: %w", id, key, err)
	}
	if err := syncDir(s.uploads); err != nil {
		return "", 0, fmt.Errorf("committing upload %s to %s: %w", id, key, err)
	}
	return key, size, nil
}

// rename moves src to dst, creating dst's parent directories durably. A
// concurrent Delete may prune an empty parent between mkdir and rename, so
// it retries a few times.
func (s *Store) rename(src, dst string) error {
	dir := filepath.Dir(dst)
	var err error
	for range 5 {
		if err = s.mkdirAll(dir); err != nil {
			return err
		}
		err = os.Rename(src, dst)
		if err == nil {
			return syncDir(dir)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return err
}

// mkdirAll creates dir (under s.blobs) and its missing parents, fsyncing the
// parent of every directory it creates.
func (s *Store) mkdirAll(dir string) error {
	if dir == s.blobs {
		return nil
	}
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s: not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if err := s.mkdirAll(parent); err != nil {
		return err
	}
	if err := os.Mkdir(dir, datadir.DirMode); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(parent)
}

// UploadAbort implements blob.Store.
func (s *Store) UploadAbort(ctx context.Context, id string) error {
	p, err := s.uploadPath(id)
	if err != nil {
		return fmt.Errorf("aborting upload: %w", err)
	}
	unlock := s.locks.Lock(id)
	defer unlock()
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("aborting upload %s: %w", id, err)
	}
	if err := syncDir(s.uploads); err != nil {
		return fmt.Errorf("aborting upload %s: %w", id, err)
	}
	return nil
}

// reader is an *os.File-backed blob.Reader; it also offers ReadAt.
type reader struct {
	*os.File
	size int64
}

func (r *reader) Size() int64 { return r.size }

// Open implements blob.Store. The returned Reader embeds the *os.File, so it
// serves http.ServeContent and io.ReaderAt directly.
func (s *Store) Open(ctx context.Context, key string) (blob.Reader, error) {
	p, err := s.keyPath(key)
	if err != nil {
		return nil, fmt.Errorf("opening blob: %w", err)
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("opening blob %s: %w", key, blob.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("opening blob %s: %w", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("opening blob %s: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("opening blob %s: %w", key, blob.ErrNotFound)
	}
	return &reader{File: f, size: fi.Size()}, nil
}

// Stat implements blob.Store.
func (s *Store) Stat(ctx context.Context, key string) (blob.Info, error) {
	p, err := s.keyPath(key)
	if err != nil {
		return blob.Info{}, fmt.Errorf("stating blob: %w", err)
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) || err == nil && !fi.Mode().IsRegular() {
		return blob.Info{}, fmt.Errorf("stating blob %s: %w", key, blob.ErrNotFound)
	}
	if err != nil {
		return blob.Info{}, fmt.Errorf("stating blob %s: %w", key, err)
	}
	return blob.Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Delete implements blob.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	return s.DeleteBatch(ctx, []string{key})[0]
}

// DeleteBatch implements blob.BatchDeleter: it unlinks every key, then makes
// the unlinks durable with one syncfs(2) of the store's filesystem instead
// of an fsync of each key's directory (a collection deletes thousands of
// blobs: one directory fsync per key made byte deletion the slowest part of
// it), then prunes the directories left empty below the fan-out levels.
func (s *Store) DeleteBatch(ctx context.Context, keys []string) []error {
	errs := make([]error, len(keys))
	dirs := make([]string, len(keys)) // of the keys unlinked
	eachParallel(len(keys), func(i int) {
		p, err := s.keyPath(keys[i])
		if err != nil {
			errs[i] = fmt.Errorf("deleting blob: %w", err)
			return
		}
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) || err == nil && fi.IsDir() {
			return // no object under key (a directory is not an object)
		}
		if err != nil {
			errs[i] = fmt.Errorf("deleting blob %s: %w", keys[i], err)
			return
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs[i] = fmt.Errorf("deleting blob %s: %w", keys[i], err)
			return
		}
		dirs[i] = filepath.Dir(p)
	})
	if !slices.ContainsFunc(dirs, func(d string) bool { return d != "" }) {
		return errs
	}
	if err := syncFS(s.blobs); err != nil {
		// The unlinks happened but may not survive a power loss: report
		// every key, so their tombstones stay and a later run retries.
		for i := range errs {
			if errs[i] == nil {
				errs[i] = fmt.Errorf("deleting blob %s: syncing the filesystem: %w", keys[i], err)
			}
		}
		return errs
	}
	s.prune(dirs)
	return errs
}

// prune removes, best-effort, the directories of dirs left empty and their
// parents left empty in turn, down to the fan-out levels: blobs/<alg>/ and
// blobs/<alg>/<xx>/ stay, at most 257 directories per algorithm, so a
// commit never races a prune of the directory it renames into and a delete
// of a key of the current form (a file right in a fan-out directory) costs
// no rmdir. What is pruned is an older key's own directory
// (<alg>/<xx>/<hex>/, blob.NewKey) or a hand-made key's. Remove fails on a
// non-empty directory, and a commit racing with us retries its mkdir.
func (s *Store) prune(dirs []string) {
	slices.Sort(dirs)
	dirs = slices.Compact(dirs)
	dirs = slices.DeleteFunc(dirs, func(d string) bool { return keptByPrune(s.blobs, d) })
	eachParallel(len(dirs), func(i int) {
		for dir := dirs[i]; !keptByPrune(s.blobs, dir); dir = filepath.Dir(dir) {
			if os.Remove(dir) != nil {
				break
			}
		}
	})
}

// keptByPrune reports whether prune keeps dir: blobs itself, one of the two
// fan-out levels below it, or anything not below it (the empty string
// included).
func keptByPrune(blobs, dir string) bool {
	rel, err := filepath.Rel(blobs, dir)
	if err != nil || !filepath.IsLocal(rel) || dir == "" {
		return true
	}
	return strings.Count(filepath.ToSlash(rel), "/") < 2
}

// deleteWorkers is how many unlinks DeleteBatch runs at once: an unlink
// (and, for a key of the older form, its directory's removal) is a
// metadata update the filesystem journals one at a time per thread, and
// several threads overlap them (machine-limits.md: 11,000 against 16,500
// files/s in a flat layout, 1 against 8 threads). Four, not eight: the unlinks
// run beside serve's requests, and with eight on a 2-core machine they took
// the CPU from them in bursts (bench/RESULTS.md, session 9).
const deleteWorkers = 4

// eachParallel calls fn for every index below n, on up to deleteWorkers
// goroutines (one for a handful of keys).
func eachParallel(n int, fn func(i int)) {
	workers := min(deleteWorkers, (n+31)/32)
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
			}
		})
	}
	wg.Wait()
}

// Walk implements blob.Store. It reports regular files under blobs/ in
// lexical order, skipping dot-names (temporary files).
func (s *Store) Walk(ctx context.Context, fn func(blob.Info) error) error {
	err := filepath.WalkDir(s.blobs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != s.blobs {
				return nil // removed while walking
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == s.blobs {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(s.blobs, p)
		if err != nil {
			return err
		}
		return fn(blob.Info{Key: filepath.ToSlash(rel), Size: fi.Size(), ModTime: fi.ModTime()})
	})
	if err != nil {
		return fmt.Errorf("walking blobs: %w", err)
	}
	return nil
}

// WalkUploads implements blob.Store. It reads uploads/ in batches, so memory
// does not grow with the number of uploads.
func (s *Store) WalkUploads(ctx context.Context, fn func(id string, info blob.Info) error) error {
	dir, err := os.Open(s.uploads)
	if err != nil {
		return fmt.Errorf("walking uploads: %w", err)
	}
	defer dir.Close()
	for {
		ents, err := dir.ReadDir(walkBatch)
		for _, e := range ents {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("walking uploads: %w", err)
			}
			id := e.Name()
			if blob.ValidUploadID(id) != nil || !e.Type().IsRegular() {
				continue
			}
			fi, ierr := e.Info()
			if errors.Is(ierr, fs.ErrNotExist) {
				continue // committed or aborted while walking
			}
			if ierr != nil {
				return fmt.Errorf("walking uploads: %w", ierr)
			}
			if ferr := fn(id, blob.Info{Key: id, Size: fi.Size(), ModTime: fi.ModTime()}); ferr != nil {
				return fmt.Errorf("walking uploads: %w", ferr)
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("walking uploads: %w", err)
		}
	}
}

// copy copies r to w with a pooled fixed-size buffer, hiding io.ReaderFrom
// and io.WriterTo so the buffer bound always holds.
func (s *Store) copy(w io.Writer, r io.Reader) (int64, error) {
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	return io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{r}, *bp)
}

// syncFS flushes the filesystem that holds dir (syncfs(2)): every unlink
// made before it is durable when it returns.
func syncFS(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = unix.Syncfs(int(d.Fd()))
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
