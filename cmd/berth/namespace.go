package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth/berth/internal/api"
)

func newNamespaceCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "namespace",
		Short: "Show and set per-namespace settings",
		Long: `namespace works on the settings a namespace (the first component of a
repository name) holds: today its time-machine window, how long removed tags
stay restorable.`,
		Example: `  berth namespace retention acme
  berth namespace retention acme 30d`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newRetentionCommand(g))
	return cmd
}

func newRetentionCommand(g *globals) *cobra.Command {
	var toDefault, asJSON bool
	cmd := &cobra.Command{
		Use:   "retention NAMESPACE [DURATION | --default]",
		Short: "Show or set a namespace's time-machine window",
		Long: `retention shows how long removed tags of a namespace stay restorable, or sets
it: DURATION in Go syntax or with d/w units (72h, 30d, 2w; 0 disables the
time machine), or --default to follow the server's --tag-retention again.
Reviews scheduled under the old window are re-checked against the new one.`,
		Example: `  # Show
  berth namespace retention acme

  # Keep removed tags of acme restorable for 30 days
  berth namespace retention acme 30d

  # Back to the server default
  berth namespace retention acme --default --json`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns := args[0]
			if toDefault && len(args) == 2 {
				return fmt.Errorf("give either DURATION or --default, not both")
			}
			var ret *time.Duration
			if len(args) == 2 {
				d, err := api.ParseDuration(args[1])
				if err != nil {
					return err
				}
				ret = &d
			}
			svc, closeSvc, err := g.openServices(cmd)
			if err != nil {
				return err
			}
			defer closeSvc()
			if ret != nil || toDefault {
				if _, err := svc.Registry.SetNamespaceRetention(cmd.Context(), ns, ret); err != nil {
					return fmt.Errorf("setting retention of %s: %w", ns, err)
				}
			}
			r, err := svc.Registry.NamespaceRetention(cmd.Context(), ns)
			if err != nil {
				return fmt.Errorf("retention of %s: %w", ns, err)
			}
			doc := api.NewNamespaceRetention(r)
			if asJSON {
				return printJSON(cmd.OutOrStdout(), doc)
			}
			src := "server default"
			if doc.Retention != nil {
				src = "set on the namespace"
			}
			return table(cmd.OutOrStdout(),
				fmt.Sprintf("namespace\t%s", ns),
				fmt.Sprintf("retention\t%s (%s)", r.Effective, src),
			)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&toDefault, "default", false, "follow the server's --tag-retention again")
	f.BoolVar(&asJSON, "json", false, "print the retention as JSON")
	return cmd
}
