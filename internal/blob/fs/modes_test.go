package fs_test

import (
	"context"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	blobfs "github.com/berth/berth/internal/blob/fs"
	"github.com/berth/berth/internal/datadir"
)

// TestModes: everything the store creates is its owner's only: directories
// 0700 (the root, blobs/, uploads/, tmp/ and the key's fan-out), files 0600
// (staging files and committed objects).
func TestModes(t *testing.T) {
	root := filepath.Join(t.TempDir(), "data", "storage")
	s, err := blobfs.New(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b := []byte("a private layer")
	if _, err := s.UploadAppend(ctx, "committed", 0, strings.NewReader(string(b))); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.UploadCommit(ctx, "committed", digest.FromBytes(b)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UploadAppend(ctx, "staging", 0, strings.NewReader("half")); err != nil {
		t.Fatal(err)
	}
	files, dirs := 0, 0
	err = filepath.WalkDir(filepath.Dir(root), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := datadir.FileMode
		if d.IsDir() {
			want = datadir.DirMode
			dirs++
		} else {
			files++
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: got mode %v, want %v", p, got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// data, storage, blobs, uploads, tmp, sha256, ab, and the two files.
	if files != 2 || dirs < 7 {
		t.Errorf("walked %d files and %d directories, want 2 and at least 7", files, dirs)
	}
}
