package policy_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/policy"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func rule(t *testing.T, p meta.TagPolicy) policy.Rule {
	t.Helper()
	if p.Name == "" {
		p.Name = "r"
	}
	if p.Namespace == "" {
		p.Namespace = "ns"
	}
	if p.TagPattern == "" {
		p.PatternMatches = true
	}
	r, err := policy.Compile(p)
	if err != nil {
		t.Fatalf("Compile(%+v): %v", p, err)
	}
	return r
}

// tags makes live tags named by names, started one hour apart (the first
// oldest), ids in order.
func tags(names ...string) []meta.Tag {
	var out []meta.Tag
	for i, n := range names {
		out = append(out, meta.Tag{ID: int64(i + 1), Name: n, Start: t0.Add(time.Duration(i) * time.Hour)})
	}
	return out
}

func pruned(ps []policy.Prune) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Tag.Name+"<"+p.Rule.Name)
	}
	return out
}

func TestEvaluate(t *testing.T) {
	now := t0.Add(100 * time.Hour)
	pulledAt := func(tg meta.Tag, h int) meta.Tag {
		at := t0.Add(time.Duration(h) * time.Hour)
		tg.PulledAt = &at
		return tg
	}
	for _, tt := range []struct {
		name  string
		tags  []meta.Tag
		rules []meta.TagPolicy
		prot  string // a protected tag name
		want  []string
		next  *time.Time
	}{
		{name: "keep newest 2", tags: tags("a", "b", "c", "d"),
			rules: []meta.TagPolicy{{Name: "k", Kind: meta.PolicyKeepNewest, Count: 2}},
			want:  []string{"a<k", "b<k"}},
		{name: "keep newest 0 prunes all it sees", tags: tags("a", "b"),
			rules: []meta.TagPolicy{{Name: "k", Kind: meta.PolicyKeepNewest, Count: 0}},
			want:  []string{"a<k", "b<k"}},
		{name: "keep newest more than there are", tags: tags("a", "b"),
			rules: []meta.TagPolicy{{Name: "k", Kind: meta.PolicyKeepNewest, Count: 5}}},
		{name: "pattern matches: only build tags counted", tags: tags("build-1", "v1", "build-2", "build-3", "v2"),
			rules: []meta.TagPolicy{{Name: "k", Kind: meta.PolicyKeepNewest, Count: 1, TagPattern: "^build-", PatternMatches: true}},
			want:  []string{"build-1<k", "build-2<k"}},
		{name: "pattern not matching: release tags untouched", tags: tags("build-1", "v1", "build-2", "v2"),
			rules: []meta.TagPolicy{{Name: "k", Kind: meta.PolicyKeepNewest, Count: 1, TagPattern: "^v", PatternMatches: false}},
			want:  []string{"build-1<k"}},
		{name: "older than 98h", tags: tags("a", "b", "c", "d"),
			rules: []meta.TagPolicy{{Name: "o", Kind: meta.PolicyPruneOlderThan, Span: 98 * time.Hour}},
			want:  []string{"a<o", "b<o", "c<o"}, next: ptr(t0.Add(101 * time.Hour))},
		{name: "not pulled within 50h: a recent pull keeps a", tags: []meta.Tag{pulledAt(tags("a")[0], 60), {ID: 2, Name: "b", Start: t0}, pulledAt(meta.Tag{ID: 3, Name: "c", Start: t0}, 10)},
			rules: []meta.TagPolicy{{Name: "p", Kind: meta.PolicyPruneNotPulled, Span: 50 * time.Hour}},
			want:  []string{"b<p", "c<p"}, next: ptr(t0.Add(110 * time.Hour))},
		{name: "keep 1 recently pulled; never pulled counts from its start", tags: []meta.Tag{pulledAt(tags("a")[0], 90), {ID: 2, Name: "b", Start: t0.Add(95 * time.Hour)}, pulledAt(meta.Tag{ID: 3, Name: "c", Start: t0}, 50)},
			rules: []meta.TagPolicy{{Name: "p", Kind: meta.PolicyKeepRecentlyPulled, Count: 1}},
			want:  []string{"a<p", "c<p"}},
		{name: "any rule prunes; the first names it", tags: tags("a", "b", "c"),
			rules: []meta.TagPolicy{{Name: "k", Kind: meta.PolicyKeepNewest, Count: 2}, {Name: "o", Kind: meta.PolicyPruneOlderThan, Span: 99 * time.Hour}},
			want:  []string{"a<k", "b<o"}, next: ptr(t0.Add(101 * time.Hour))},
		{name: "immutable protects and is not counted", tags: tags("v1", "a", "b", "v2"),
			rules: []meta.TagPolicy{{Name: "i", Kind: meta.PolicyImmutable, TagPattern: "^v", PatternMatches: true}, {Name: "k", Kind: meta.PolicyKeepNewest, Count: 1}},
			want:  []string{"a<k"}},
		{name: "hidden and protected tags neither pruned nor counted", tags: append(tags("a", "b", "sig"), meta.Tag{ID: 9, Name: "h", Start: t0, Hidden: true}),
			rules: []meta.TagPolicy{{Name: "k", Kind: meta.PolicyKeepNewest, Count: 1}}, prot: "sig",
			want: []string{"a<k"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var rules []policy.Rule
			for _, p := range tt.rules {
				rules = append(rules, rule(t, p))
			}
			in := policy.Input{Tags: tt.tags, Rules: rules, Now: now}
			if tt.prot != "" {
				in.Protected = func(tg meta.Tag) bool { return tg.Name == tt.prot }
			}
			got, next := policy.Evaluate(in)
			if diff := cmp.Diff(tt.want, pruned(got)); diff != "" {
				t.Errorf("pruned (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.next, next); diff != "" {
				t.Errorf("next (-want +got):\n%s", diff)
			}
		})
	}
}

func ptr(t time.Time) *time.Time { return &t }

func TestCompileRefuses(t *testing.T) {
	for _, tt := range []struct {
		p    meta.TagPolicy
		says string
	}{
		{meta.TagPolicy{Name: "Bad", Kind: meta.PolicyKeepNewest}, "lowercase"},
		{meta.TagPolicy{Name: strings.Repeat("a", 65), Kind: meta.PolicyKeepNewest}, "1 to 64"},
		{meta.TagPolicy{Name: "x", Kind: "keep_oldest"}, "unknown rule kind"},
		{meta.TagPolicy{Name: "x", Kind: meta.PolicyKeepNewest, Count: -1}, "the count is 0 to"},
		{meta.TagPolicy{Name: "x", Kind: meta.PolicyPruneOlderThan}, "span greater than zero"},
		{meta.TagPolicy{Name: "x", Kind: meta.PolicyPruneNotPulled, Span: time.Hour, Count: 3}, "takes a span, not a count"},
		{meta.TagPolicy{Name: "x", Kind: meta.PolicyImmutable, TagPattern: "^v", PatternMatches: true}, "not on the whole registry"},
		{meta.TagPolicy{Namespace: "ns", Name: "x", Kind: meta.PolicyKeepNewest, TagPattern: "(", PatternMatches: true}, "tag pattern"},
		{meta.TagPolicy{Namespace: "ns", Name: "x", Kind: meta.PolicyKeepNewest}, "needs the pattern"},
		{meta.TagPolicy{Namespace: "ns", Repository: "other/app", Name: "x", Kind: meta.PolicyKeepNewest, PatternMatches: true}, "is not in namespace ns"},
		{meta.TagPolicy{Namespace: "Ns", Name: "x", Kind: meta.PolicyKeepNewest, PatternMatches: true}, "not a valid namespace"},
		{meta.TagPolicy{Namespace: "acme/x", Repository: "acme/x/app", Name: "x", Kind: meta.PolicyKeepNewest, PatternMatches: true}, "not a valid namespace"},
	} {
		_, err := policy.Compile(tt.p)
		if !errors.Is(err, policy.ErrInvalid) || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("Compile(%+v): got %v, want ErrInvalid saying %q", tt.p, err, tt.says)
		}
	}
}

func TestImmutable(t *testing.T) {
	rules := []policy.Rule{
		rule(t, meta.TagPolicy{Name: "k", Kind: meta.PolicyKeepNewest, Count: 1}),
		rule(t, meta.TagPolicy{Name: "rel", Kind: meta.PolicyImmutable, TagPattern: `^v[0-9]+\.`, PatternMatches: true}),
	}
	if r, ok := policy.Immutable(rules, "v1.2"); !ok || r.Ref() != "ns:rel" {
		t.Errorf("v1.2: got %v %v, want ns:rel", r.Ref(), ok)
	}
	if _, ok := policy.Immutable(rules, "latest"); ok {
		t.Error("latest is immutable")
	}
	err := &policy.ImmutableError{Tag: "v1.2", Rule: "ns:rel", Op: "moved"}
	if got := err.Error(); got != `tag "v1.2" is immutable (rule ns:rel) and cannot be moved; an administrator can delete the rule` {
		t.Errorf("message: %s", got)
	}
	if wrapped := fmt.Errorf("putting tag: %w", err); !errors.Is(wrapped, policy.ErrImmutable) {
		t.Errorf("errors.Is(%v, ErrImmutable): got false, want true", wrapped)
	}
}
