package gc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/berth/berth/internal/blob"
	"github.com/berth/berth/internal/meta"
)

// SweepSummary reports a sweep.
type SweepSummary struct {
	DryRun        bool          `json:"dry_run"`
	Objects       int           `json:"objects_scanned"`
	Leaked        int           `json:"objects_deleted"`
	LeakedBytes   int64         `json:"bytes_freed"`
	Uploads       int           `json:"staging_scanned"`
	LeakedUploads int           `json:"staging_deleted"`
	UploadBytes   int64         `json:"staging_bytes_freed"`
	Duration      time.Duration `json:"duration_ns"`
	Keys          []string      `json:"keys,omitempty"`
}

// Sweep deletes bytes that no row names: committed objects with neither a
// blob row nor a tombstone, and staging objects with no upload session,
// both older than olderThan. They are leftovers of a crash between writing
// bytes and committing their row (bytes are always written first). It walks
// the whole byte store, so it is the one operation whose cost follows the
// registry's size; the collector never needs it to stay correct.
//
// olderThan must exceed the longest upload commit in flight, or the sweep
// could delete bytes whose row is about to commit; the CLI refuses less
// than a minute.
func (c *Collector) Sweep(ctx context.Context, olderThan time.Duration, dryRun bool, progress func(SweepSummary)) (SweepSummary, error) {
	start := time.Now()
	cutoff := c.opts.Now().Add(-olderThan)
	s := SweepSummary{DryRun: dryRun}
	known := func(fn func(tx meta.Tx) (bool, error)) (bool, error) {
		var ok bool
		err := c.store.View(ctx, func(tx meta.Tx) (err error) {
			ok, err = fn(tx)
			return err
		})
		return ok, err
	}
	err := c.blobs.Walk(ctx, func(info blob.Info) error {
		s.Objects++
		if progress != nil && s.Objects%1000 == 0 {
			progress(s)
		}
		if !info.ModTime.Before(cutoff) {
			return nil
		}
		ok, err := known(func(tx meta.Tx) (bool, error) { return tx.StorageKeyKnown(ctx, info.Key) })
		if err != nil || ok {
			return err
		}
		s.Leaked++
		s.LeakedBytes += info.Size
		s.Keys = append(s.Keys, info.Key)
		if dryRun {
			return nil
		}
		c.log.Info("sweep deleted leaked bytes", "key", info.Key, "size", info.Size, "modified", info.ModTime)
		return c.blobs.Delete(ctx, info.Key)
	})
	if err != nil {
		return s, fmt.Errorf("sweeping blobs: %w", err)
	}
	err = c.blobs.WalkUploads(ctx, func(id string, info blob.Info) error {
		s.Uploads++
		if !info.ModTime.Before(cutoff) {
			return nil
		}
		ok, err := known(func(tx meta.Tx) (bool, error) { return tx.UploadKnown(ctx, id) })
		if err != nil || ok {
			return err
		}
		s.LeakedUploads++
		s.UploadBytes += info.Size
		if dryRun {
			return nil
		}
		c.log.Info("sweep deleted abandoned upload staging", "upload", id, "size", info.Size, "modified", info.ModTime)
		if err := c.blobs.UploadAbort(ctx, id); err != nil && !errors.Is(err, blob.ErrNotFound) {
			return err
		}
		return nil
	})
	if err != nil {
		return s, fmt.Errorf("sweeping uploads: %w", err)
	}
	s.Duration = time.Since(start)
	return s, nil
}
