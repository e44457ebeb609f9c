package gc

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/berth/berth/internal/event"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/review"
)

// pass is the work of one transaction: what it decided, and what must happen
// after it commits (bytes, staging files, events). A transaction that is
// retried starts a fresh pass.
type pass struct {
	c         *Collector
	tx        meta.Tx
	now       time.Time
	summary   Summary
	tombs     []meta.Tombstone // bytes to delete after commit
	aborts    []string         // upload staging objects to delete after commit
	events    []Event
	repoNames map[int64]string
	// actor is recorded on the pass's events and the tag ends it records:
	// the collector, or the actor of a purge.
	actor meta.Actor

	// stage is the index in stages of the kind being decided.
	stage int
	// carried holds the follow-ups due now for stages still to come:
	// kind → object → why it was recorded (collect.go).
	carried map[review.Kind]map[string]followUpWhy
	// upserts are the follow-up reviews to record at the stage's end.
	upserts []meta.Review
	// split: the pass decides one stage and carries nothing; what it
	// frees is recorded as reviews (docs/design/gc.md, "One stage per
	// transaction under pushes").
	split bool
}

// newPass starts a pass at the tag stage: the work done outside the
// stages (the expiry scan, a purge's steps) records its tag follow-ups as
// reviews, since no tag stage runs after it; runStage moves the stage.
func (c *Collector) newPass(tx meta.Tx, now time.Time) *pass {
	return &pass{c: c, tx: tx, now: now, summary: Summary{Deleted: map[review.Kind]int{}}, repoNames: map[int64]string{}, actor: meta.ActorCollector,
		stage: stageOf(review.KindTag)}
}

func (p *pass) deleted(ctx context.Context, d Deletion) {
	p.summary.Deleted[d.Kind]++
	p.summary.BytesFreed += d.Size
	p.summary.Deletions = append(p.summary.Deletions, d)
	p.events = append(p.events, Event{Kind: eventKind(d.Kind), Repository: d.Repository, Digest: d.Digest, Tag: d.Tag, Size: d.Size, Reason: d.Reason, At: p.now, Actor: p.actor})
}

// tagEnded records a tag lifetime the pass ended, by the collector: listed
// in the summary, logged and emitted as kind after commit.
func (p *pass) tagEnded(e TagEnd, kind event.Name) {
	p.summary.Ends = append(p.summary.Ends, e)
	p.events = append(p.events, Event{Kind: kind, Repository: e.Repository, Tag: e.Tag, Digest: e.Digest, Reason: e.Reason, At: p.now,
		Actor: meta.ActorCollector})
}

func (p *pass) repoName(ctx context.Context, id int64) string {
	if n, ok := p.repoNames[id]; ok {
		return n
	}
	r, err := p.tx.RepositoryByID(ctx, id, meta.LockNone)
	if err != nil {
		return strconv.FormatInt(id, 10)
	}
	p.repoNames[id] = r.Name
	return r.Name
}

// malformed notes a review whose object cannot be read (no writer of berth
// makes one: a row written by hand or by a bug). Its review is dropped: it
// names nothing, so nothing can be kept or deleted for it.
func (p *pass) malformed(ctx context.Context, kind review.Kind, object string, err error) {
	p.c.log.WarnContext(ctx, "gc: dropping a review whose object is malformed", "kind", kind, "object", object, "error", err)
}

// expire ends live tags whose expiry passed (of repository repoID, or of
// all when it is 0, filtered in SQL so that a scoped run's batch is never
// filled by other repositories' tags): they enter the time machine
// like deleted tags, ended by the collector (whoever runs it: the expiry
// decided), cause expired.
func (p *pass) expire(ctx context.Context, limit int, repoID int64) (int, error) {
	tags, err := p.tx.ExpiredTags(ctx, repoID, p.now, limit)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range tags {
		if err := p.tx.EndTag(ctx, t.ID, *t.ExpiresAt, meta.ActorCollector, meta.CauseExpired); err != nil {
			if errors.Is(err, meta.ErrNotFound) {
				continue // ended concurrently
			}
			return n, err
		}
		repo := p.repoName(ctx, t.RepoID)
		ret, err := p.c.retention(ctx, p.tx, repo)
		if err != nil {
			return n, err
		}
		p.followUp(review.KindTag, review.TagObject(t.RepoID, t.ID), t.ExpiresAt.Add(ret), review.CauseTagExpired, "tag "+t.Name+" expired")
		p.summary.Expired++
		p.tagEnded(TagEnd{Repository: repo, Tag: t.Name, Digest: t.Manifest, Cause: meta.CauseExpired,
			Reason: "expired at " + t.ExpiresAt.Format(time.RFC3339)}, event.TagExpired)
		n++
	}
	return n, p.flushUpserts(ctx)
}
