package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth/berth/internal/api"
	"github.com/berth/berth/internal/bytesize"
)

func newQuotaCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "quota",
		Short: "Set, list and delete namespace quotas",
		Long: `quota caps what a namespace may hold (docs/design/usage.md, "Quotas"). A push
whose manifest would take its namespace past the limit is refused with DENIED,
naming the namespace, what it holds, what the push adds and the limit; exactly
at the limit is allowed. A warning threshold (--warn, a percentage of the
limit) logs a line and emits quota.warning once per crossing upwards. The
registry default (--registry-default) applies to every namespace without a
quota of its own.

What a namespace holds counts each blob once, however many of its
repositories hold it, and includes what the time machine keeps (tags deleted
or moved inside the namespace's window) until the collector deletes it:
"berth tag forget" frees those bytes at once. A quota set below what the
namespace already holds deletes nothing; it refuses the pushes that would add
more.

A quota may be set on a namespace before anything is pushed to it. The
subcommands work on the same --data/--db as a running server, while it runs,
and act as "operator".`,
		Example: `  berth quota set acme 50GiB --warn 80%
  berth quota set --registry-default 10GiB
  berth quota list
  berth quota delete acme`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newQuotaSetCommand(g), newQuotaListCommand(g), newQuotaDeleteCommand(g))
	return cmd
}

// quotaTarget is the namespace a quota command names: its one argument, or
// "" with --registry-default (and no argument).
func quotaTarget(args []string, registryDefault bool, want int) (string, []string, error) {
	switch {
	case registryDefault && len(args) == want-1:
		return "", args, nil
	case !registryDefault && len(args) == want:
		return args[0], args[1:], nil
	case registryDefault:
		return "", nil, fmt.Errorf("--registry-default names the registry: give no namespace")
	}
	return "", nil, fmt.Errorf("name a namespace, or give --registry-default")
}

// parsePercent reads a warning threshold: "80%" or "80".
func parsePercent(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(s), "%"))
	if err != nil {
		return 0, fmt.Errorf("--warn %q: want a percentage of the limit, such as 80%%", s)
	}
	return n, nil
}

func newQuotaSetCommand(g *globals) *cobra.Command {
	var warn string
	var registryDefault, asJSON bool
	cmd := &cobra.Command{
		Use:   "set (NAMESPACE | --registry-default) LIMIT [--warn PERCENT]",
		Short: "Set the quota of a namespace, or the registry default",
		Long: `set gives a namespace (or, with --registry-default, every namespace without a
quota of its own) a limit, in bytes or with a binary unit (B, KiB, MiB, GiB,
TiB, PiB: 50GiB, 2TiB), replacing the quota it had. --warn sets a warning
threshold as a percentage of the limit (80%); without it there is none. The
next push is checked against it.`,
		Example: `  berth quota set acme 50GiB --warn 80%
  berth quota set --registry-default 10GiB
  berth quota set acme 1TiB --json`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, rest, err := quotaTarget(args, registryDefault, 2)
			if err != nil {
				return err
			}
			limit, err := bytesize.Parse(rest[0])
			if err != nil {
				return err
			}
			var pct *int
			if warn != "" {
				n, err := parsePercent(warn)
				if err != nil {
					return err
				}
				pct = &n
			}
			svc, closeSvc, err := g.openServices(cmd)
			if err != nil {
				return err
			}
			defer closeSvc()
			q, err := svc.Registry.SetQuota(cmd.Context(), ns, limit, pct)
			if err != nil {
				return err
			}
			doc := api.NewQuota(q)
			if asJSON {
				return printJSON(cmd.OutOrStdout(), doc)
			}
			return printQuotas(cmd.OutOrStdout(), []api.Quota{doc})
		},
	}
	f := cmd.Flags()
	f.StringVar(&warn, "warn", "", "warn when the namespace passes this percentage of the limit (80%)")
	f.BoolVar(&registryDefault, "registry-default", false, "set the default of namespaces without a quota of their own")
	f.BoolVar(&asJSON, "json", false, "print the quota as JSON")
	return cmd
}

func newQuotaListCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List every quota, with what each namespace holds",
		Long: `list prints every quota, the registry default first, with what each
namespace holds and the share of its limit that is.`,
		Example: `  berth quota list
  berth quota list --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			svc, closeSvc, err := g.openServices(cmd)
			if err != nil {
				return err
			}
			defer closeSvc()
			qs, err := svc.Registry.Quotas(cmd.Context())
			if err != nil {
				return err
			}
			doc := api.Quotas{Quotas: []api.Quota{}}
			for _, q := range qs {
				doc.Quotas = append(doc.Quotas, api.NewQuota(q))
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), doc)
			}
			if len(doc.Quotas) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no quota is set")
				return nil
			}
			return printQuotas(cmd.OutOrStdout(), doc.Quotas)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the quotas as JSON")
	return cmd
}

func newQuotaDeleteCommand(g *globals) *cobra.Command {
	var registryDefault bool
	cmd := &cobra.Command{
		Use:   "delete (NAMESPACE | --registry-default)",
		Short: "Delete the quota of a namespace, or the registry default",
		Long: `delete removes a namespace's own quota: the registry default, if any, applies
to it from the next push. With --registry-default it removes the default.`,
		Example: `  berth quota delete acme
  berth quota delete --registry-default`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, _, err := quotaTarget(args, registryDefault, 1)
			if err != nil {
				return err
			}
			svc, closeSvc, err := g.openServices(cmd)
			if err != nil {
				return err
			}
			defer closeSvc()
			if err := svc.Registry.DeleteQuota(cmd.Context(), ns); err != nil {
				return err
			}
			if ns == "" {
				fmt.Fprintln(cmd.OutOrStdout(), "deleted the registry default quota")
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "deleted the quota of namespace %s\n", ns)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&registryDefault, "registry-default", false, "delete the default of namespaces without a quota of their own")
	return cmd
}

// printQuotas writes one row per quota.
func printQuotas(w io.Writer, qs []api.Quota) error {
	rows := []string{"NAMESPACE\tLIMIT\tLIMIT BYTES\tWARN AT\tUSED\tUSED %"}
	for _, q := range qs {
		name, warn, used, pct := q.Namespace, "-", humanBytes(q.UsedBytes), fmt.Sprintf("%.1f%%", q.UsedPercent)
		if q.Namespace == "" {
			name, used, pct = "(registry default)", "-", "-"
		}
		if q.WarnPercent != nil {
			warn = fmt.Sprintf("%d%%", *q.WarnPercent)
		}
		rows = append(rows, fmt.Sprintf("%s\t%s\t%d\t%s\t%s\t%s", name, q.Limit, q.LimitBytes, warn, used, pct))
	}
	return table(w, rows...)
}
