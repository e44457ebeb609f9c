package gc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/berth/berth/internal/blob"
	"github.com/berth/berth/internal/meta"
)

// DefaultSweepSettle is how long a sweep waits, by default, between
// listing its candidates and deleting them (SweepOptions.Settle).
const DefaultSweepSettle = time.Minute

// SweepOptions narrow one sweep.
type SweepOptions struct {
	// OlderThan: only bytes older than this (by the collector's clock) are
	// candidates. It must exceed the longest upload in flight between its
	// last write and its commit; the CLI refuses less than a minute.
	OlderThan time.Duration
	// Settle is how long sweep waits after listing its candidates before it
	// checks each again and deletes those still unnamed. It must exceed the
	// longest upload commit transaction (see Sweep). It is real time, not
	// the collector's clock: it waits for transactions of other processes.
	Settle time.Duration
	// DryRun lists what would be deleted (after the same wait and
	// re-check) and deletes nothing.
	DryRun bool
	// Progress, if set, is called every 1000 objects listed, when the wait
	// starts (Phase SweepSettling) and when it ends.
	Progress func(SweepSummary)
}

// Phases of a sweep, as reported to SweepOptions.Progress.
const (
	SweepListing  = "listing"
	SweepSettling = "settling"
	SweepDeleting = "deleting"
)

// SweepSummary reports a sweep.
type SweepSummary struct {
	DryRun        bool   `json:"dry_run"`
	Phase         string `json:"-"` // SweepListing, SweepSettling, SweepDeleting
	Objects       int    `json:"objects_scanned"`
	Leaked        int    `json:"objects_deleted"`
	LeakedBytes   int64  `json:"bytes_freed"`
	Uploads       int    `json:"staging_scanned"`
	LeakedUploads int    `json:"staging_deleted"`
	UploadBytes   int64  `json:"staging_bytes_freed"`
	// Candidates were old and unnamed when listed; Spared of them were
	// named by a row that committed while sweep waited Settle.
	Candidates int           `json:"candidates"`
	Spared     int           `json:"spared"`
	Settle     time.Duration `json:"settle_ns"`
	Duration   time.Duration `json:"duration_ns"`
	// Keys and UploadIDs are the objects and staging uploads deleted (or,
	// in a dry run, that would be).
	Keys      []string `json:"keys,omitempty"`
	UploadIDs []string `json:"uploads,omitempty"`
}

// sweepCandidate is an object or a staging upload that no row named when
// it was listed.
type sweepCandidate struct {
	info   blob.Info // for a staging upload, Key is the upload id
	upload bool
}

// Sweep deletes bytes that no row names: committed objects with neither a
// blob row nor a tombstone, and staging uploads with no upload session,
// both older than OlderThan. They are leftovers of a crash between writing
// bytes and committing their row (bytes are always written first). It walks
// the whole byte store, so it is the one operation whose cost follows the
// registry's size; the collector never needs it to stay correct.
//
// An object's age does not prove it has no row coming: on AWS S3 an object
// completed from a multipart upload is dated when the upload was initiated,
// so an upload commit can create an object already older than the cutoff
// and insert its row a moment later. So sweep works in two phases: it lists
// the candidates (old, unnamed), waits opts.Settle — longer than any commit
// transaction — and then checks each candidate again, deleting only those
// still unnamed. A commit whose object was listed has, by then, either
// committed its row (the candidate is spared) or failed.
func (c *Collector) Sweep(ctx context.Context, opts SweepOptions) (SweepSummary, error) {
	start := time.Now()
	cutoff := c.opts.Now().Add(-opts.OlderThan)
	s := SweepSummary{DryRun: opts.DryRun, Phase: SweepListing}
	progress := func() {
		if opts.Progress != nil {
			opts.Progress(s)
		}
	}
	keyer, _ := c.blobs.(blob.UploadKeyer)
	known := func(cd sweepCandidate) (bool, error) {
		var ok bool
		err := c.store.View(ctx, func(tx meta.Tx) (err error) {
			if cd.upload {
				ok, err = tx.UploadKnown(ctx, cd.info.Key)
				return err
			}
			if ok, err = tx.StorageKeyKnown(ctx, cd.info.Key); ok || err != nil || keyer == nil {
				return err
			}
			// An object whose upload session is still open is that
			// session's to commit or abort (blob.UploadKeyer).
			if id, isUpload := keyer.KeyUpload(cd.info.Key); isUpload {
				ok, err = tx.UploadKnown(ctx, id)
			}
			return err
		})
		return ok, err
	}
	var candidates []sweepCandidate
	consider := func(cd sweepCandidate) error {
		if !cd.info.ModTime.Before(cutoff) {
			return nil
		}
		ok, err := known(cd)
		if err != nil || ok {
			return err
		}
		candidates = append(candidates, cd)
		s.Candidates++
		return nil
	}
	err := c.blobs.Walk(ctx, func(info blob.Info) error {
		s.Objects++
		if s.Objects%1000 == 0 {
			progress()
		}
		return consider(sweepCandidate{info: info})
	})
	if err != nil {
		return s, fmt.Errorf("sweeping blobs: %w", err)
	}
	err = c.blobs.WalkUploads(ctx, func(id string, info blob.Info) error {
		s.Uploads++
		info.Key = id
		return consider(sweepCandidate{info: info, upload: true})
	})
	if err != nil {
		return s, fmt.Errorf("sweeping uploads: %w", err)
	}
	if len(candidates) > 0 && opts.Settle > 0 {
		s.Phase, s.Settle = SweepSettling, opts.Settle
		c.log.Info("sweep waiting for upload commits in flight before deleting: a row may still be about to name bytes listed without one",
			"candidates", len(candidates), "settle", opts.Settle)
		progress()
		t := time.NewTimer(opts.Settle)
		select {
		case <-ctx.Done():
			t.Stop()
			return s, fmt.Errorf("sweep: waiting for commits in flight: %w", context.Cause(ctx))
		case <-t.C:
		}
	}
	// An upload session a collector deleted in a commit not yet durable
	// would come back after a power loss without its staging: like the
	// collector, sweep makes the commits it acts on durable first.
	if !opts.DryRun && len(candidates) > 0 {
		if err := c.store.SyncCommitted(ctx); err != nil {
			return s, fmt.Errorf("sweep: syncing committed transactions: %w", err)
		}
	}
	s.Phase = SweepDeleting
	progress()
	var leaked []blob.Info // objects still unnamed, deleted in batches below
	for _, cd := range candidates {
		ok, err := known(cd)
		if err != nil {
			return s, fmt.Errorf("sweep: re-checking %s: %w", cd.info.Key, err)
		}
		if ok {
			s.Spared++
			continue
		}
		if !cd.upload {
			leaked = append(leaked, cd.info)
			continue
		}
		if err := c.sweepUpload(ctx, cd.info, &s); err != nil {
			return s, err
		}
	}
	if err := c.sweepObjects(ctx, leaked, &s); err != nil {
		return s, err
	}
	s.Duration = time.Since(start)
	return s, nil
}

// sweepObjects deletes leaked objects (or, in a dry run, counts them), in
// batches as the collector does (one DeleteObjects per 1000 keys on S3).
func (c *Collector) sweepObjects(ctx context.Context, leaked []blob.Info, s *SweepSummary) error {
	for start := 0; start < len(leaked); start += deleteBatch {
		batch := leaked[start:min(start+deleteBatch, len(leaked))]
		keys := make([]string, len(batch))
		for i, info := range batch {
			keys[i] = info.Key
		}
		errs := make([]error, len(keys))
		if !s.DryRun {
			errs = blob.DeleteMany(ctx, c.blobs, keys)
		}
		var failed []error
		for i, info := range batch {
			if errs[i] != nil {
				failed = append(failed, fmt.Errorf("sweeping %s: %w", info.Key, errs[i]))
				continue
			}
			s.Leaked++
			s.LeakedBytes += info.Size
			s.Keys = append(s.Keys, info.Key)
			if !s.DryRun {
				c.log.Info("sweep deleted leaked bytes", "key", info.Key, "size", info.Size, "modified", info.ModTime)
			}
		}
		if len(failed) > 0 {
			return fmt.Errorf("sweeping blobs: %d of %d deletes failed: %w", len(failed), len(batch), errors.Join(failed...))
		}
	}
	return nil
}

// sweepUpload aborts the staging of an upload still unknown after the wait
// (or, in a dry run, counts it).
func (c *Collector) sweepUpload(ctx context.Context, info blob.Info, s *SweepSummary) error {
	s.LeakedUploads++
	s.UploadBytes += info.Size
	s.UploadIDs = append(s.UploadIDs, info.Key)
	if s.DryRun {
		return nil
	}
	c.log.Info("sweep deleted abandoned upload staging", "upload", info.Key, "size", info.Size, "modified", info.ModTime)
	if err := c.blobs.UploadAbort(ctx, info.Key); err != nil && !errors.Is(err, blob.ErrNotFound) {
		return fmt.Errorf("sweeping upload %s: %w", info.Key, err)
	}
	return nil
}
