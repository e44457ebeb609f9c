package registry

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/event"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/oci"
	"github.com/berth/berth/internal/review"
)

// forgetBatch bounds the tag rows one transaction of ForgetTag deletes.
const forgetBatch = 1000

// Forgotten is what ForgetTag deleted: how many ended lifetimes of the tag,
// and the manifests they pointed at (each once, in digest order), which the
// collector now reviews.
type Forgotten struct {
	Repository string
	Tag        string
	Lifetimes  int
	Manifests  []digest.Digest
}

// ForgetTag deletes the ended lifetimes of tag in repo (those that ended
// before before, when it is not nil) permanently, out of the time machine:
// they can no longer be restored, and the manifests they kept are reviewed
// at once, so that the collector deletes them at its next run (and their
// blobs a grace later) unless something else keeps them
// (docs/design/usage.md, "Forgetting ended lifetimes"). The live lifetime
// is never touched, and immutable rules do not apply (they govern live
// tags). A lifetime whose expiry passed is ended by the collector's next
// expiry scan and can be forgotten after it. ErrTagUnknown when the tag has
// no lifetime at all.
//
// Rows are deleted in transactions of at most forgetBatch; an error after
// the first leaves the rows deleted so far deleted, and reviewed.
func (r *Registry) ForgetTag(ctx context.Context, repo, tag string, before *time.Time) (Forgotten, error) {
	if err := validName(repo); err != nil {
		return Forgotten{}, err
	}
	if err := oci.ValidateTag(tag); err != nil {
		return Forgotten{}, err
	}
	// Every end is before the end of time; a lifetime never ends after
	// the request that ends it, but replicas' clocks may differ.
	cutoff := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	if before != nil {
		cutoff = *before
	}
	actor := ActorFrom(ctx)
	out := Forgotten{Repository: repo, Tag: tag}
	seen := map[digest.Digest]bool{}
	for {
		now := r.now()
		var rows []meta.Tag
		err := r.store.Update(ctx, func(tx meta.Tx) error {
			rp, err := writeRepo(ctx, tx, repo)
			if err != nil {
				return err
			}
			rows, err = tx.ForgetTags(ctx, rp.ID, tag, cutoff, forgetBatch)
			if err != nil {
				return err
			}
			return tx.ScheduleReviews(ctx, forgetReviews(rp.ID, tag, actor, rows, now))
		})
		if err != nil {
			return out, fmt.Errorf("forgetting the ended lifetimes of tag %q of %q: %w", tag, repo, err)
		}
		out.Lifetimes += len(rows)
		var fresh []digest.Digest
		for _, t := range rows {
			if !seen[t.Manifest] {
				seen[t.Manifest] = true
				fresh = append(fresh, t.Manifest)
			}
		}
		for _, d := range fresh {
			r.emit(ctx, event.TagForgotten, repo, d, tag, now)
		}
		out.Manifests = append(out.Manifests, fresh...)
		if len(rows) < forgetBatch {
			break
		}
	}
	slices.Sort(out.Manifests)
	if out.Lifetimes == 0 {
		if err := r.tagKnown(ctx, repo, tag); err != nil {
			return out, err
		}
	}
	r.log.InfoContext(ctx, "tag lifetimes forgotten", "repository", repo, "tag", tag, "lifetimes", out.Lifetimes,
		"manifests", len(out.Manifests), "actor", actor)
	return out, nil
}

// forgetReviews are the reviews of the manifests that the deleted rows
// pointed at, due now, one per manifest and sorted (meta.ScheduleReviews).
// A review already due later (a grace, a read that revived the manifest)
// keeps its time: it decides the manifest then.
func forgetReviews(repoID int64, tag string, actor meta.Actor, rows []meta.Tag, now time.Time) []meta.Review {
	var rs []meta.Review
	for _, t := range rows {
		rs = append(rs, meta.Review{Kind: review.KindManifest, Object: review.RepoDigestObject(repoID, t.Manifest), ReviewAfter: now,
			Cause: review.CauseTagForgotten, Reason: "lifetimes of tag " + tag + " forgotten by " + string(actor)})
	}
	slices.SortFunc(rs, func(a, b meta.Review) int { return strings.Compare(a.Object, b.Object) })
	return slices.CompactFunc(rs, func(a, b meta.Review) bool { return a.Object == b.Object })
}

// tagKnown is nil when tag has a lifetime in repo, live or ended, and
// ErrTagUnknown otherwise.
func (r *Registry) tagKnown(ctx context.Context, repo, tag string) error {
	return r.store.View(ctx, func(tx meta.Tx) error {
		rp, err := readRepo(ctx, tx, repo)
		if err != nil {
			return err
		}
		rows, err := tx.TagHistory(ctx, rp.ID, tag, 1)
		if err != nil {
			return fmt.Errorf("reading history of tag %q: %w", tag, err)
		}
		if len(rows) == 0 {
			return fmt.Errorf("tag %q of %q has no lifetime: %w", tag, repo, ErrTagUnknown)
		}
		return nil
	})
}
