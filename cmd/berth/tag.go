package main

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth/berth/internal/api"
	"github.com/berth/berth/internal/duration"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/oci"
	"github.com/berth/berth/internal/registry"
)

func newTagCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tag",
		Short: "Inspect and restore tag history, and set tag expiry",
		Long: `tag works on the time machine of tags: every lifetime of a tag (which manifest
it pointed at, from when to when) is kept for the namespace's retention window
after it ends, and can be restored within that window. A tag can also be given
an expiry, after which it ends (into the time machine) at the collector's next
expiry scan.

A tag an immutable rule covers cannot be moved by a restore nor given an
expiry: the command fails (exit status 1, code DENIED with --json), naming
the rule.

The subcommands work on the same --data/--db as a running server, while it
runs. They print tables, or with --json the documents of the management API
(/berth/v1).`,
		Example: `  berth tag history library/nginx:latest
  berth tag restore library/nginx:latest --at 2026-01-02T15:04:05Z
  berth tag expire library/nginx:pr-42 --in 3d
  berth tag forget library/nginx:pr-42 --yes`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newTagHistoryCommand(g), newTagRestoreCommand(g), newTagExpireCommand(g), newTagForgetCommand(g))
	return cmd
}

// splitRef splits REPO[:TAG]; the tag follows the last ':' after the last
// '/'.
func splitRef(ref string, needTag bool) (repo, tag string, err error) {
	slash := strings.LastIndex(ref, "/")
	if i := strings.LastIndex(ref, ":"); i > slash {
		repo, tag = ref[:i], ref[i+1:]
	} else {
		repo = ref
	}
	if err := oci.ValidateRepoName(repo); err != nil {
		return "", "", err
	}
	if tag == "" && needTag {
		return "", "", fmt.Errorf("%q names no tag: want REPOSITORY:TAG", ref)
	}
	if tag != "" {
		if err := oci.ValidateTag(tag); err != nil {
			return "", "", err
		}
	}
	return repo, tag, nil
}

// parseWhen reads an RFC 3339 time, or "-DURATION" for that long ago.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if ago, ok := strings.CutPrefix(s, "-"); ok {
		d, err := duration.Parse(ago)
		if err != nil {
			return time.Time{}, err
		}
		return now.Add(-d), nil
	}
	return api.ParseTime(s)
}

func newTagHistoryCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "history REPOSITORY[:TAG]",
		Short: "List every lifetime of a tag, or of every tag of a repository",
		Long: `history lists the lifetimes of a tag, newest first: the manifest it pointed
at, when that started and ended (or when it expires), who started it (BY), who
ended it and why (ENDED BY: deleted, moved, expired, withdrawn by a DELETE of
its manifest, subject_collected for a signature, attestation or SBOM tag whose
image the collector deleted, purged), and whether it is live, restorable (ended inside the
namespace's retention window) or gone. Without :TAG it lists the lifetimes of
every tag of the repository. Actors are user:NAME, robot:NS+NAME, anonymous,
collector (an expiry, a subject collected) or operator (a berth command on the database); "-" is
unknown (lifetimes recorded before berth recorded actors).`,
		Example: `  berth tag history library/nginx:latest
  berth tag history library/nginx --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			repo, tag, err := splitRef(args[0], false)
			if err != nil {
				return err
			}
			svc, closeSvc, err := g.openServices(cmd)
			if err != nil {
				return err
			}
			defer closeSvc()
			hist, err := svc.Registry.TagHistory(cmd.Context(), repo, tag)
			if err != nil {
				return err
			}
			h := api.NewTagHistory(repo, tag, hist)
			if asJSON {
				return printJSON(cmd.OutOrStdout(), h)
			}
			if len(h.Lifetimes) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "%s has no tag history\n", args[0])
				return nil
			}
			return printLifetimes(cmd.OutOrStdout(), h.Lifetimes)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the history as JSON")
	return cmd
}

func printLifetimes(w io.Writer, ls []api.TagLifetime) error {
	rows := []string{"TAG\tDIGEST\tSTART\tBY\tEND\tENDED BY\tSTATE"}
	for _, l := range ls {
		end := humanTime(l.End)
		state := "gone (outside the retention window)"
		switch {
		case l.Live && l.ExpiresAt != nil:
			end = humanTime(l.ExpiresAt)
			state = "live, expires"
		case l.Live:
			state = "live"
		case l.Restorable:
			state = "restorable until " + humanTime(l.RestorableUntil)
		case l.RestorableUntil != nil && l.RestorableUntil.After(time.Now()):
			// Inside the window, yet restore would fail: only a collector
			// that judged it outside a (since widened) window deletes it.
			state = "gone (its manifest was collected)"
		}
		if l.Hidden {
			state += " (hidden)"
		}
		endedBy := "-"
		if l.EndCause != "" {
			endedBy = actorText(l.EndedBy) + " (" + string(l.EndCause) + ")"
		}
		rows = append(rows, fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s", l.Tag, l.Digest, humanTime(&l.Start), actorText(l.StartedBy), end, endedBy, state))
	}
	return table(w, rows...)
}

// actorText prints an actor, "-" when unknown.
func actorText(a meta.Actor) string {
	if a == "" {
		return "-"
	}
	return string(a)
}

func newTagRestoreCommand(g *globals) *cobra.Command {
	var to, at string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "restore REPOSITORY:TAG (--to DIGEST | --at TIME)",
		Short: "Point a tag back at a manifest it pointed at before",
		Long: `restore brings back a past lifetime of a tag as a new live lifetime (without
expiry): the newest one that pointed at --to DIGEST, or the one live at
--at TIME (RFC 3339, or -DURATION for that long ago, e.g. -2h). A manifest
deleted by digest comes back with the tag (and the children of an index with
it). It is refused when that lifetime ended longer ago than the namespace's
retention window; the refusal says why and until when it was restorable. A
restore onto the manifest the tag already points at changes nothing, and says
so.`,
		Example: `  berth tag restore library/nginx:latest --to sha256:0123…
  berth tag restore library/nginx:latest --at 2026-01-02T15:04:05Z
  berth tag restore library/nginx:latest --at -3h`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			repo, tag, err := splitRef(args[0], true)
			if err != nil {
				return err
			}
			if (to == "") == (at == "") {
				return fmt.Errorf("restore needs exactly one of --to DIGEST or --at TIME")
			}
			svc, closeSvc, err := g.openServices(cmd)
			if err != nil {
				return err
			}
			defer closeSvc()
			target := registry.RestoreTarget{Digest: to}
			if at != "" {
				t, err := parseWhen(at, svc.Registry.Now())
				if err != nil {
					return err
				}
				target.At = &t
			}
			res, err := svc.Registry.RestoreTag(cmd.Context(), repo, tag, target)
			if err != nil {
				return fmt.Errorf("restore %s: %w", args[0], err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), api.NewTagRestore(res))
			}
			if !res.Changed {
				fmt.Fprintf(cmd.OutOrStdout(), "nothing changed: %s:%s already points at %s\n", repo, tag, res.Manifest)
				return printLifetimes(cmd.OutOrStdout(), []api.TagLifetime{api.NewTagLifetime(res.Lifetime)})
			}
			return printTag(cmd, repo, res.Lifetime, false, "restored")
		},
	}
	f := cmd.Flags()
	f.StringVar(&to, "to", "", "restore the newest lifetime that pointed at this digest")
	f.StringVar(&at, "at", "", "restore the lifetime live at this time (RFC 3339, or -DURATION ago)")
	f.BoolVar(&asJSON, "json", false, `print the live lifetime as JSON, with "changed": false when the tag already pointed there`)
	return cmd
}

// printTag prints one lifetime after a change.
func printTag(cmd *cobra.Command, repo string, lt registry.Lifetime, asJSON bool, verb string) error {
	l := api.NewTagLifetime(lt)
	if asJSON {
		return printJSON(cmd.OutOrStdout(), l)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s %s:%s -> %s\n", verb, repo, l.Tag, l.Digest)
	return printLifetimes(cmd.OutOrStdout(), []api.TagLifetime{l})
}

func newTagExpireCommand(g *globals) *cobra.Command {
	var in, at string
	var never, asJSON bool
	cmd := &cobra.Command{
		Use:   "expire REPOSITORY:TAG (--in DURATION | --at TIME | --never)",
		Short: "Set or clear the expiry of a live tag",
		Long: `expire sets when a live tag ends: --in DURATION from now (Go syntax or d/w
units: 90m, 2h, 3d, 1w), --at TIME (RFC 3339, not in the past), or --never to clear it. When the time
passes the tag no longer resolves, the collector's expiry scan records its
end, and it stays restorable for the namespace's retention window from the
expiry on, like a deleted tag. A past --at is refused: to end a tag now,
delete it (or --in 0s).`,
		Example: `  berth tag expire library/nginx:pr-42 --in 3d
  berth tag expire library/nginx:pr-42 --at 2026-02-01T00:00:00Z
  berth tag expire library/nginx:pr-42 --never`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			repo, tag, err := splitRef(args[0], true)
			if err != nil {
				return err
			}
			set := 0
			for _, b := range []bool{in != "", at != "", never} {
				if b {
					set++
				}
			}
			if set != 1 {
				return fmt.Errorf("expire needs exactly one of --in, --at or --never")
			}
			svc, closeSvc, err := g.openServices(cmd)
			if err != nil {
				return err
			}
			defer closeSvc()
			var e registry.Expiry
			switch {
			case in != "":
				d, err := duration.Parse(in)
				if err != nil {
					return err
				}
				e.In = &d
			case at != "":
				t, err := api.ParseTime(at)
				if err != nil {
					return err
				}
				e.At = &t
			}
			t, err := svc.Registry.SetTagExpiry(cmd.Context(), repo, tag, e)
			if err != nil {
				return fmt.Errorf("expire %s: %w", args[0], err)
			}
			verb := "expiry set on"
			if never {
				verb = "expiry cleared on"
			}
			return printTag(cmd, repo, t, asJSON, verb)
		},
	}
	f := cmd.Flags()
	f.StringVar(&in, "in", "", "expire this long from now (90m, 2h, 3d, 1w)")
	f.StringVar(&at, "at", "", "expire at this time (RFC 3339)")
	f.BoolVar(&never, "never", false, "clear the expiry")
	f.BoolVar(&asJSON, "json", false, "print the tag's lifetime as JSON")
	return cmd
}

func newTagForgetCommand(g *globals) *cobra.Command {
	var before string
	var yes, asJSON bool
	cmd := &cobra.Command{
		Use:   "forget REPOSITORY:TAG [--before TIME]",
		Short: "Delete the ended lifetimes of a tag for good, out of the time machine",
		Long: `forget deletes the ended lifetimes of a tag permanently (those that ended
before --before TIME, RFC 3339 or -DURATION for that long ago, when given): they
leave the tag's history and can no longer be restored. The live lifetime, if
any, stays. The manifests they pointed at are reviewed at once: the collector
deletes them at its next run, and their blobs a grace later, unless something
else keeps them (a live tag, another tag's lifetime inside the window, a
parent index). This is how an administrator frees at once the bytes the time
machine holds, which count towards a namespace's usage until collected.

Immutable rules do not apply: they govern live tags, and forget never touches
one. On a terminal it asks for confirmation unless --yes is given; without a
terminal --yes is required.`,
		Example: `  # Free what the old lifetimes of a CI tag keep
  berth tag forget acme/app:pr-42 --yes

  # Forget only what ended more than a day ago
  berth tag forget acme/app:latest --before -1d --yes --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			repo, tag, err := splitRef(args[0], true)
			if err != nil {
				return err
			}
			ref := repo + ":" + tag
			if !yes {
				if !isTerminal(cmd.InOrStdin()) {
					return fmt.Errorf("forget %s: refusing to delete history without confirmation; pass --yes", ref)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "Forget the ended lifetimes of %s? They can no longer be restored.\nType %q to confirm: ", ref, ref)
				line, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if strings.TrimSpace(line) != ref {
					return fmt.Errorf("forget %s: not confirmed; nothing was done", ref)
				}
			}
			svc, closeSvc, err := g.openServices(cmd)
			if err != nil {
				return err
			}
			defer closeSvc()
			var at *time.Time
			if before != "" {
				t, err := parseWhen(before, svc.Registry.Now())
				if err != nil {
					return err
				}
				at = &t
			}
			f, err := svc.Registry.ForgetTag(cmd.Context(), repo, tag, at)
			if err != nil {
				return fmt.Errorf("forget %s: %w", ref, err)
			}
			doc := api.NewTagForgotten(f)
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, doc)
			}
			if doc.Forgotten == 0 {
				fmt.Fprintf(out, "nothing to forget: %s has no ended lifetime", ref)
				if at != nil {
					fmt.Fprintf(out, " that ended before %s", humanTime(at))
				}
				fmt.Fprintln(out)
				return nil
			}
			fmt.Fprintf(out, "forgot %d ended %s of %s; the collector reviews the manifests they kept at its next run:\n",
				doc.Forgotten, plural(doc.Forgotten, "lifetime", "lifetimes"), ref)
			for _, d := range doc.Manifests {
				fmt.Fprintf(out, "  %s\n", d)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&before, "before", "", "forget only the lifetimes that ended before this time (RFC 3339, or -DURATION ago)")
	f.BoolVar(&yes, "yes", false, "do not ask for confirmation")
	f.BoolVar(&asJSON, "json", false, "print what was forgotten as JSON")
	return cmd
}
