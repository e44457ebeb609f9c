package registry

import (
	"context"
	"fmt"
	"time"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/oci"
	"github.com/berth/berth/internal/policy"
	"github.com/berth/berth/internal/review"
)

// tagRules reads the retention and immutable rules that apply to
// repository repo (meta.PolicyTx.PoliciesFor), compiled, inside a tag
// write's transaction: one read serves the immutability check and the
// scheduling of the repository's evaluation. A stored rule that no longer
// compiles is logged and left out: what it would match cannot be known.
func (r *Registry) tagRules(ctx context.Context, tx meta.Tx, repo string) ([]policy.Rule, error) {
	ns, _ := oci.SplitRepo(repo)
	ps, err := tx.PoliciesFor(ctx, ns, repo)
	if err != nil {
		return nil, err
	}
	rules, bad := policy.CompileAll(ps)
	for _, err := range bad {
		r.log.WarnContext(ctx, "ignoring a stored policy that does not compile", "repository", repo, "error", err)
	}
	return rules, nil
}

// schedulePolicies records, in the transaction that created or moved tag
// t, when the repository's rules must be evaluated (docs/design/policies.md,
// "When rules are evaluated"): now when a count rule sees the tag (it
// ranks one more), else when the tag first becomes prunable by an age or
// pull rule that sees it (its start plus the smallest span). A tag no rule
// can prune (hidden, immutable, or seen by no rule) records nothing. The
// review only ever moves earlier (ExpediteReview); serve's collector
// workers pick it within gc.interval.
func (r *Registry) schedulePolicies(ctx context.Context, tx meta.Tx, repo meta.Repository, rules []policy.Rule, t meta.Tag) error {
	if t.Hidden {
		return nil
	}
	if _, ok := policy.Immutable(rules, t.Name); ok {
		return nil
	}
	var due time.Time
	for _, rule := range rules {
		if !rule.Prunes() || !rule.Sees(t.Name) {
			continue
		}
		at := t.Start
		if !rule.Counts() {
			at = at.Add(rule.Span)
		}
		if due.IsZero() || at.Before(due) {
			due = at
		}
	}
	if due.IsZero() {
		return nil
	}
	err := tx.ExpediteReview(ctx, meta.Review{Kind: review.KindPolicy, Object: review.PolicyObject(repo.ID), ReviewAfter: due,
		Cause: review.CauseTagPushed, Reason: "tag " + t.Name + " pushed"})
	if err != nil {
		return fmt.Errorf("scheduling the policies of %s: %w", repo.Name, err)
	}
	return nil
}
