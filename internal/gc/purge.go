package gc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berth/berth/internal/event"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/oci"
	"github.com/berth/berth/internal/policy"
	"github.com/berth/berth/internal/review"
)

// ErrPurgeIncomplete: a purge stopped before everything was gone. It is
// resumable: run it again, or let the workers resume it.
var ErrPurgeIncomplete = errors.New("gc: purge incomplete")

// purgeLease is how long a claimed purge is left to its worker before
// another one may resume it.
const purgeLease = 10 * time.Minute

// Purge removes a repository ("ns/name") or a whole namespace ("ns", which
// also covers the repository named "ns") through the collector's machinery:
// it marks the target deleting (writes are refused from then on), then
// removes tags, manifests (parents before children), links, upload markers
// and upload sessions in small transactions, and finally the rows of the
// repositories and the namespace. Blobs no other repository links are
// collected on the way. It is resumable after a crash: the marks and a
// purge review persist, and workers (or a second Purge) finish the job.
// It returns nil only when nothing of the target is left. It does not start
// while an immutable rule covers a live tag of the target (an error wrapping
// policy.ErrImmutable that names the rule). Its deletions
// and events are the actor's of ctx (meta.WithActor); a purge resumed by the
// workers is the collector's.
func (c *Collector) Purge(ctx context.Context, name string, progress func(Summary)) (Summary, error) {
	start := c.opts.Now()
	total := Summary{Deleted: map[review.Kind]int{}}
	var repos []meta.Repository
	var ns *meta.Namespace
	err := c.store.Update(ctx, func(tx meta.Tx) error {
		repos, ns = nil, nil
		now := c.opts.Now()
		if strings.Contains(name, "/") {
			r, err := tx.Repository(ctx, name, meta.LockUpdate)
			if err != nil {
				return err
			}
			if err := c.refuseImmutable(ctx, tx, []meta.Repository{r}, now); err != nil {
				return err
			}
			repos = []meta.Repository{r}
			return c.markRepo(ctx, tx, r, now)
		}
		n, err := tx.Namespace(ctx, name, meta.LockUpdate)
		if err != nil {
			return err
		}
		ns = &n
		rs, err := tx.NamespaceRepositories(ctx, n.ID, 1<<20)
		if err != nil {
			return err
		}
		if n.State == meta.RepoActive {
			if err := c.refuseImmutable(ctx, tx, rs, now); err != nil {
				return err
			}
		}
		if err := tx.SetNamespaceState(ctx, n.ID, meta.RepoDeleting); err != nil {
			return err
		}
		if err := tx.AddReview(ctx, meta.Review{Kind: review.KindPurge, Object: review.NamespacePurgeObject(n.ID), ReviewAfter: now.Add(purgeLease),
			Cause: review.CausePurge, Reason: "purge of namespace " + name}); err != nil {
			return err
		}
		for _, r := range rs {
			if err := c.markRepo(ctx, tx, r, now); err != nil {
				return err
			}
		}
		repos = rs
		return nil
	})
	if errors.Is(err, policy.ErrImmutable) {
		return total, fmt.Errorf("purge %s refused: %w", name, err)
	}
	if errors.Is(err, meta.ErrNotFound) {
		return total, fmt.Errorf("purge %s: nothing by that name: %w", name, err)
	}
	if err != nil {
		return total, fmt.Errorf("purge %s: marking deleting: %w", name, err)
	}
	for _, r := range repos {
		s, err := c.purgeRepo(ctx, r, progress)
		total.Add(s)
		if err != nil {
			return total, err
		}
	}
	if ns != nil {
		if err := c.finishNamespace(ctx, ns.ID, ns.Name); err != nil {
			return total, err
		}
	}
	total.Duration = c.opts.Now().Sub(start)
	return total, nil
}

// refuseImmutable refuses to start a purge of repos while an immutable
// rule covers a live tag of one of them, naming the rule: only an
// administrator's removal of the rule lifts immutability
// (docs/design/policies.md, "Immutable tags"). A repository already being
// purged is not checked: its purge started before, and resumes. Live tags
// are read only in repositories an immutable rule applies to.
func (c *Collector) refuseImmutable(ctx context.Context, tx meta.Tx, repos []meta.Repository, now time.Time) error {
	for _, r := range repos {
		if r.State != meta.RepoActive {
			continue
		}
		ns, _ := oci.SplitRepo(r.Name)
		ps, err := tx.PoliciesFor(ctx, ns, r.Name)
		if err != nil {
			return err
		}
		ps = slices.DeleteFunc(ps, func(p meta.TagPolicy) bool { return p.Kind != meta.PolicyImmutable })
		rules, bad := policy.CompileAll(ps)
		for _, err := range bad {
			c.log.Warn("purge: ignoring a stored immutable rule that does not compile", "repository", r.Name, "error", err)
		}
		if len(rules) == 0 {
			continue
		}
		tags, err := tx.LiveTags(ctx, r.ID, now)
		if err != nil {
			return err
		}
		for _, t := range tags {
			if rule, ok := policy.Immutable(rules, t.Name); ok {
				return &policy.ImmutableError{Tag: t.Name, Rule: rule.Ref(), Op: "purged with repository " + r.Name}
			}
		}
	}
	return nil
}

func (c *Collector) markRepo(ctx context.Context, tx meta.Tx, r meta.Repository, now time.Time) error {
	if err := tx.SetRepositoryState(ctx, r.ID, meta.RepoDeleting); err != nil {
		return err
	}
	return tx.AddReview(ctx, meta.Review{Kind: review.KindPurge, Object: review.RepoPurgeObject(r.ID), ReviewAfter: now.Add(purgeLease),
		Cause: review.CausePurge, Reason: "purge of " + r.Name})
}

// purgeRepo empties a repository marked deleting and deletes its row.
func (c *Collector) purgeRepo(ctx context.Context, r meta.Repository, progress func(Summary)) (Summary, error) {
	total := Summary{Deleted: map[review.Kind]int{}}
	step := func(what string, fn func(p *pass) (int, error)) error {
		for {
			var p *pass
			var n int
			err := c.store.Update(ctx, func(tx meta.Tx) (err error) {
				p = c.newPass(tx, c.opts.Now())
				p.actor = meta.ActorFrom(ctx)
				if n, err = fn(p); err != nil {
					return err
				}
				// Cascade to blobs and labels nothing else uses; this
				// repository's own manifests are the next round's (a
				// follow-up of the manifests' own stage is recorded, not
				// carried).
				return p.cascade(ctx, p.stage+1)
			})
			if err != nil {
				return fmt.Errorf("purge %s: %s: %w (%w)", r.Name, what, err, ErrPurgeIncomplete)
			}
			c.afterCommit(ctx, p)
			total.Add(p.summary)
			if progress != nil {
				progress(total)
			}
			if n == 0 {
				return nil
			}
		}
	}
	batch := c.opts.BatchSize
	steps := []struct {
		what string
		fn   func(p *pass) (int, error)
	}{
		{"tags", func(p *pass) (int, error) {
			tags, err := p.tx.RepoTags(ctx, r.ID, batch)
			for _, t := range tags {
				if err := p.tx.DeleteTag(ctx, t.ID); err != nil {
					return 0, err
				}
				p.deleted(ctx, Deletion{Kind: review.KindTag, Repository: r.Name, Tag: t.Name, Digest: t.Manifest, Cause: review.CausePurge, Reason: "repository purged"})
			}
			return len(tags), err
		}},
		{"manifests", func(p *pass) (int, error) {
			p.stage = stageOf(review.KindManifest)
			ds, err := p.tx.RepoManifests(ctx, r.ID, batch)
			if err != nil || len(ds) == 0 {
				return 0, err
			}
			keys := make([]meta.RepoDigest, len(ds))
			for i, d := range ds {
				keys[i] = meta.RepoDigest{RepoID: r.ID, Digest: d}
			}
			// Locked like the collector's candidates; one another
			// transaction holds is the next round's.
			facts, _, err := p.tx.LockManifestFacts(ctx, keys)
			if err != nil || len(facts) == 0 {
				return len(ds), err
			}
			locked := make([]meta.RepoDigest, len(facts))
			for i, f := range facts {
				locked[i] = f.RepoDigest
			}
			refs, err := p.tx.DeleteManifests(ctx, locked)
			if err != nil {
				return 0, err
			}
			for _, k := range locked {
				p.deleted(ctx, Deletion{Kind: review.KindManifest, Repository: r.Name, Digest: k.Digest, Cause: review.CausePurge, Reason: "repository purged"})
			}
			p.manifestsDeleted(refs)
			return len(ds), nil
		}},
		{"links", func(p *pass) (int, error) {
			p.stage = stageOf(review.KindLink)
			if _, err := p.tx.DeleteRepoUploadedBlobs(ctx, r.ID); err != nil {
				return 0, err
			}
			ds, err := p.tx.RepoLinks(ctx, r.ID, batch)
			for _, d := range ds {
				if err := p.tx.UnlinkBlob(ctx, r.ID, d); err != nil {
					return 0, err
				}
				p.deleted(ctx, Deletion{Kind: review.KindLink, Repository: r.Name, Digest: d, Cause: review.CausePurge, Reason: "repository purged"})
				p.followUp(review.KindBlob, review.BlobObject(d), p.now, review.CauseUnlinked, "unlinked from "+r.Name+" by purge")
			}
			return len(ds), err
		}},
		{"uploads", func(p *pass) (int, error) {
			ups, err := p.tx.RepoUploads(ctx, r.ID, batch)
			for _, u := range ups {
				if err := p.tx.DeleteUpload(ctx, u.ID); err != nil {
					return 0, err
				}
				p.aborts = append(p.aborts, u.ID)
				p.deleted(ctx, Deletion{Kind: review.KindUpload, Repository: r.Name, Size: u.Size, Cause: review.CausePurge, Reason: "repository purged"})
			}
			return len(ups), err
		}},
		{"repository row", func(p *pass) (int, error) {
			empty, err := p.tx.RepositoryIsEmpty(ctx, r.ID)
			if err != nil {
				return 0, err
			}
			if !empty {
				return 0, fmt.Errorf("rows were added during the purge")
			}
			if err := p.tx.DeleteRepository(ctx, r.ID); err != nil {
				return 0, err
			}
			p.deleted(ctx, Deletion{Kind: review.KindRepository, Repository: r.Name, Cause: review.CausePurge, Reason: "repository purged"})
			return 0, nil
		}},
	}
	for _, s := range steps {
		if err := step(s.what, s.fn); err != nil {
			return total, err
		}
	}
	return total, nil
}

func (c *Collector) finishNamespace(ctx context.Context, id int64, name string) error {
	err := c.store.Update(ctx, func(tx meta.Tx) error {
		rs, err := tx.NamespaceRepositories(ctx, id, 1)
		if err != nil {
			return err
		}
		if len(rs) > 0 {
			return fmt.Errorf("repository %s still exists (%w)", rs[0].Name, ErrPurgeIncomplete)
		}
		if err := tx.DeleteReview(ctx, review.KindPurge, review.NamespacePurgeObject(id)); err != nil {
			return err
		}
		return tx.DeleteNamespace(ctx, id)
	})
	if err != nil {
		return fmt.Errorf("purge %s: deleting namespace: %w", name, err)
	}
	c.hooks.emit(Event{Kind: event.RepositoryPurged, Repository: name, Reason: "namespace purged", At: c.opts.Now(), Actor: meta.ActorFrom(ctx)})
	return nil
}

// resumePurges finishes purges a crash interrupted: it claims their
// reviews for a lease and runs them again.
func (c *Collector) resumePurges(ctx context.Context) error {
	ctx = meta.WithActor(ctx, meta.ActorCollector)
	var claimed []meta.Review
	err := c.store.Update(ctx, func(tx meta.Tx) error {
		now := c.opts.Now()
		rs, err := tx.ClaimReviews(ctx, now, meta.ReviewFilter{Kinds: []review.Kind{review.KindPurge}}, 10)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if err := tx.RescheduleReview(ctx, meta.Review{Kind: r.Kind, Object: r.Object, ReviewAfter: now.Add(purgeLease),
				Cause: r.Cause, Reason: "resumed " + now.Format(time.RFC3339)}); err != nil {
				return err
			}
		}
		claimed = rs
		return nil
	})
	if err != nil {
		return fmt.Errorf("claiming purges: %w", err)
	}
	for _, r := range claimed {
		o, perr := review.Parse(r.Kind, r.Object)
		switch {
		case perr != nil:
			// No writer makes one; resuming it is impossible, and
			// dropping it leaves the marks a new purge finishes.
			c.log.Warn("gc: dropping a purge review whose object is malformed", "kind", r.Kind, "object", r.Object, "error", perr)
			err = c.store.Update(ctx, func(tx meta.Tx) error { return tx.DeleteReview(ctx, r.Kind, r.Object) })
		case o.NamespaceID != 0:
			err = c.resumeNamespace(ctx, o.NamespaceID)
		default:
			err = c.resumeRepo(ctx, o.RepoID)
		}
		if err != nil {
			c.log.Error("resuming purge failed; will retry", "object", r.Object, "err", err)
		}
	}
	return nil
}

func (c *Collector) resumeRepo(ctx context.Context, id int64) error {
	var r meta.Repository
	err := c.store.View(ctx, func(tx meta.Tx) (err error) {
		r, err = tx.RepositoryByID(ctx, id, meta.LockNone)
		return err
	})
	if errors.Is(err, meta.ErrNotFound) {
		return c.store.Update(ctx, func(tx meta.Tx) error { return tx.DeleteReview(ctx, review.KindPurge, review.RepoPurgeObject(id)) })
	}
	if err != nil {
		return err
	}
	c.log.Info("resuming purge", "repository", r.Name)
	_, err = c.purgeRepo(ctx, r, nil)
	return err
}

func (c *Collector) resumeNamespace(ctx context.Context, id int64) error {
	var repos []meta.Repository
	if err := c.store.View(ctx, func(tx meta.Tx) (err error) {
		repos, err = tx.NamespaceRepositories(ctx, id, 1<<20)
		return err
	}); err != nil {
		return err
	}
	for _, r := range repos {
		if _, err := c.purgeRepo(ctx, r, nil); err != nil {
			return err
		}
	}
	return c.finishNamespace(ctx, id, "namespace "+strconv.FormatInt(id, 10))
}
