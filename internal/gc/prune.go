package gc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/duration"
	"github.com/berth/berth/internal/event"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/oci"
	"github.com/berth/berth/internal/policy"
	"github.com/berth/berth/internal/review"
)

// Retention policies (docs/design/policies.md, "When rules are evaluated").
//
// A review of kind policy names a repository whose rules are to be
// evaluated: a push under a count rule, the time an age or pull rule's next
// tag becomes prunable, or a change of a rule recorded it. Its stage is the
// first, so the tags it ends are carried down to the tag stage in the same
// transaction: with a zero window a pruned tag, its manifest and its blobs
// go in the same run.
//
// An evaluation reads the repository's live tags once and ends what its
// rules prune, at most pruneLimit tags per transaction. One with more to
// end leases its review (due again after policyLease, in case this process
// dies) and ends the rest in transactions of its own without reading the
// tags again; the last of them settles the review, unless a push brought
// it forward meanwhile (then it stays due, for another evaluation).

// policyLease is how long an evaluation that ends its tags over several
// transactions keeps its review from other collectors.
const policyLease = 10 * time.Minute

// PrunedTag is a tag lifetime a retention policy ended (in a dry run:
// would end now).
type PrunedTag struct {
	Repository string        `json:"repository"`
	Tag        string        `json:"tag"`
	Digest     digest.Digest `json:"digest"`
	// Rule is the policy's ref ("ns/app:keep-10"); Reason says why it
	// prunes the tag ("not among the 10 newest tags").
	Rule   string `json:"rule"`
	Reason string `json:"reason"`
}

// evaluation is one repository's evaluation: the tags its rules prune that
// are still to be ended, and when its next tag becomes prunable.
type evaluation struct {
	repoID int64
	repo   string
	window time.Duration // the namespace's time-machine window
	prunes []policy.Prune
	next   *time.Time
	// skipped is set when a tag to end was held by another transaction
	// (PostgreSQL): the repository is evaluated again rather than settled.
	skipped bool
	// cause is the claimed review's; lease, when set, is the time the
	// review was moved to while the evaluation ends its tags.
	cause review.Cause
	lease time.Time
}

// decidePolicies evaluates the repositories of claimed policy reviews. A
// repository purged or gone drops its review. Once the transaction has
// ended pruneLimit tags or spent its budget, the claims left are deferred
// to the next transaction (the first is always evaluated).
func (p *pass) decidePolicies(ctx context.Context, items []item) ([]verdict, error) {
	verdicts := make([]verdict, len(items))
	for i, it := range items {
		if i > 0 && p.pruneLimit > 0 && (p.prunedHere >= p.pruneLimit || time.Now().After(p.deadline)) {
			verdicts[i] = verdict{outcome: deferred}
			continue
		}
		o, err := review.Parse(review.KindPolicy, it.object)
		if err != nil {
			p.malformed(ctx, review.KindPolicy, it.object, err)
			continue
		}
		e, err := p.evaluate(ctx, o.RepoID)
		if err != nil {
			return nil, fmt.Errorf("evaluating the policies of repository %d: %w", o.RepoID, err)
		}
		if e == nil {
			continue // gone or being purged
		}
		if it.claimed != nil {
			e.cause = it.claimed.Cause
		}
		n := len(e.prunes)
		if p.pruneLimit > 0 {
			n = min(n, max(p.pruneLimit-p.prunedHere, 1))
		}
		if err := p.prune(ctx, e, n); err != nil {
			return nil, err
		}
		if len(e.prunes) > 0 {
			e.lease = p.now.Add(policyLease)
			p.leased = append(p.leased, e)
			verdicts[i] = verdict{outcome: later, until: e.lease, why: fmt.Sprintf("pruning: %d tags left to end", len(e.prunes))}
			continue
		}
		verdicts[i] = e.verdict(p.now)
	}
	return verdicts, nil
}

// verdict settles an evaluation that ended every tag it pruned: evaluated
// again now if a tag was held by another transaction, at the next time a
// tag becomes prunable, or not until a push or a rule's change records a
// review.
func (e *evaluation) verdict(now time.Time) verdict {
	switch {
	case e.skipped:
		return verdict{outcome: skipped}
	case e.next != nil:
		return verdict{outcome: later, until: *e.next, cause: review.CausePolicyDue,
			why: "a tag becomes prunable at " + e.next.Format(time.RFC3339)}
	}
	return verdict{outcome: keep}
}

// evaluate reads the repository's rules and live tags and decides what the
// rules prune now; nil when the repository is gone or being purged.
func (p *pass) evaluate(ctx context.Context, repoID int64) (*evaluation, error) {
	r, err := p.tx.RepositoryByID(ctx, repoID, meta.LockNone)
	if errors.Is(err, meta.ErrNotFound) || err == nil && r.State == meta.RepoDeleting {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	nsName, _ := oci.SplitRepo(r.Name)
	ns, err := p.tx.Namespace(ctx, nsName, meta.LockNone)
	if errors.Is(err, meta.ErrNotFound) || err == nil && ns.State == meta.RepoDeleting {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	p.repoNames[repoID] = r.Name
	e := &evaluation{repoID: repoID, repo: r.Name, window: p.windowOf(ns.TagRetention)}
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
		d, ok := attachmentSubject(t.Name)
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

// attachmentSuffixes are cosign's; "" is the OCI referrers tag schema.
var attachmentSuffixes = []string{".sig", ".att", ".sbom", ""}

// attachmentSubject reports whether tag is an attachment tag ("<alg>-<hex>"
// alone or followed by ".sig", ".att" or ".sbom") and the digest of its
// subject.
func attachmentSubject(tag string) (digest.Digest, bool) {
	for _, s := range attachmentSuffixes {
		base, ok := strings.CutSuffix(tag, s)
		if !ok {
			continue
		}
		alg, hex, ok := strings.Cut(base, "-")
		if !ok {
			return "", false
		}
		d, err := oci.ParseDigest(alg + ":" + hex)
		return d, err == nil
	}
	return "", false
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

// pruned records one tag a rule ended.
func (p *pass) pruned(e *evaluation, t meta.Tag, pr policy.Prune) {
	why := pruneWhy(pr)
	reason := "pruned by policy " + pr.Rule.Ref() + ": " + why
	p.prunedHere++
	p.followUp(review.KindTag, review.TagObject(e.repoID, t.ID), p.now.Add(e.window), review.CauseTagPruned, "tag "+t.Name+" "+reason)
	p.summary.Pruned++
	p.summary.PrunedTags = append(p.summary.PrunedTags, PrunedTag{Repository: e.repo, Tag: t.Name, Digest: t.Manifest, Rule: pr.Rule.Ref(), Reason: why})
	p.events = append(p.events, Event{Kind: event.TagPruned, Repository: e.repo, Tag: t.Name, Digest: t.Manifest,
		Reason: reason, At: p.now, Actor: meta.ActorCollector})
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

// finishPruning ends the rest of a leased evaluation, pruneLimit tags per
// transaction, each with its cascade; the last one settles the review if
// it still holds the lease. An error leaves the lease to run out: the
// repository is then evaluated again.
func (c *Collector) finishPruning(ctx context.Context, e *evaluation) (Summary, []meta.Tombstone, error) {
	total := Summary{Deleted: map[review.Kind]int{}}
	var tombs []meta.Tombstone
	for len(e.prunes) > 0 {
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
			if ctx.Err() != nil {
				return total, tombs, err
			}
			c.metrics.errors.Inc()
			c.log.Error("gc: pruning failed; the repository is evaluated again when its lease runs out", "repository", e.repo,
				"left", len(e.prunes), "lease", e.lease, "err", err)
			total.Errors++
			return total, tombs, nil
		}
		c.claims.observe(p.prunedHere, time.Since(began), c.foregroundWaited())
		*e = rest
		tombs = append(tombs, p.tombs...)
		p.tombs = nil
		c.afterCommit(ctx, p)
		total.Add(p.summary)
	}
	return total, tombs, nil
}

// settleLease settles the review of an evaluation that ended its last tag
// in a later transaction: it claims the review again, and settles it only
// if it is still at the lease (a push that brought it forward asked for
// another evaluation, which must run; another collector holding it is
// running one).
func (p *pass) settleLease(ctx context.Context, e *evaluation) error {
	object := review.PolicyObject(e.repoID)
	rs, err := p.tx.ClaimDue(ctx, review.KindPolicy, e.lease, object, 1)
	if err != nil || len(rs) == 0 || rs[0].Object != object || rs[0].ReviewAfter.UnixMicro() != e.lease.UnixMicro() {
		return err
	}
	p.summary.Reviews++
	v := e.verdict(p.now)
	switch v.outcome {
	case later:
		return p.tx.RescheduleReview(ctx, meta.Review{Kind: review.KindPolicy, Object: object, ReviewAfter: v.until, Cause: v.cause, Reason: v.why})
	case skipped:
		return p.tx.RescheduleReview(ctx, meta.Review{Kind: review.KindPolicy, Object: object, ReviewAfter: p.now, Cause: e.cause,
			Reason: "a tag to prune was held by another transaction"})
	}
	return p.tx.DeleteReviews(ctx, review.KindPolicy, []string{object})
}
