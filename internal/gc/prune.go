package gc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/duration"
	"github.com/berth/berth/internal/event"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/oci"
	"github.com/berth/berth/internal/policy"
	"github.com/berth/berth/internal/review"
)

// Retention policies (docs/design/policies.md, "When rules are evaluated";
// docs/design/gc.md, "Policy reviews").
//
// A review of kind policy names a repository whose rules are to be
// evaluated: a push under a count rule, the time an age or pull rule's next
// tag becomes prunable, or a change of a rule recorded it. Its stage is the
// first, so the tags it ends are carried down to the tag stage in the same
// transaction: with a zero window a pruned tag, its manifest and its blobs
// go in the same run.
//
// A run claims due policy reviews and leases them (moves them policyLease
// ahead, so no other collector takes them and a crash only delays them),
// then evaluates each repository in a read-only transaction: its live tags
// are read once, and on SQLite without holding the writer, however many
// they are. What the rules prune is ended in write transactions of at most
// the claim size each, with their cascade; the last one settles the review
// unless a push brought it forward meanwhile (it then stays due, for
// another evaluation that sees the push). The dry run decides in its one
// transaction instead (decidePolicies).

// policyLease is how long a claimed policy review is left to the collector
// evaluating it.
const policyLease = 10 * time.Minute

// evaluation is one repository's evaluation: the tags its rules prune that
// are still to be ended, and when its next tag becomes prunable.
type evaluation struct {
	repoID int64
	repo   string
	gone   bool          // the repository is gone or being purged
	window time.Duration // the namespace's time-machine window
	prunes []policy.Prune
	next   *time.Time
	// skipped is set when a tag to end was held by another transaction
	// (PostgreSQL): the repository is evaluated again rather than settled.
	skipped bool
	// review is the claimed review, lease the time it was moved to.
	review meta.Review
	lease  time.Time
}

// decidePolicies evaluates the repositories of claimed policy reviews and
// ends what their rules prune, all in the pass's transaction: the dry
// run's way. A real run evaluates outside the writer (evaluateClaims).
func (p *pass) decidePolicies(ctx context.Context, items []item) ([]verdict, error) {
	verdicts := make([]verdict, len(items))
	for i, it := range items {
		o, err := review.Parse(review.KindPolicy, it.object)
		if err != nil {
			p.malformed(ctx, review.KindPolicy, it.object, err)
			continue
		}
		e, err := p.evaluate(ctx, o.RepoID)
		if err != nil {
			return nil, fmt.Errorf("evaluating the policies of repository %d: %w", o.RepoID, err)
		}
		if err := p.prune(ctx, e, len(e.prunes)); err != nil {
			return nil, err
		}
		verdicts[i] = e.verdict()
	}
	return verdicts, nil
}

// verdict settles an evaluation that ended every tag it pruned: dropped
// when the repository is gone (a purge deletes its tags), evaluated again
// now if a tag was held by another transaction, at the next time a tag
// becomes prunable, or not until a push or a rule's change records a
// review.
func (e *evaluation) verdict() verdict {
	switch {
	case e.gone:
		return verdict{outcome: gone}
	case e.skipped:
		return verdict{outcome: skipped}
	case e.next != nil:
		return verdict{outcome: later, until: *e.next, cause: review.CausePolicyDue,
			why: "a tag becomes prunable at " + e.next.Format(time.RFC3339)}
	}
	return verdict{outcome: keep}
}

// evaluate reads the repository's rules and live tags and decides what the
// rules prune now.
func (p *pass) evaluate(ctx context.Context, repoID int64) (*evaluation, error) {
	e := &evaluation{repoID: repoID, gone: true}
	r, err := p.tx.RepositoryByID(ctx, repoID, meta.LockNone)
	if errors.Is(err, meta.ErrNotFound) || err == nil && r.State == meta.RepoDeleting {
		return e, nil
	}
	if err != nil {
		return nil, err
	}
	nsName, _ := oci.SplitRepo(r.Name)
	ns, err := p.tx.Namespace(ctx, nsName, meta.LockNone)
	if errors.Is(err, meta.ErrNotFound) || err == nil && ns.State == meta.RepoDeleting {
		return e, nil
	}
	if err != nil {
		return nil, err
	}
	p.repoNames[repoID] = r.Name
	e.repo, e.gone, e.window = r.Name, false, p.windowOf(ns.TagRetention)
	ps, err := p.tx.PoliciesFor(ctx, nsName, r.Name)
	if err != nil {
		return nil, err
	}
	rules, bad := policy.CompileAll(ps)
	for _, err := range bad {
		p.c.log.WarnContext(ctx, "gc: a stored retention policy is invalid and is not applied", "repository", r.Name, "err", err)
	}
	if !slices.ContainsFunc(rules, policy.Rule.Prunes) {
		return e, nil
	}
	tags, err := p.tx.LiveTags(ctx, repoID, p.now)
	if err != nil {
		return nil, err
	}
	protected, err := p.protectedAttachments(ctx, repoID, tags)
	if err != nil {
		return nil, err
	}
	e.prunes, e.next = policy.Evaluate(policy.Input{Tags: tags, Rules: rules, Now: p.now,
		Protected: func(t meta.Tag) bool { return protected[t.ID] }})
	return e, nil
}

// protectedAttachments returns the ids of the attachment tags among tags
// whose subject manifest is stored in the repository and not withdrawn:
// no rule prunes or counts them (docs/design/policies.md, "Protections").
// A manifest a live tag names is stored and not withdrawn (a DELETE by
// digest ends its tags); only the other subjects are read.
func (p *pass) protectedAttachments(ctx context.Context, repoID int64, tags []meta.Tag) (map[int64]bool, error) {
	alive := map[digest.Digest]bool{}
	for _, t := range tags {
		alive[t.Manifest] = true
	}
	read := map[digest.Digest]bool{}
	out := map[int64]bool{}
	for _, t := range tags {
		d, ok := oci.AttachmentSubject(t.Name)
		if !ok || t.Hidden {
			continue
		}
		if !alive[d] && !read[d] {
			read[d] = true
			m, err := p.tx.Manifest(ctx, repoID, d, meta.LockNone)
			switch {
			case err == nil:
				alive[d] = !m.Withdrawn()
			case !errors.Is(err, meta.ErrNotFound):
				return nil, fmt.Errorf("reading the subject of attachment tag %s: %w", t.Name, err)
			}
		}
		if alive[d] {
			out[t.ID] = true
		}
	}
	return out, nil
}

// prune ends the first n of the evaluation's prunes, grouped by rule, with
// actor collector, cause policy and the rule's ref; each ended tag enters
// the time machine (its review at the end of the namespace's window) and
// emits tag.pruned. A tag another transaction holds is left (the
// evaluation is then repeated); one no longer live is skipped.
func (p *pass) prune(ctx context.Context, e *evaluation, n int) error {
	batch := e.prunes[:n]
	e.prunes = e.prunes[n:]
	if n == 0 {
		return nil
	}
	ids := make([]int64, len(batch))
	for i, pr := range batch {
		ids[i] = pr.Tag.ID
	}
	rows, held, err := p.tx.LockTagRows(ctx, ids)
	if err != nil {
		return err
	}
	if len(held) > 0 {
		e.skipped = true
	}
	live := map[int64]bool{}
	for _, r := range rows {
		if r.End == nil {
			live[r.ID] = true
		}
	}
	var refs []string
	byRule := map[string][]policy.Prune{}
	for _, pr := range batch {
		if !live[pr.Tag.ID] {
			continue
		}
		ref := pr.Rule.Ref()
		if _, ok := byRule[ref]; !ok {
			refs = append(refs, ref)
		}
		byRule[ref] = append(byRule[ref], pr)
	}
	for _, ref := range refs {
		group := byRule[ref]
		ids := make([]int64, len(group))
		for i, pr := range group {
			ids[i] = pr.Tag.ID
		}
		ended, err := p.tx.EndTags(ctx, ids, p.now, meta.ActorCollector, meta.CausePolicy, ref)
		if err != nil {
			return err
		}
		byID := make(map[int64]policy.Prune, len(group))
		for _, pr := range group {
			byID[pr.Tag.ID] = pr
		}
		for _, t := range ended {
			p.pruned(e, t, byID[t.ID])
		}
	}
	return nil
}

// pruned records one tag a rule ended; its reason names the rule.
func (p *pass) pruned(e *evaluation, t meta.Tag, pr policy.Prune) {
	reason := "pruned by policy " + pr.Rule.Ref() + ": " + pruneWhy(pr)
	p.followUp(review.KindTag, review.TagObject(e.repoID, t.ID), p.now.Add(e.window), review.CauseTagPruned, "tag "+t.Name+" "+reason)
	p.summary.Pruned++
	p.tagEnded(TagEnd{Repository: e.repo, Tag: t.Name, Digest: t.Manifest, Cause: meta.CausePolicy, Rule: pr.Rule.Ref(), Reason: reason},
		event.TagPruned)
}

// pruneWhy says why the rule prunes the tag, for logs, events and the dry
// run's listing.
func pruneWhy(pr policy.Prune) string {
	r, t := pr.Rule, pr.Tag
	var why string
	switch r.Kind {
	case meta.PolicyKeepNewest:
		why = fmt.Sprintf("not among the %d newest tags", r.Count)
	case meta.PolicyKeepRecentlyPulled:
		why = fmt.Sprintf("not among the %d most recently pulled tags", r.Count)
	case meta.PolicyPruneOlderThan:
		why = fmt.Sprintf("pushed %s, more than %s ago", t.Start.Format(time.RFC3339), duration.Format(r.Span))
	case meta.PolicyPruneNotPulled:
		last := t.Start
		if t.PulledAt != nil && t.PulledAt.After(last) {
			last = *t.PulledAt
		}
		why = fmt.Sprintf("not pulled since %s, more than %s ago", last.Format(time.RFC3339), duration.Format(r.Span))
	default:
		why = string(r.Kind)
	}
	if r.TagPattern != "" {
		verb := "matching"
		if !r.PatternMatches {
			verb = "not matching"
		}
		why += fmt.Sprintf(" (tags %s %q)", verb, r.TagPattern)
	}
	return why
}

// evaluateClaims is decideClaims for policy reviews (see batch): one
// transaction claims up to n due reviews and leases them; each repository
// is then evaluated and what its rules prune ended (evaluateLeased). It
// returns how many reviews it claimed and the tombstones its transactions
// committed.
func (c *Collector) evaluateClaims(ctx context.Context, kind review.Kind, prefix string, n int) (Summary, int, []meta.Tombstone, error) {
	total := Summary{Deleted: map[review.Kind]int{}}
	var claimed []meta.Review
	var lease time.Time
	err := c.store.Update(ctx, func(tx meta.Tx) error {
		p := c.newPass(tx, c.opts.Now())
		lease = p.now.Add(policyLease)
		var err error
		if claimed, err = tx.ClaimDue(ctx, kind, p.now, prefix, n); err != nil {
			return err
		}
		var malformed []string
		for _, r := range claimed {
			if _, err := review.Parse(kind, r.Object); err != nil {
				p.malformed(ctx, kind, r.Object, err)
				malformed = append(malformed, r.Object)
				continue
			}
			if err := tx.RescheduleReview(ctx, meta.Review{Kind: kind, Object: r.Object, ReviewAfter: lease, Cause: r.Cause,
				Reason: "evaluating since " + p.now.Format(time.RFC3339)}); err != nil {
				return err
			}
		}
		return tx.DeleteReviews(ctx, kind, malformed)
	})
	if err != nil {
		return total, 0, nil, fmt.Errorf("claiming policy reviews: %w", err)
	}
	var tombs []meta.Tombstone
	for _, r := range claimed {
		o, err := review.Parse(kind, r.Object)
		if err != nil {
			continue // dropped above
		}
		s, freed, err := c.evaluateLeased(ctx, o.RepoID, r, lease)
		total.Add(s)
		tombs = append(tombs, freed...)
		if err != nil {
			return total, len(claimed), tombs, err
		}
	}
	return total, len(claimed), tombs, nil
}

// evaluateLeased evaluates the repository of a leased review in a
// read-only transaction, then ends what its rules prune in write
// transactions of at most the claim size each, with their cascade; the
// last one settles the review (settleLease). A failure reschedules the
// review with backoff, as for any decision.
func (c *Collector) evaluateLeased(ctx context.Context, repoID int64, r meta.Review, lease time.Time) (Summary, []meta.Tombstone, error) {
	var e *evaluation
	began := time.Now()
	err := c.store.View(ctx, func(tx meta.Tx) (err error) {
		e, err = c.newPass(tx, c.opts.Now()).evaluate(ctx, repoID)
		return err
	})
	c.log.DebugContext(ctx, "gc policy evaluation", "repository", repoID, "took", time.Since(began), "err", err)
	if err != nil {
		return c.failedEvaluation(ctx, r, fmt.Errorf("evaluating the policies of repository %d: %w", repoID, err))
	}
	e.review, e.lease = r, lease
	total := Summary{Deleted: map[review.Kind]int{}}
	var tombs []meta.Tombstone
	for done := false; !done; {
		var p *pass
		var rest evaluation
		began := time.Now()
		err := c.store.Update(ctx, func(tx meta.Tx) error {
			p = c.newPass(tx, c.opts.Now())
			p.stage = stageOf(review.KindPolicy)
			rest = *e
			if err := p.prune(ctx, &rest, min(len(rest.prunes), c.claims.size())); err != nil {
				return err
			}
			if len(rest.prunes) == 0 {
				if err := p.settleLease(ctx, &rest); err != nil {
					return err
				}
			}
			return p.cascade(ctx, p.stage+1)
		})
		if err != nil {
			s, _, ferr := c.failedEvaluation(ctx, r, fmt.Errorf("pruning %s: %w", e.repo, err))
			total.Add(s)
			return total, tombs, ferr
		}
		c.claims.observe(p.summary.Pruned, time.Since(began), c.foregroundWaited())
		c.log.DebugContext(ctx, "gc transaction", "kind", review.KindPolicy, "repository", e.repo, "pruned", p.summary.Pruned,
			"took", time.Since(began), "deleted", p.summary.Deleted, "next_claims", c.claims.size())
		*e = rest
		done = len(e.prunes) == 0
		tombs = append(tombs, p.tombs...)
		p.tombs = nil
		c.afterCommit(ctx, p)
		total.Add(p.summary)
	}
	return total, tombs, nil
}

// failedEvaluation reschedules a policy review whose evaluation failed,
// with backoff; what was ended before stays ended.
func (c *Collector) failedEvaluation(ctx context.Context, r meta.Review, cause error) (Summary, []meta.Tombstone, error) {
	if ctx.Err() != nil {
		return Summary{}, nil, cause // the lease runs out; the next run evaluates again
	}
	s, _, err := c.backoff(ctx, r, cause)
	return s, nil, err
}

// settleLease settles the review of an evaluation that ended its last tag:
// it claims the review again and settles it only if it still stands at the
// lease. A push that brought it forward asked for another evaluation, which
// must run; another collector holding it is running one.
func (p *pass) settleLease(ctx context.Context, e *evaluation) error {
	object := review.PolicyObject(e.repoID)
	rs, err := p.tx.ClaimDue(ctx, review.KindPolicy, e.lease, object, 1)
	if err != nil || len(rs) == 0 || rs[0].Object != object || rs[0].ReviewAfter.UnixMicro() != e.lease.UnixMicro() {
		return err
	}
	v := e.verdict()
	switch v.outcome {
	case later:
		p.summary.Reviews++
		return p.tx.RescheduleReview(ctx, meta.Review{Kind: review.KindPolicy, Object: object, ReviewAfter: v.until, Cause: v.cause, Reason: v.why})
	case skipped:
		p.summary.Skipped++
		return p.tx.RescheduleReview(ctx, meta.Review{Kind: review.KindPolicy, Object: object, ReviewAfter: p.now, Cause: e.review.Cause,
			Reason: "a tag to prune was held by another transaction"})
	}
	p.summary.Reviews++
	return p.tx.DeleteReviews(ctx, review.KindPolicy, []string{object})
}
