// Package policy decides what retention rules prune and what immutable
// rules protect (docs/design/policies.md). It holds no state and does no
// I/O: the registry checks immutability with it inside a tag write, the
// collector evaluates a repository's rules with it, and the preview runs
// the same evaluation read-only.
package policy

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/oci"
)

// Limits of a rule.
const (
	// MaxNameLength bounds a policy's name.
	MaxNameLength = 64
	// MaxPatternLength bounds a tag pattern: patterns are compiled on every
	// evaluation and tag write of their scope.
	MaxPatternLength = 1024
	// MaxCount bounds the N of the keep rules (a repository holds at most
	// this many tags a count rule ranks, far beyond any real one).
	MaxCount = 1_000_000
)

// ErrInvalid is wrapped by every error Compile returns: the rule cannot be
// saved as given.
var ErrInvalid = errors.New("invalid policy")

// ErrImmutable is wrapped by every *ImmutableError: a tag write an
// immutable rule refuses.
var ErrImmutable = errors.New("tag is immutable")

// Rule is a policy whose pattern is compiled and checked.
type Rule struct {
	meta.TagPolicy
	re *regexp.Regexp // nil: every tag
}

// Compile checks a policy (name, scope, kind and its parameter, pattern)
// and compiles its pattern. The error wraps ErrInvalid and says what to
// change.
func Compile(p meta.TagPolicy) (Rule, error) {
	bad := func(format string, args ...any) (Rule, error) {
		return Rule{}, fmt.Errorf("policy %s: %s: %w", p.Ref(), fmt.Sprintf(format, args...), ErrInvalid)
	}
	if err := ValidName(p.Name); err != nil {
		return Rule{}, fmt.Errorf("policy %s: %w", p.Ref(), err)
	}
	switch {
	case p.Repository != "" && p.Namespace == "":
		return bad("a repository policy names its namespace")
	case p.Repository != "" && !strings.HasPrefix(p.Repository, p.Namespace+"/"):
		return bad("repository %s is not in namespace %s", p.Repository, p.Namespace)
	case p.Repository != "":
		if err := oci.ValidateRepoName(p.Repository); err != nil {
			return bad("%v", err)
		}
	}
	if p.Namespace != "" {
		// A namespace is a repository name's first component.
		if err := oci.ValidateRepoName(p.Namespace); err != nil || strings.Contains(p.Namespace, "/") {
			return bad("namespace %q is not a valid namespace name", p.Namespace)
		}
	}
	switch p.Kind {
	case meta.PolicyKeepNewest, meta.PolicyKeepRecentlyPulled:
		if p.Count < 0 || p.Count > MaxCount {
			return bad("%s keeps %d tags; the count is 0 to %d", p.Kind, p.Count, MaxCount)
		}
		if p.Span != 0 {
			return bad("%s takes a count, not a span", p.Kind)
		}
	case meta.PolicyPruneOlderThan, meta.PolicyPruneNotPulled:
		if p.Span <= 0 {
			return bad("%s needs a span greater than zero", p.Kind)
		}
		if p.Count != 0 {
			return bad("%s takes a span, not a count", p.Kind)
		}
	case meta.PolicyImmutable:
		if p.Namespace == "" {
			return bad("an immutable rule is set on a namespace or a repository, not on the whole registry")
		}
		if p.Count != 0 || p.Span != 0 {
			return bad("an immutable rule takes only a tag pattern")
		}
	default:
		return bad("unknown rule kind %q (want one of %s)", p.Kind, kindList())
	}
	r := Rule{TagPolicy: p}
	if p.TagPattern == "" {
		if !p.PatternMatches {
			return bad("a rule for tags not matching a pattern needs the pattern")
		}
		return r, nil
	}
	if len(p.TagPattern) > MaxPatternLength {
		return bad("the tag pattern is %d bytes, longer than %d", len(p.TagPattern), MaxPatternLength)
	}
	re, err := regexp.Compile(p.TagPattern)
	if err != nil {
		return bad("tag pattern: %v", err)
	}
	r.re = re
	return r, nil
}

func kindList() string {
	var names []string
	for _, k := range meta.PolicyKinds() {
		names = append(names, string(k))
	}
	return strings.Join(names, ", ")
}

// ValidName checks a policy name: [a-z0-9][a-z0-9._-]{0,63}. The error
// wraps ErrInvalid.
func ValidName(name string) error {
	if name == "" || len(name) > MaxNameLength {
		return fmt.Errorf("policy name %q: 1 to %d characters: %w", name, MaxNameLength, ErrInvalid)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return fmt.Errorf("policy name %q: lowercase letters, digits and . _ - (not first): %w", name, ErrInvalid)
		}
	}
	return nil
}

// CompileAll compiles policies read from the store. A stored policy that
// no longer compiles (saved by a berth that accepted it) is returned in
// bad, never applied: a rule that cannot be read must not prune.
func CompileAll(ps []meta.TagPolicy) (rules []Rule, bad []error) {
	for _, p := range ps {
		r, err := Compile(p)
		if err != nil {
			bad = append(bad, err)
			continue
		}
		rules = append(rules, r)
	}
	return rules, bad
}

// Sees reports whether the rule applies to a tag name (its pattern, if
// any, matches or does not, as the rule says).
func (r Rule) Sees(tag string) bool {
	if r.re == nil {
		return true
	}
	return r.re.MatchString(tag) == r.PatternMatches
}

// Prunes reports whether the rule can prune tags (every kind but
// immutable).
func (r Rule) Prunes() bool { return r.Kind != meta.PolicyImmutable }

// Counts reports whether the rule ranks tags (keep_newest,
// keep_recently_pulled): a push to its repository evaluates it now.
func (r Rule) Counts() bool {
	return r.Kind == meta.PolicyKeepNewest || r.Kind == meta.PolicyKeepRecentlyPulled
}

// Immutable returns the first immutable rule of rules that sees tag.
func Immutable(rules []Rule, tag string) (Rule, bool) {
	for _, r := range rules {
		if r.Kind == meta.PolicyImmutable && r.Sees(tag) {
			return r, true
		}
	}
	return Rule{}, false
}

// ImmutableError is a tag write refused by an immutable rule. The API
// answers it with the OCI code DENIED.
type ImmutableError struct {
	Tag  string
	Rule string // the rule's ref
	Op   string // "moved", "deleted", "given an expiry", ...
}

func (e *ImmutableError) Error() string {
	return fmt.Sprintf("tag %q is immutable (rule %s) and cannot be %s; an administrator can delete the rule", e.Tag, e.Rule, e.Op)
}

// Unwrap returns ErrImmutable.
func (e *ImmutableError) Unwrap() error { return ErrImmutable }

// lastPull is when a tag counts as last pulled: its recorded pull, or the
// start of its lifetime when none was recorded after it.
func lastPull(t meta.Tag) time.Time {
	if t.PulledAt != nil && t.PulledAt.After(t.Start) {
		return *t.PulledAt
	}
	return t.Start
}

// Input is one repository's evaluation.
type Input struct {
	// Tags are the repository's live tags (meta.PolicyTx.LiveTags).
	Tags []meta.Tag
	// Rules are the policies that apply to it (PoliciesFor, compiled).
	Rules []Rule
	Now   time.Time
	// Protected reports a tag no rule may prune or count besides the
	// immutable rules: an attachment whose subject lives. May be nil.
	Protected func(meta.Tag) bool
}

// Prune is one tag a rule prunes; when several do, the first in rule order
// is named.
type Prune struct {
	Tag  meta.Tag
	Rule Rule
}

// Evaluate decides which of the live tags the rules prune at in.Now and
// when the next one will be prunable by an age or pull rule (nil: none
// will, as things stand). Hidden, immutable and protected tags are never
// pruned nor counted. The result is in tag id order.
func Evaluate(in Input) (prune []Prune, next *time.Time) {
	// The tags are handled by their index in in.Tags: a preview of a count
	// rule over 10,000 tags spent most of its evaluation copying tags and
	// rules into growing slices and a map (about 30 MB).
	cands := make([]int, 0, len(in.Tags))
	var immutable []Rule
	for _, r := range in.Rules {
		if !r.Prunes() {
			immutable = append(immutable, r)
		}
	}
	for i, t := range in.Tags {
		if t.Hidden {
			continue
		}
		if _, ok := Immutable(immutable, t.Name); ok {
			continue
		}
		if in.Protected != nil && in.Protected(t) {
			continue
		}
		cands = append(cands, i)
	}
	// by[i] is the index in in.Rules of the first rule that prunes
	// in.Tags[i], -1 if none does.
	by := make([]int, len(in.Tags))
	for i := range by {
		by[i] = -1
	}
	pruned := 0
	mark := func(i, r int) {
		if by[i] < 0 {
			by[i] = r
			pruned++
		}
	}
	later := func(at time.Time) {
		if next == nil || at.Before(*next) {
			next = &at
		}
	}
	seen := make([]int, 0, len(cands))
	for ri, r := range in.Rules {
		seen = seen[:0]
		for _, i := range cands {
			if r.Prunes() && r.Sees(in.Tags[i].Name) {
				seen = append(seen, i)
			}
		}
		switch r.Kind {
		case meta.PolicyKeepNewest:
			rank(in.Tags, seen, func(t *meta.Tag) time.Time { return t.Start })
			for _, i := range seen[min(r.Count, len(seen)):] {
				mark(i, ri)
			}
		case meta.PolicyKeepRecentlyPulled:
			rank(in.Tags, seen, func(t *meta.Tag) time.Time { return lastPull(*t) })
			for _, i := range seen[min(r.Count, len(seen)):] {
				mark(i, ri)
			}
		case meta.PolicyPruneOlderThan, meta.PolicyPruneNotPulled:
			for _, i := range seen {
				from := in.Tags[i].Start
				if r.Kind == meta.PolicyPruneNotPulled {
					from = lastPull(in.Tags[i])
				}
				if due := from.Add(r.Span); !due.After(in.Now) {
					mark(i, ri)
				} else {
					later(due)
				}
			}
		}
	}
	if pruned > 0 {
		prune = make([]Prune, 0, pruned)
	}
	for _, i := range cands {
		if r := by[i]; r >= 0 {
			prune = append(prune, Prune{Tag: in.Tags[i], Rule: in.Rules[r]})
		}
	}
	return prune, next
}

// rank orders the indices idx of tags newest first by key, ties broken by
// the higher row id.
func rank(tags []meta.Tag, idx []int, key func(*meta.Tag) time.Time) {
	slices.SortFunc(idx, func(i, j int) int {
		a, b := &tags[i], &tags[j]
		if c := key(b).Compare(key(a)); c != 0 {
			return c
		}
		switch {
		case a.ID > b.ID:
			return -1
		case a.ID < b.ID:
			return 1
		}
		return 0
	})
}
