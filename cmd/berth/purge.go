package main

import (
	"bufio"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth/berth/internal/config"
	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/oci"
	"github.com/berth/berth/internal/policy"
)

func newPurgeCommand(g *globals) *cobra.Command {
	var yes, asJSON bool
	cmd := &cobra.Command{
		Use:   "purge NAMESPACE[/REPOSITORY]",
		Short: "Delete a repository, or a whole namespace, and everything in it",
		Long: `purge deletes a repository (NAMESPACE/REPOSITORY) or a whole namespace with
all its repositories: every tag (the time machine included), manifest, link,
upload marker and upload session, then the repository rows. Blobs no other
repository links are collected on the way. From the first step on, the target
refuses pushes.

A purge is resumable: if it stops (Ctrl-C, a crash, a write that raced it) run
the same command again, or let the collector of a running "berth serve"
finish it. It reports success only when nothing of the target is left.

A purge does not start while an immutable rule covers a live tag of the
target: the refusal names the rule, which an administrator deletes first.

On a terminal it asks for confirmation unless --yes is given; without a
terminal --yes is required.`,
		Example: `  # Purge one repository, confirming interactively
  berth purge library/nginx

  # Purge a namespace from a script
  berth purge acme --yes --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := oci.ValidateRepoName(name); err != nil {
				return fmt.Errorf("purge: %w", err)
			}
			if !yes {
				if !isTerminal(cmd.InOrStdin()) {
					return fmt.Errorf("purge %s: refusing to purge without confirmation; pass --yes", name)
				}
				what := "repository"
				if !strings.Contains(name, "/") {
					what = "namespace (with every repository in it)"
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "Purge %s %s? Tags, manifests and the time machine are deleted for good.\nType %q to confirm: ", what, name, name)
				line, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if strings.TrimSpace(line) != name {
					return fmt.Errorf("purge %s: not confirmed; nothing was done", name)
				}
			}
			svc, closeSvc, err := g.openServices(cmd)
			if err != nil {
				return err
			}
			defer closeSvc()
			progress := newProgress(cmd.ErrOrStderr())
			s, err := svc.Collector.Purge(cmd.Context(), name, func(s gc.Summary) {
				progress.show("purge %s: %d objects deleted, %s freed", name, deletedCount(s), humanBytes(s.BytesFreed))
			})
			progress.done()
			if errors.Is(err, meta.ErrNotFound) {
				return fmt.Errorf("purge %s: no repository or namespace by that name", name)
			}
			if errors.Is(err, policy.ErrImmutable) {
				return err // nothing started: the refusal names the rule to delete first
			}
			out := cmd.OutOrStdout()
			if asJSON {
				if jerr := printJSON(out, s); jerr != nil {
					return jerr
				}
			} else if err == nil || deletedCount(s) > 0 {
				if perr := printGCSummary(out, s, false); perr != nil {
					return perr
				}
			}
			if err != nil {
				return fmt.Errorf("purge %s is incomplete: %w\nIt is resumable: run \"berth purge %s\" again, or let a running \"berth serve\" finish it", name, err, name)
			}
			if !asJSON {
				fmt.Fprintf(out, "purged %s: nothing of it is left\n", name)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&yes, "yes", false, "do not ask for confirmation")
	f.BoolVar(&asJSON, "json", false, "print the summary as JSON")
	config.BindFlags(f, &g.flags, config.GCFlags) // --gc-batch-size sizes its transactions
	return cmd
}
