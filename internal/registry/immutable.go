package registry

import (
	"context"
	"fmt"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/oci"
	"github.com/berth/berth/internal/policy"
)

// Immutable tags (docs/design/policies.md, "Immutable tags"). Every write
// that would end or move a live tag — a manifest PUT or a restore onto
// another digest, a DELETE of the tag or of its manifest, an expiry — reads
// the immutable rules of its repository in its own transaction, after
// ensureRepo or writeRepo locked the repository and namespace rows FOR
// SHARE. Saving an immutable rule locks the namespace row FOR UPDATE first
// (on SQLite the single writer serializes both), so it waits for the tag
// writes in flight and every later one reads it: no tag is moved through a
// rule being saved. Creating a tag is allowed, and so is a PUT of the digest
// the tag already names (it changes nothing).

// immutableRules reads the immutable rules that apply to repository repo.
// A stored rule that no longer compiles is logged and ignored: what it
// would match cannot be known.
func (r *Registry) immutableRules(ctx context.Context, tx meta.Tx, repo string) ([]policy.Rule, error) {
	ns, _ := oci.SplitRepo(repo)
	ps, err := tx.PoliciesFor(ctx, ns, repo)
	if err != nil {
		return nil, err
	}
	var imm []meta.TagPolicy
	for _, p := range ps {
		if p.Kind == meta.PolicyImmutable {
			imm = append(imm, p)
		}
	}
	rules, bad := policy.CompileAll(imm)
	for _, err := range bad {
		r.log.WarnContext(ctx, "ignoring a stored immutable rule that does not compile", "repository", repo, "error", err)
	}
	return rules, nil
}

// immutableRule returns the immutable rule of repository repo that covers
// tag, if any.
func (r *Registry) immutableRule(ctx context.Context, tx meta.Tx, repo, tag string) (policy.Rule, bool, error) {
	rules, err := r.immutableRules(ctx, tx, repo)
	if err != nil {
		return policy.Rule{}, false, err
	}
	rule, ok := policy.Immutable(rules, tag)
	return rule, ok, nil
}

// immutableError is the refusal of op ("moved", "deleted"...) on tag of
// repository repo, which rule covers. It wraps ErrImmutable, which the API
// answers DENIED with the *policy.ImmutableError's text.
func immutableError(repo, tag string, rule policy.Rule, op string) error {
	return fmt.Errorf("repository %q: %w", repo, &policy.ImmutableError{Tag: tag, Rule: rule.Ref(), Op: op})
}
