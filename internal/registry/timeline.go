package registry

import (
	"context"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/oci"
)

// The timeline of one tag, as the web interface's tag page shows it
// (docs/design/web.md): TagHistory's lifetimes, a page at a time, each with
// what the page says of it besides — how it started, what replaced it, its
// manifest's size while stored — read in one snapshot.

// Sizes of a timeline page: a limit of 0 or less takes the default, one
// above the maximum the maximum.
const (
	DefaultTimelinePage = 100
	MaxTimelinePage     = 500
)

// StartKind says how a lifetime started.
type StartKind string

// Start kinds. The tag row does not record how it started: the timeline
// tells a push from a restore by its manifest, whose PushedAt every PUT
// sets to the moment of the PUT (the moment the tag's lifetime starts)
// and a restore leaves as it was.
const (
	// StartUnknown: the manifest was pushed again after the lifetime
	// started, or is gone; the rows no longer tell.
	StartUnknown  StartKind = ""
	StartPushed   StartKind = "pushed"   // a manifest PUT under the tag
	StartRestored StartKind = "restored" // a restore of an earlier lifetime
)

// TimelineEntry is one lifetime of a tag's timeline.
type TimelineEntry struct {
	Lifetime
	// How is how the lifetime started.
	How StartKind
	// MovedTo is, for a lifetime a push or a restore ended (CauseMoved),
	// the manifest of the lifetime that replaced it; "" when unknown.
	MovedTo digest.Digest
	// Stored: the manifest's row is still there (Withdrawn: a DELETE by
	// digest withdrew it; a restore brings it back). Not stored: the
	// collector deleted it. Size is what pulling it downloads, while
	// stored (meta.ManifestSummary.PullSize).
	Stored    bool
	Withdrawn bool
	Size      int64
}

// TimelineQuery asks for a page of a tag's timeline.
type TimelineQuery struct {
	// Before is the Next of the previous page: the ID of the last lifetime
	// it listed (0 for the first page).
	Before int64
	// Limit is the page size (DefaultTimelinePage, at most
	// MaxTimelinePage).
	Limit int
}

// TagTimeline is a page of a tag's lifetimes, newest first.
type TagTimeline struct {
	// Retention is the namespace's effective time-machine window.
	Retention time.Duration
	// Now is the moment the timeline describes.
	Now time.Time
	// Live is the tag's live lifetime, on this page or not; nil when the
	// tag is not live.
	Live *TimelineEntry
	// Entries are this page's lifetimes, newest first; Total counts every
	// lifetime of the tag (up to the rows one read holds).
	Entries []TimelineEntry
	Total   int
	// Next is the Before of the next page; 0 when this one is the last.
	Next int64
	// Immutable is the ref of the immutable rule covering the tag now
	// ("" when none does): it refuses an expiry, and a restore that would
	// move the live tag.
	Immutable string
}

// TagTimeline reads a page of the lifetimes of tag in repo, newest first,
// with TagHistory's restorability, how each started, what replaced it, and
// its manifest's size while stored. ErrNameUnknown when repo does not
// exist, ErrTagUnknown when the tag never existed, ErrInvalidArgument when
// q.Before names no lifetime of the tag. Cost, in one snapshot: the tag's
// history (one range of its index, as TagHistory), the repository's rules,
// one statement for the sizes of the page's manifests, and one primary-key
// probe per distinct stored manifest of the page (for its push time).
func (r *Registry) TagTimeline(ctx context.Context, repo, tag string, q TimelineQuery) (TagTimeline, error) {
	if err := validName(repo); err != nil {
		return TagTimeline{}, err
	}
	if err := oci.ValidateTag(tag); err != nil {
		return TagTimeline{}, err
	}
	limit := q.Limit
	switch {
	case limit <= 0:
		limit = DefaultTimelinePage
	case limit > MaxTimelinePage:
		limit = MaxTimelinePage
	}
	now := r.now()
	var out TagTimeline
	err := r.store.View(ctx, func(tx meta.Tx) error {
		out = TagTimeline{Now: now}
		rp, err := readRepo(ctx, tx, repo)
		if err != nil {
			return err
		}
		if out.Retention, err = r.retention(ctx, tx, rp); err != nil {
			return err
		}
		rows, err := tx.TagHistory(ctx, rp.ID, tag, maxTagRows)
		if err != nil {
			return fmt.Errorf("reading history of tag %q: %w", tag, err)
		}
		if len(rows) == 0 {
			return fmt.Errorf("tag %q of %q has no history: %w", tag, repo, ErrTagUnknown)
		}
		out.Total = len(rows)
		first := 0
		if q.Before != 0 {
			first = -1
			for i, t := range rows {
				if t.ID == q.Before {
					first = i + 1
					break
				}
			}
			if first < 0 {
				return fmt.Errorf("tag %q of %q has no lifetime %d: %w", tag, repo, q.Before, ErrInvalidArgument)
			}
		}
		end := min(first+limit, len(rows))
		if end < len(rows) {
			out.Next = rows[end-1].ID
		}
		live := -1
		for i, t := range rows {
			if t.LiveAt(now) {
				live = i
				break
			}
		}
		page := make([]int, 0, end-first+1)
		for i := first; i < end; i++ {
			page = append(page, i)
		}
		if live >= 0 && (live < first || live >= end) {
			page = append(page, live)
		}
		entries, err := r.timelineEntries(ctx, tx, rp, rows, page, out.Retention, now)
		if err != nil {
			return err
		}
		out.Entries = entries[:end-first]
		if live >= 0 {
			e := entries[len(entries)-1]
			if live >= first && live < end {
				e = entries[live-first]
			}
			out.Live = &e
		}
		rule, ok, err := r.immutableRule(ctx, tx, repo, tag)
		if err != nil {
			return err
		}
		if ok {
			out.Immutable = rule.Ref()
		}
		return nil
	})
	if err != nil {
		return TagTimeline{}, err
	}
	return out, nil
}

// timelineEntries describes rows[i] for each i of page (rows newest first,
// as TagHistory lists them).
func (r *Registry) timelineEntries(ctx context.Context, tx meta.Tx, rp meta.Repository, rows []meta.Tag, page []int, ret time.Duration, now time.Time) ([]TimelineEntry, error) {
	var ds []digest.Digest
	seen := map[digest.Digest]bool{}
	for _, i := range page {
		if d := rows[i].Manifest; !seen[d] {
			seen[d] = true
			ds = append(ds, d)
		}
	}
	sums, err := tx.ManifestSummaries(ctx, rp.ID, ds)
	if err != nil {
		return nil, err
	}
	stored := make(map[digest.Digest]meta.ManifestSummary, len(sums))
	pushed := make(map[digest.Digest]time.Time, len(sums))
	for _, m := range sums {
		stored[m.Digest] = m
		row, err := tx.Manifest(ctx, rp.ID, m.Digest, meta.LockNone)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading manifest %s: %w", m.Digest, err)
		}
		pushed[m.Digest] = row.PushedAt
	}
	// The lifetime that replaced a moved one started when it ended.
	startedAt := make(map[int64]digest.Digest, len(rows))
	for _, t := range rows {
		startedAt[t.Start.UnixMicro()] = t.Manifest
	}
	out := make([]TimelineEntry, 0, len(page))
	for _, i := range page {
		t := rows[i]
		e := TimelineEntry{Lifetime: lifetimeAt(t, ret, now)}
		if m, ok := stored[t.Manifest]; ok {
			e.Stored, e.Withdrawn, e.Size = true, m.Withdrawn, m.PullSize()
		}
		e.Restorable = e.Restorable && e.Stored
		if at, ok := pushed[t.Manifest]; ok {
			switch {
			case at.Equal(t.Start):
				e.How = StartPushed
			case at.Before(t.Start):
				e.How = StartRestored
			}
		}
		if e.EndCause == meta.CauseMoved && t.End != nil {
			e.MovedTo = startedAt[t.End.UnixMicro()]
		}
		out = append(out, e)
	}
	return out, nil
}
