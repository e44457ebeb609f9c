package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth/berth/internal/api"
	"github.com/berth/berth/internal/duration"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/oci"
	"github.com/berth/berth/internal/registry"
)

func newPolicyCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Set, list, preview and delete retention policies",
		Long: `policy works on retention policies: named rules that end tag lifetimes (into
the time machine, restorable for the namespace's window) or make tags
immutable. A policy is set on the whole registry (no scope flag: the default
for namespaces without policies of their own), on a namespace (--namespace)
or on one repository (--repository). The collector applies them: saving or
deleting a policy schedules an evaluation of every repository of its scope.

The subcommands work on the same --data/--db as a running server, while it
runs, and act as "operator". They print tables, or with --json the documents
of the management API (/berth/v1).`,
		Example: `  berth policy preview --namespace acme --keep-newest 10
  berth policy set keep-10 --namespace acme --keep-newest 10
  berth policy set release --repository acme/app --immutable --tag-pattern '^v[0-9]'
  berth policy list --namespace acme
  berth policy delete keep-10 --namespace acme`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newPolicySetCommand(g), newPolicyListCommand(g), newPolicyPreviewCommand(g), newPolicyDeleteCommand(g))
	return cmd
}

// scopeFlags are --namespace and --repository; neither is the registry.
type scopeFlags struct {
	namespace, repository string
}

func (s *scopeFlags) bind(cmd *cobra.Command, what string) {
	f := cmd.Flags()
	f.StringVar(&s.namespace, "namespace", "", what+" of namespace NS")
	f.StringVar(&s.repository, "repository", "", what+" of repository NS/REPO")
}

// scope returns the namespace and repository: a repository implies its
// namespace, and a namespace given with it must be that one.
func (s scopeFlags) scope() (ns, repo string, err error) {
	if s.repository == "" {
		return s.namespace, "", nil
	}
	n, rest := oci.SplitRepo(s.repository)
	if rest == "" {
		return "", "", fmt.Errorf("--repository %s: want NAMESPACE/REPOSITORY (a policy of a whole namespace takes --namespace)", s.repository)
	}
	if s.namespace != "" && s.namespace != n {
		return "", "", fmt.Errorf("--repository %s is not in --namespace %s", s.repository, s.namespace)
	}
	return n, s.repository, nil
}

// ruleFlags are the rule of set and preview: exactly one kind, and an
// optional tag pattern.
type ruleFlags struct {
	keepNewest, keepRecentlyPulled int
	pruneOlderThan, pruneNotPulled string
	immutable, notMatching         bool
	tagPattern                     string
}

func (r *ruleFlags) bind(cmd *cobra.Command) {
	f := cmd.Flags()
	f.IntVar(&r.keepNewest, "keep-newest", 0, "keep the N newest tags (by the start of their current lifetime), prune the rest")
	f.StringVar(&r.pruneOlderThan, "prune-older-than", "", "prune tags whose current lifetime started longer ago (30d, 12h)")
	f.StringVar(&r.pruneNotPulled, "prune-not-pulled", "", "prune tags not pulled for this long (a tag never pulled counts from its start)")
	f.IntVar(&r.keepRecentlyPulled, "keep-recently-pulled", 0, "keep the N most recently pulled tags, prune the rest")
	f.BoolVar(&r.immutable, "immutable", false, "make the tags immutable: never moved, deleted, expired or pruned (namespace or repository only)")
	f.StringVar(&r.tagPattern, "tag-pattern", "", "the rule sees only tags whose name matches this Go regular expression (RE2; anchor it: ^v[0-9])")
	f.BoolVar(&r.notMatching, "not-matching", false, "the rule sees the tags whose name does not match --tag-pattern")
}

// rule fills p's rule from the flags; given is false when no kind flag
// was given (a preview of a saved rule).
func (r ruleFlags) rule(cmd *cobra.Command, p *meta.TagPolicy) (given bool, err error) {
	f := cmd.Flags()
	var kinds []string
	for _, k := range []string{"keep-newest", "prune-older-than", "prune-not-pulled", "keep-recently-pulled", "immutable"} {
		if f.Changed(k) {
			kinds = append(kinds, "--"+k)
		}
	}
	if len(kinds) > 1 {
		return false, fmt.Errorf("a policy is one rule: give one of --keep-newest, --prune-older-than, --prune-not-pulled, --keep-recently-pulled, --immutable (got %s)", strings.Join(kinds, ", "))
	}
	if len(kinds) == 0 {
		if f.Changed("tag-pattern") || f.Changed("not-matching") {
			return false, fmt.Errorf("--tag-pattern and --not-matching narrow a rule: give its kind too (--keep-newest, --prune-older-than, ...)")
		}
		return false, nil
	}
	if r.notMatching && r.tagPattern == "" {
		return false, fmt.Errorf("--not-matching needs --tag-pattern")
	}
	p.TagPattern, p.PatternMatches = r.tagPattern, !r.notMatching
	switch kinds[0] {
	case "--keep-newest":
		p.Kind, p.Count = meta.PolicyKeepNewest, r.keepNewest
	case "--keep-recently-pulled":
		p.Kind, p.Count = meta.PolicyKeepRecentlyPulled, r.keepRecentlyPulled
	case "--prune-older-than", "--prune-not-pulled":
		p.Kind = meta.PolicyPruneOlderThan
		s := r.pruneOlderThan
		if kinds[0] == "--prune-not-pulled" {
			p.Kind, s = meta.PolicyPruneNotPulled, r.pruneNotPulled
		}
		d, err := duration.Parse(s)
		if err != nil {
			return false, fmt.Errorf("%s %s: %w", kinds[0], s, err)
		}
		p.Span = d
	case "--immutable":
		p.Kind = meta.PolicyImmutable
	}
	return true, nil
}

// ruleText says what a policy does, in words.
func ruleText(p api.Policy) string {
	var s string
	switch p.Kind {
	case meta.PolicyKeepNewest:
		s = fmt.Sprintf("keep the %d newest", deref(p.Count))
	case meta.PolicyKeepRecentlyPulled:
		s = fmt.Sprintf("keep the %d most recently pulled", deref(p.Count))
	case meta.PolicyPruneOlderThan:
		s = "prune older than " + p.Span
	case meta.PolicyPruneNotPulled:
		s = "prune not pulled for " + p.Span
	case meta.PolicyImmutable:
		s = "immutable"
	default:
		s = string(p.Kind)
	}
	switch {
	case p.TagPattern != "" && p.PatternMatches:
		s += " (tags matching " + p.TagPattern + ")"
	case p.TagPattern != "":
		s += " (tags not matching " + p.TagPattern + ")"
	}
	return s
}

func deref(n *int) int {
	if n == nil {
		return 0
	}
	return *n
}

func newPolicySetCommand(g *globals) *cobra.Command {
	var sc scopeFlags
	var rf ruleFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "set NAME [--namespace NS | --repository NS/REPO] RULE [--tag-pattern RE [--not-matching]]",
		Short: "Save a retention policy (create it, or replace the rule of that name)",
		Long: `set saves the policy NAME (lowercase letters, digits, ".", "_", "-") at its
scope with one rule:

  --keep-newest N            keep the N newest tags, prune the rest
  --prune-older-than SPAN    prune tags whose current lifetime started SPAN ago
  --prune-not-pulled SPAN    prune tags not pulled within SPAN
  --keep-recently-pulled N   keep the N most recently pulled tags
  --immutable                tags cannot be moved, deleted, expired or pruned

--tag-pattern narrows the rule to the tags it matches (--not-matching: the
others); counts are counted among those. Several policies may apply to a
repository: its own and its namespace's, or else the registry's; a tag is
pruned when any rule prunes it and nothing protects it (an immutable rule, or
an attachment whose image is stored). Pruned tags enter the time machine and
can be restored for the namespace's window. An immutable rule clears the
expiry of the tags it covers; only deleting the rule lifts it. Preview a rule
before saving it: berth policy preview takes the same flags.`,
		Example: `  # Keep the 10 newest tags of every repository of acme
  berth policy set keep-10 --namespace acme --keep-newest 10

  # Prune CI builds after 30 days in one repository
  berth policy set old-builds --repository acme/app --prune-older-than 30d --tag-pattern '^build-'

  # Releases are immutable
  berth policy set release --namespace acme --immutable --tag-pattern '^v[0-9]+\.[0-9]+\.[0-9]+$'

  # The registry's default, for namespaces without policies of their own
  berth policy set default --keep-newest 100 --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, repo, err := sc.scope()
			if err != nil {
				return err
			}
			p := meta.TagPolicy{Namespace: ns, Repository: repo, Name: args[0]}
			given, err := rf.rule(cmd, &p)
			if err != nil {
				return err
			}
			if !given {
				return fmt.Errorf("set needs a rule: one of --keep-newest, --prune-older-than, --prune-not-pulled, --keep-recently-pulled, --immutable")
			}
			svc, closeSvc, err := g.openServices(cmd)
			if err != nil {
				return err
			}
			defer closeSvc()
			saved, created, cleared, err := svc.Registry.SetPolicy(cmd.Context(), p)
			if err != nil {
				return fmt.Errorf("setting policy %s: %w", p.Ref(), err)
			}
			doc := api.PolicySaved{Policy: api.NewPolicy(saved), Created: created, ExpiriesCleared: cleared}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), doc)
			}
			state := "replaced"
			if created {
				state = "created"
			}
			rows := []string{
				fmt.Sprintf("policy\t%s (%s)", doc.Ref, state),
				fmt.Sprintf("rule\t%s", ruleText(doc.Policy)),
				fmt.Sprintf("created\t%s by %s", humanTime(&doc.CreatedAt), actorText(doc.CreatedBy)),
			}
			if doc.Kind == meta.PolicyImmutable {
				rows = append(rows, fmt.Sprintf("expiries cleared\t%d", cleared))
			}
			rows = append(rows, "evaluation\tscheduled now for every repository of the scope (the collector applies it)")
			return table(cmd.OutOrStdout(), rows...)
		},
	}
	sc.bind(cmd, "a policy")
	rf.bind(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the saved policy as JSON")
	return cmd
}

func newPolicyListCommand(g *globals) *cobra.Command {
	var sc scopeFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [--namespace NS | --repository NS/REPO]",
		Short: "List retention policies",
		Long: `list prints retention policies: every one without a flag; with --namespace,
the namespace's and its repositories'; with --repository, the repository's
and its namespace's. Both also list the registry's, which apply where a
namespace and its repositories have none.`,
		Example: `  berth policy list
  berth policy list --namespace acme
  berth policy list --repository acme/app --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, repo, err := sc.scope()
			if err != nil {
				return err
			}
			svc, closeSvc, err := g.openServices(cmd)
			if err != nil {
				return err
			}
			defer closeSvc()
			ps, err := svc.Registry.Policies(cmd.Context(), meta.PolicyFilter{Namespace: ns, Repository: repo, Registry: ns != ""})
			if err != nil {
				return fmt.Errorf("listing policies: %w", err)
			}
			doc := api.NewPolicies(ps)
			if asJSON {
				return printJSON(cmd.OutOrStdout(), doc)
			}
			if len(doc.Policies) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no policies")
				return nil
			}
			rows := []string{"POLICY\tRULE\tCREATED\tBY"}
			for _, p := range doc.Policies {
				rows = append(rows, fmt.Sprintf("%s\t%s\t%s\t%s", p.Ref, ruleText(p), humanTime(&p.CreatedAt), actorText(p.CreatedBy)))
			}
			return table(cmd.OutOrStdout(), rows...)
		},
	}
	sc.bind(cmd, "the policies")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the policies as JSON")
	return cmd
}

func newPolicyDeleteCommand(g *globals) *cobra.Command {
	var sc scopeFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "delete NAME [--namespace NS | --repository NS/REPO]",
		Short: "Delete a retention policy",
		Long: `delete removes the policy NAME of its scope (no scope flag: the registry's).
Tags it pruned stay in the time machine (restore them with berth tag restore);
deleting an immutable rule is what lifts immutability. Every repository of the
scope is evaluated again (the registry's default may now apply).`,
		Example: `  berth policy delete keep-10 --namespace acme
  berth policy delete release --repository acme/app --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, repo, err := sc.scope()
			if err != nil {
				return err
			}
			svc, closeSvc, err := g.openServices(cmd)
			if err != nil {
				return err
			}
			defer closeSvc()
			p, err := svc.Registry.DeletePolicy(cmd.Context(), ns, repo, args[0])
			if err != nil {
				return fmt.Errorf("deleting policy %s: %w", meta.TagPolicy{Namespace: ns, Repository: repo, Name: args[0]}.Ref(), err)
			}
			doc := api.NewPolicy(p)
			if asJSON {
				return printJSON(cmd.OutOrStdout(), doc)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted policy %s (%s)\n", doc.Ref, ruleText(doc))
			return nil
		},
	}
	sc.bind(cmd, "a policy")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the deleted policy as JSON")
	return cmd
}

func newPolicyPreviewCommand(g *globals) *cobra.Command {
	var sc scopeFlags
	var rf ruleFlags
	var name string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "preview [--name NAME] [--namespace NS | --repository NS/REPO] [RULE]",
		Short: "Show what a rule would prune now, and the bytes that frees",
		Long: `preview evaluates a rule as the collector would once it is saved, reading
one snapshot and changing nothing. RULE is given with the flags of
berth policy set; with --name it replaces the saved rule of that name
(an edit), and --name alone previews the saved rule. Each repository of the
scope is evaluated with every policy that would then apply to it, so tags
other rules prune are listed too, each with its rule.

It prints the tags that would be pruned now (repository, tag, digest, start of
its lifetime, last pull, rule), then a summary: the manifests only those tags
reach (an index's children and the referrers of each, such as signatures,
included) and the bytes of the blobs only those manifests use, in any
repository (a layer another image still uses frees nothing), freed once the
tags leave the time machine. A preview reads at most 100000 tags (10000
repositories) and says when it stopped there.`,
		Example: `  # What would "keep the 5 newest" prune in acme?
  berth policy preview --namespace acme --keep-newest 5

  # An edit of the saved policy keep-10
  berth policy preview --name keep-10 --namespace acme --keep-newest 3

  # The saved policy as it stands, for a script
  berth policy preview --name old-builds --repository acme/app --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, repo, err := sc.scope()
			if err != nil {
				return err
			}
			p := meta.TagPolicy{Namespace: ns, Repository: repo, Name: name}
			given, err := rf.rule(cmd, &p)
			if err != nil {
				return err
			}
			if !given && name == "" {
				return fmt.Errorf("preview needs a rule (--keep-newest, --prune-older-than, --prune-not-pulled, --keep-recently-pulled, --immutable) or --name of a saved one")
			}
			svc, closeSvc, err := g.openServices(cmd)
			if err != nil {
				return err
			}
			defer closeSvc()
			pv, err := svc.Registry.PreviewPolicy(cmd.Context(), p)
			if err != nil {
				return fmt.Errorf("previewing %s: %w", p.Ref(), err)
			}
			doc := api.NewPolicyPreview(pv)
			if asJSON {
				return printJSON(cmd.OutOrStdout(), doc)
			}
			return printPreview(cmd.OutOrStdout(), doc)
		},
	}
	sc.bind(cmd, "a rule")
	rf.bind(cmd)
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "the policy's name: alone, preview the saved policy; with a rule, preview it in place of the saved one")
	f.BoolVar(&asJSON, "json", false, "print the preview as JSON")
	return cmd
}

// printPreview prints the tags a preview would prune, then its summary.
func printPreview(w io.Writer, pv api.PolicyPreview) error {
	if len(pv.Tags) > 0 {
		rows := []string{"REPOSITORY\tTAG\tDIGEST\tSTART\tLAST PULL\tRULE"}
		for _, t := range pv.Tags {
			pull := "never"
			if t.LastPull != nil {
				pull = humanTime(t.LastPull)
			}
			rows = append(rows, fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", t.Repository, t.Tag, t.Digest, humanTime(&t.Start), pull, t.Rule))
		}
		if err := table(w, rows...); err != nil {
			return err
		}
	}
	this := 0
	repos := map[string]bool{}
	for _, t := range pv.Tags {
		repos[t.Repository] = true
		if t.ThisRule {
			this++
		}
	}
	examined := fmt.Sprintf("%d %s of %d %s examined", pv.TagsExamined, plural(pv.TagsExamined, "tag", "tags"),
		pv.Repositories, plural(pv.Repositories, "repository", "repositories"))
	if pv.Truncated {
		examined += fmt.Sprintf("; stopped at the preview's bound (%d tags, %d repositories): the rest of the scope was not examined",
			registry.MaxPreviewTags, registry.MaxPreviewRepositories)
	}
	if len(pv.Tags) == 0 {
		_, err := fmt.Fprintf(w, "%s: nothing would be pruned now (%s)\n", pv.Policy.Ref, examined)
		return err
	}
	_, err := fmt.Fprintf(w, "%s: %d %s of %d %s would be pruned now (%d by this rule); %d %s and %s of blobs freed once they leave the time machine (%s)\n",
		pv.Policy.Ref, len(pv.Tags), plural(len(pv.Tags), "tag", "tags"), len(repos), plural(len(repos), "repository", "repositories"), this,
		pv.ManifestsFreed, plural(pv.ManifestsFreed, "manifest", "manifests"), humanBytes(pv.BytesFreed), examined)
	return err
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
