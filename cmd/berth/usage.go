package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/berth/berth/internal/meta"
)

// newUsageCommand is "berth usage": what a scope holds (usage_view.go), and
// its verify subcommand.
func newUsageCommand(g *globals) *cobra.Command {
	var o usageViewOptions
	cmd := &cobra.Command{
		Use:   "usage [NAMESPACE[/REPOSITORY]]",
		Short: "Storage usage: what each namespace and repository holds",
		Long: `usage prints what the registry, a namespace or a repository holds, from the
usage counters kept in the same transactions as the rows they count
(docs/design/usage.md): the bytes of its manifests and of the distinct blobs
they reference, each blob once per scope. Without an argument it prints the
registry's total and its largest namespaces (--top), with what the others hold
together. A namespace's row shows the quota in force (its own, or the registry
default) and the share of it used.

--split also classifies a namespace's or a repository's bytes by reachability:
held by live tags, held only by the time machine (tags deleted or moved inside
the namespace's window, counted until collected; "berth tag forget" frees them
at once), untagged within the grace, and reclaimable now (the collector's next
run deletes those manifests, and their blobs a grace later). It reads the
scope in one snapshot, at a cost proportional to the scope; a scope of more
than 50,000 manifests is refused (split its repositories one at a time).

A name without "/" is a namespace (as for purge). The counters are exact;
"berth usage verify" recomputes them from the rows.`,
		Example: `  # The registry and its 20 largest namespaces
  berth usage

  # One namespace, with its quota, split by reachability
  berth usage acme --split

  # One repository, as the management API's JSON document
  berth usage acme/app --split --json

  # Check the counters against the rows
  berth usage verify`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runUsage(cmd, g, args, o) },
	}
	f := cmd.Flags()
	f.BoolVar(&o.split, "split", false, "classify the bytes by reachability (a namespace or a repository)")
	f.IntVar(&o.top, "top", 20, "how many of the largest namespaces to list (no argument)")
	f.BoolVar(&o.asJSON, "json", false, "print the management API's document")
	cmd.AddCommand(newUsageVerifyCommand(g))
	return cmd
}

// usageVerifyReport is what "berth usage verify --json" prints.
type usageVerifyReport struct {
	Namespaces  int              `json:"namespaces"`
	Differences []meta.UsageDiff `json:"differences"`
	Fixed       bool             `json:"fixed"`
}

// errUsageDiffers is the exit status of a verification that found a
// difference; the report said which.
var errUsageDiffers = errors.New("usage counters differ from the rows")

// usageVerifyPage is how many namespaces one listing reads.
const usageVerifyPage = 500

func newUsageVerifyCommand(g *globals) *cobra.Command {
	var fix, asJSON bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Recompute every usage counter from the rows and report differences",
		Long: `verify recomputes every usage counter from the rows — the edges of each
repository, namespace and blob, the bytes each repository, namespace and the
registry hold — and reports each counter that differs. It exits with status 1
when it found one.

It reads one snapshot per namespace and never locks anything, so it is safe
while "berth serve" runs. With --fix it rewrites the counters of each
namespace that differs in one transaction per namespace (locking that
namespace's usage row, so pushes into it wait for that transaction), then the
counters that span namespaces.`,
		Example: `  # Check the counters
  berth usage verify

  # Rewrite those that differ
  berth usage verify --fix`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			svc, closeSvc, err := g.openServices(cmd)
			if err != nil {
				return err
			}
			defer closeSvc()
			ctx, store := cmd.Context(), svc.Stores.Meta
			progress := newProgress(cmd.ErrOrStderr())
			rep := usageVerifyReport{Differences: []meta.UsageDiff{}, Fixed: fix}
			check := func(verify func(tx meta.Tx, fix bool) ([]meta.UsageDiff, error)) error {
				var diffs []meta.UsageDiff
				err := store.View(ctx, func(tx meta.Tx) (err error) {
					diffs, err = verify(tx, false)
					return err
				})
				if err != nil || len(diffs) == 0 || !fix {
					rep.Differences = append(rep.Differences, diffs...)
					return err
				}
				// What the fix found: the rows may have moved since the View.
				if err := store.Update(ctx, func(tx meta.Tx) (err error) {
					diffs, err = verify(tx, true)
					return err
				}); err != nil {
					return err
				}
				rep.Differences = append(rep.Differences, diffs...)
				return nil
			}
			for after := ""; ; {
				var nss []meta.NamespaceUsage
				if err := store.View(ctx, func(tx meta.Tx) (err error) {
					nss, err = tx.Namespaces(ctx, after, usageVerifyPage)
					return err
				}); err != nil {
					return fmt.Errorf("listing namespaces: %w", err)
				}
				for _, ns := range nss {
					if err := check(func(tx meta.Tx, fix bool) ([]meta.UsageDiff, error) {
						return tx.VerifyNamespaceUsage(ctx, ns.ID, fix)
					}); err != nil {
						return fmt.Errorf("verifying namespace %s: %w", ns.Name, err)
					}
					rep.Namespaces++
					progress.show("usage verify: %d namespaces checked, %d differences", rep.Namespaces, len(rep.Differences))
				}
				if len(nss) < usageVerifyPage {
					break
				}
				after = nss[len(nss)-1].Name
			}
			if err := check(func(tx meta.Tx, fix bool) ([]meta.UsageDiff, error) { return tx.VerifyRegistryUsage(ctx, fix) }); err != nil {
				return fmt.Errorf("verifying the registry's counters: %w", err)
			}
			progress.done()
			out := cmd.OutOrStdout()
			if asJSON {
				if err := printJSON(out, rep); err != nil {
					return err
				}
			} else {
				for _, d := range rep.Differences {
					fmt.Fprintf(out, "%s %s: counter %s, rows say %s\n", d.Counter, d.Key, usageText(d.Counter, d.Got), usageText(d.Counter, d.Want))
				}
				state := "no difference"
				switch {
				case len(rep.Differences) > 0 && fix:
					state = fmt.Sprintf("%d differences, fixed", len(rep.Differences))
				case len(rep.Differences) > 0:
					state = fmt.Sprintf("%d differences (berth usage verify --fix rewrites them)", len(rep.Differences))
				}
				if err := table(out,
					fmt.Sprintf("namespaces checked\t%d", rep.Namespaces),
					fmt.Sprintf("counters\t%s", state),
				); err != nil {
					return err
				}
			}
			if len(rep.Differences) > 0 && !fix {
				return reportedError{errUsageDiffers}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&fix, "fix", false, "rewrite the counters that differ")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

// usageText writes a counter's value: a count for the per-blob counters,
// bytes, manifests and blobs for a scope's usage.
func usageText(c meta.UsageCounter, u meta.Usage) string {
	switch c {
	case meta.CounterRepositoryBlob, meta.CounterNamespaceBlob, meta.CounterBlob:
		return fmt.Sprint(u.Bytes)
	}
	return fmt.Sprintf("%s (%d bytes) in %d manifests and %d blobs", humanBytes(u.Bytes), u.Bytes, u.Manifests, u.Blobs)
}
