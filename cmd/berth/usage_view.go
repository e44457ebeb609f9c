package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth/berth/internal/api"
	"github.com/berth/berth/internal/oci"
)

// usageViewOptions are the flags of "berth usage".
type usageViewOptions struct {
	split, asJSON bool
	top           int
}

// runUsage prints what the registry (no argument), a namespace or a
// repository holds.
func runUsage(cmd *cobra.Command, g *globals, args []string, o usageViewOptions) error {
	var ns, repo string
	if len(args) == 1 {
		if err := oci.ValidateRepoName(args[0]); err != nil {
			return err
		}
		if strings.Contains(args[0], "/") {
			repo = args[0]
		} else {
			ns = args[0]
		}
	}
	if o.split && len(args) == 0 {
		return fmt.Errorf("--split classifies a namespace or a repository: name one")
	}
	if o.top < 0 {
		return fmt.Errorf("--top %d: want 0 or more namespaces", o.top)
	}
	svc, closeSvc, err := g.openServices(cmd)
	if err != nil {
		return err
	}
	defer closeSvc()
	out := cmd.OutOrStdout()
	if len(args) == 0 {
		ov, err := svc.Registry.UsageOverview(cmd.Context(), o.top)
		if err != nil {
			return err
		}
		doc := api.NewUsageOverview(ov)
		if o.asJSON {
			return printJSON(out, doc)
		}
		rows := []api.Usage{doc.Registry}
		rows = append(rows, doc.Namespaces...)
		if doc.Others.Bytes != 0 || doc.Others.Manifests != 0 {
			rows = append(rows, doc.Others)
		}
		return printUsage(out, rows)
	}
	u, err := svc.Registry.Usage(cmd.Context(), ns, repo, o.split)
	if err != nil {
		return err
	}
	scope := "namespace"
	if repo != "" {
		scope = "repository"
	}
	doc := api.NewUsage(scope, u)
	if o.asJSON {
		return printJSON(out, doc)
	}
	if err := printUsage(out, []api.Usage{doc}); err != nil {
		return err
	}
	if doc.Split == nil {
		return nil
	}
	fmt.Fprintln(out)
	return printSplit(out, *doc.Split)
}

// printUsage writes one row per scope: its size for people and in bytes,
// its manifests and blobs, and the quota in force with the share used.
func printUsage(w io.Writer, us []api.Usage) error {
	rows := []string{"SCOPE\tSIZE\tBYTES\tMANIFESTS\tBLOBS\tQUOTA\tUSED"}
	for _, u := range us {
		name := u.Name
		if u.Scope == "registry" || u.Scope == "others" {
			name = "(" + u.Scope + ")"
		}
		quota, used := "-", "-"
		if q := u.Quota; q != nil {
			quota = q.Limit
			if q.WarnPercent != nil {
				quota += fmt.Sprintf(", warn at %d%%", *q.WarnPercent)
			}
			if q.Default {
				quota += " (default)"
			}
			used = fmt.Sprintf("%.1f%%", q.UsedPercent)
		}
		rows = append(rows, fmt.Sprintf("%s\t%s\t%d\t%d\t%d\t%s\t%s", name, u.Size, u.Bytes, u.Manifests, u.Blobs, quota, used))
	}
	return table(w, rows...)
}

// printSplit writes a split, one row per class.
func printSplit(w io.Writer, s api.UsageSplit) error {
	rows := []string{"HELD BY\tSIZE\tBYTES\tMANIFESTS\tBLOBS"}
	for _, c := range []struct {
		name string
		h    api.Held
	}{
		{"live tags", s.Live},
		{"the time machine only", s.TimeMachine},
		{"untagged, within the grace", s.Untagged},
		{"nothing (reclaimable now)", s.Reclaimable},
	} {
		rows = append(rows, fmt.Sprintf("%s\t%s\t%d\t%d\t%d", c.name, c.h.Size, c.h.Bytes, c.h.Manifests, c.h.Blobs))
	}
	return table(w, rows...)
}
