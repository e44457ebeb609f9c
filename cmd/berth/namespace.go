package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth/berth/internal/api"
	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/duration"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/registry"
)

func newNamespaceCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "namespace",
		Short: "Create namespaces, show and set their settings",
		Long: `namespace works on namespaces (the first component of a repository name) and
the settings they hold: today the time-machine window, how long removed tags
stay restorable, and whether anonymous clients may pull from it (visibility).
A namespace exists once something is pushed to it or an operator creates it
with "berth namespace create".`,
		Example: `  berth namespace create acme --retention 30d
  berth namespace retention acme
  berth namespace retention acme 7d
  berth namespace visibility acme public`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newNamespaceCreateCommand(g), newRetentionCommand(g), newVisibilityCommand(g))
	return cmd
}

func newNamespaceCreateCommand(g *globals) *cobra.Command {
	var retention string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "create NAMESPACE [--retention DURATION]",
		Short: "Create a namespace before anything is pushed to it",
		Long: `create makes an empty namespace, so that its settings can be given before
its first push. --retention sets its time-machine window (Go syntax or d/w
units: 72h, 30d, 2w; 0 disables it); without it the namespace follows the
server's --tag-retention. Creating a namespace that exists is an error and
changes nothing (use "berth namespace retention" to change its window).`,
		Example: `  # A namespace whose removed tags stay restorable for 30 days
  berth namespace create acme --retention 30d

  # Following the server default, for a script
  berth namespace create team-b --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns := args[0]
			var ret *time.Duration
			if cmd.Flags().Changed("retention") {
				d, err := duration.Parse(retention)
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
			r, created, err := svc.Registry.CreateNamespace(cmd.Context(), ns, ret)
			if err != nil {
				return fmt.Errorf("creating namespace %s: %w", ns, err)
			}
			if !created {
				return fmt.Errorf("namespace %s already exists (retention %s); change its window with: berth namespace retention %s DURATION", ns, duration.Format(r.Effective), ns)
			}
			return printRetention(cmd.OutOrStdout(), r, asJSON)
		},
	}
	f := cmd.Flags()
	f.StringVar(&retention, "retention", "", "time-machine window of the namespace (default: the server's --tag-retention)")
	f.BoolVar(&asJSON, "json", false, "print the namespace as JSON")
	return cmd
}

// printRetention prints a namespace's window as a table or as JSON.
func printRetention(w io.Writer, r registry.Retention, asJSON bool) error {
	doc := api.NewNamespaceRetention(r)
	if asJSON {
		return printJSON(w, doc)
	}
	src := "server default"
	if doc.Retention != nil {
		src = "set on the namespace"
	}
	return table(w,
		fmt.Sprintf("namespace\t%s", r.Namespace),
		fmt.Sprintf("retention\t%s (%s)", doc.Effective, src),
	)
}

func newRetentionCommand(g *globals) *cobra.Command {
	var toDefault, asJSON bool
	cmd := &cobra.Command{
		Use:   "retention NAMESPACE [DURATION | --default]",
		Short: "Show or set a namespace's time-machine window",
		Long: `retention shows how long removed tags of a namespace stay restorable, or sets
it: DURATION in Go syntax or with d/w units (72h, 30d, 2w; 0 disables the
time machine), or --default to follow the server's --tag-retention again.
Reviews scheduled under the old window are re-checked against the new one.
The namespace must exist: a typo never creates one ("berth namespace create"
does).`,
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
				d, err := duration.Parse(args[1])
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
					return namespaceError(ns, args, err)
				}
			}
			r, err := svc.Registry.NamespaceRetention(cmd.Context(), ns)
			if err != nil {
				return namespaceError(ns, args, err)
			}
			return printRetention(cmd.OutOrStdout(), r, asJSON)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&toDefault, "default", false, "follow the server's --tag-retention again")
	f.BoolVar(&asJSON, "json", false, "print the retention as JSON")
	return cmd
}

// namespaceError says what to do when the namespace of a retention command
// does not exist: create it, with the window the operator meant to set.
func namespaceError(ns string, args []string, err error) error {
	if !errors.Is(err, registry.ErrNamespaceUnknown) {
		return fmt.Errorf("retention of %s: %w", ns, err)
	}
	hint := "berth namespace create " + ns
	if len(args) == 2 {
		hint += " --retention " + args[1]
	}
	return fmt.Errorf("namespace %s does not exist (nothing was pushed to it and no operator created it); create it with: %s", ns, hint)
}

func newVisibilityCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "visibility NAMESPACE [public|private]",
		Short: "Show or set whether anyone may pull from a namespace",
		Long: `visibility shows whether a namespace is public, or sets it: anyone, anonymous
clients included, may pull from a public namespace (read); a private one
(the default) needs a grant. Pushing always needs one. Making a namespace
private stops anonymous pulls within a token lifetime (auth.token.ttl).`,
		Example: `  # Let anyone pull library/*
  berth namespace visibility library public

  # Show
  berth namespace visibility library --json`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns := args[0]
			if err := auth.ValidateUserName(ns); err != nil {
				return fmt.Errorf("namespace %q: want a namespace name, such as acme", ns)
			}
			a, closeA, err := g.openAccounts(cmd)
			if err != nil {
				return err
			}
			defer closeA()
			ctx := cmd.Context()
			if len(args) == 2 {
				var public bool
				switch args[1] {
				case "public":
					public = true
				case "private":
				default:
					return fmt.Errorf("visibility %q: want public or private", args[1])
				}
				if err := a.Auth.SetVisibility(ctx, ns, public); err != nil {
					return fmt.Errorf("setting the visibility of %s: %w (create it with: berth namespace create %s)", ns, err, ns)
				}
			}
			var n meta.Namespace
			err = a.Stores.Meta.View(ctx, func(tx meta.Tx) error {
				var err error
				n, err = tx.Namespace(ctx, ns, meta.LockNone)
				return err
			})
			if errors.Is(err, meta.ErrNotFound) {
				return fmt.Errorf("namespace %s does not exist; create it with: berth namespace create %s", ns, ns)
			}
			if err != nil {
				return fmt.Errorf("reading namespace %s: %w", ns, err)
			}
			doc := api.Visibility{Namespace: ns, Public: n.Public}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), doc)
			}
			vis := "private (pulling needs a grant)"
			if doc.Public {
				vis = "public (anyone may pull)"
			}
			return table(cmd.OutOrStdout(),
				fmt.Sprintf("namespace\t%s", ns),
				fmt.Sprintf("visibility\t%s", vis),
			)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the visibility as JSON")
	return cmd
}
