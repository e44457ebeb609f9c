// Package datadir says who may read what berth writes to disk: the user
// berth runs as, and no one else. Blobs are private images and the
// database names every repository and tag, so the data directory, every
// directory under it and every file berth creates carry these modes. The
// filesystem blob store (blob/fs) and the SQLite store (meta/sqlstore)
// create with them; app tightens what an older berth created with wider
// ones (docs/design/hardening.md).
package datadir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

const (
	// DirMode is the mode of every directory berth creates.
	DirMode fs.FileMode = 0o700
	// FileMode is the mode of every file berth creates.
	FileMode fs.FileMode = 0o600
)

// MkdirAll creates dir and its missing parents with DirMode (as
// os.MkdirAll; an existing directory is left as it is).
func MkdirAll(dir string) error {
	return os.MkdirAll(dir, DirMode)
}

// Tighten removes every group and other permission of path (following a
// symbolic link, as a data directory may be one), and returns the mode it
// had and whether it changed. A path that does not exist is left alone.
func Tighten(path string) (before fs.FileMode, changed bool, err error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("tightening permissions: %w", err)
	}
	before = fi.Mode().Perm()
	if before&0o077 == 0 {
		return before, false, nil
	}
	if err := os.Chmod(path, before&^0o077); err != nil {
		return before, false, fmt.Errorf("tightening permissions: %w", err)
	}
	return before, true, nil
}
