package registry

import (
	"context"
	"fmt"
	"slices"

	"github.com/berth/berth/internal/meta"
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

// immutableRules reads the immutable rules that apply to repository repo
// (tagRules, which logs and ignores a stored rule that does not compile).
func (r *Registry) immutableRules(ctx context.Context, tx meta.Tx, repo string) ([]policy.Rule, error) {
	rules, err := r.tagRules(ctx, tx, repo)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(rules, policy.Rule.Prunes), nil
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
