package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth/berth/internal/api"
	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/duration"
	"github.com/berth/berth/internal/meta"
)

func newRobotCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "robot",
		Short: "Add, list and delete robot accounts of a namespace",
		Long: `robot manages robot accounts: credentials for CI and other machines, named
NAMESPACE+NAME. A robot belongs to its namespace and none of its grants reach
outside it. Its secret is generated, shown once when it is added, and stored
hashed: keep it then, or delete the robot and add a new one. A robot may
expire; after that it no longer authenticates.

The subcommands work on the same --data/--db as a running server, while it
runs. Changes are recorded as done by "operator".`,
		Example: `  berth robot add acme+ci --role write --repo acme/app --expires 90d
  berth robot list acme
  berth robot delete acme+ci`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newRobotAddCommand(g), newRobotListCommand(g), newRobotDeleteCommand(g))
	return cmd
}

func newRobotAddCommand(g *globals) *cobra.Command {
	var role, repo, expires string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "add NAMESPACE+NAME --role read|write|admin [--repo NAMESPACE/REPO] [--expires DURATION]",
		Short: "Create a robot and print its secret, once",
		Long: `add creates the robot NAMESPACE+NAME with --role on its namespace, or on one
repository of it with --repo, and prints its secret. The secret is shown this
once: berth stores only its hash. --expires (Go syntax or d/w units: 90d, 12w)
makes the robot stop authenticating after that long. The namespace must exist.
More grants can be given with "berth grant", inside the namespace only.`,
		Example: `  # A CI robot that pushes acme/app for 90 days
  berth robot add acme+ci --role write --repo acme/app --expires 90d

  # A puller for the whole namespace, its secret in JSON for a script
  berth robot add acme+deploy --role read --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if _, _, err := auth.SplitRobotName(name); err != nil {
				return err
			}
			r, err := auth.ParseRole(role)
			if err != nil {
				return err
			}
			var expiresAt *time.Time
			if expires != "" {
				d, err := duration.Parse(expires)
				if err != nil {
					return fmt.Errorf("--expires: %w", err)
				}
				if d <= 0 {
					return fmt.Errorf("--expires %s: want a positive duration such as 90d", expires)
				}
				at := time.Now().Add(d).UTC()
				expiresAt = &at
			}
			a, closeA, err := g.openAccounts(cmd)
			if err != nil {
				return err
			}
			defer closeA()
			ctx := cmd.Context()
			robot, err := a.Auth.AddRobot(ctx, name, r, repo, expiresAt, meta.ActorOperator)
			if err != nil {
				return fmt.Errorf("adding robot %s: %w", name, err)
			}
			acc, err := a.Auth.Account(ctx, name)
			if err != nil {
				return err
			}
			gs, err := a.Auth.AccountGrants(ctx, name)
			if err != nil {
				return err
			}
			doc := api.RobotCreated{Account: api.NewAccount(acc, gs), Secret: robot.Secret}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), doc)
			}
			w := cmd.OutOrStdout()
			if err := table(w,
				fmt.Sprintf("robot\t%s", doc.Name),
				fmt.Sprintf("role\t%s", grantsText(doc.Grants)),
				fmt.Sprintf("expires\t%s", expiryText(doc.ExpiresAt)),
				fmt.Sprintf("secret\t%s", doc.Secret),
			); err != nil {
				return err
			}
			fmt.Fprintf(w, "\nKeep the secret now: berth stores only its hash and cannot show it again.\nLog in with: docker login -u '%s' --password-stdin REGISTRY\n", doc.Name)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&role, "role", "", "the robot's role: read, write or admin (required)")
	f.StringVar(&repo, "repo", "", "grant the role on this repository of the namespace only (NAMESPACE/REPO)")
	f.StringVar(&expires, "expires", "", "stop authenticating after this long (e.g. 90d; default never)")
	f.BoolVar(&asJSON, "json", false, "print the robot and its secret as JSON")
	_ = cmd.MarkFlagRequired("role")
	return cmd
}

func newRobotListCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [NAMESPACE]",
		Short: "List robots, with their grants",
		Long: `list prints the robots of NAMESPACE, or of every namespace: their grants,
expiry, and when and by whom they were created. Secrets are never shown again.`,
		Example: `  berth robot list acme
  berth robot list --json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns := ""
			if len(args) == 1 {
				ns = args[0]
				if err := auth.ValidateUserName(ns); err != nil {
					return fmt.Errorf("namespace %q: want a namespace name", ns)
				}
			}
			a, closeA, err := g.openAccounts(cmd)
			if err != nil {
				return err
			}
			defer closeA()
			ctx := cmd.Context()
			robots, err := a.Auth.Accounts(ctx, meta.AccountRobot, ns)
			if err != nil {
				return fmt.Errorf("listing robots: %w", err)
			}
			doc := api.Robots{Namespace: ns, Robots: []api.Account{}}
			for _, r := range robots {
				gs, err := a.Auth.AccountGrants(ctx, r.Name)
				if err != nil {
					return fmt.Errorf("listing the grants of %s: %w", r.Name, err)
				}
				doc.Robots = append(doc.Robots, api.NewAccount(r, gs))
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), doc)
			}
			return printRobots(cmd.OutOrStdout(), doc)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the robots as JSON")
	return cmd
}

func printRobots(w io.Writer, doc api.Robots) error {
	if len(doc.Robots) == 0 {
		where := ""
		if doc.Namespace != "" {
			where = " in " + doc.Namespace
		}
		_, err := fmt.Fprintf(w, "No robots%s; add one with: berth robot add NAMESPACE+NAME --role write\n", where)
		return err
	}
	rows := []string{"NAME\tGRANTS\tEXPIRES\tCREATED\tCREATED BY"}
	for _, r := range doc.Robots {
		rows = append(rows, fmt.Sprintf("%s\t%s\t%s\t%s\t%s", r.Name, grantsText(r.Grants), expiryText(r.ExpiresAt),
			humanTime(&r.CreatedAt), orDash(r.CreatedBy)))
	}
	return table(w, rows...)
}

// grantsText is "write on acme/app, read on acme", or "none".
func grantsText(gs []api.Grant) string {
	if len(gs) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(gs))
	for _, g := range gs {
		parts = append(parts, g.Role+" on "+grantObject(g))
	}
	return strings.Join(parts, ", ")
}

// grantObject is what a grant is on: its repository, else its namespace.
func grantObject(g api.Grant) string {
	if g.Repository != "" {
		return g.Repository
	}
	return g.Namespace
}

// expiryText is when a robot expires, "never", or that it has.
func expiryText(at *time.Time) string {
	switch {
	case at == nil:
		return "never"
	case !at.After(time.Now()):
		return humanTime(at) + " (expired)"
	}
	return humanTime(at)
}

func newRobotDeleteCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delete NAMESPACE+NAME",
		Short: "Delete a robot and its grants",
		Long: `delete removes a robot and its grants. Its secret stops working on each
server within a minute; tokens already issued live out their lifetime
(auth.token.ttl).`,
		Example: `  berth robot delete acme+ci`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if _, _, err := auth.SplitRobotName(name); err != nil {
				return err
			}
			a, closeA, err := g.openAccounts(cmd)
			if err != nil {
				return err
			}
			defer closeA()
			if err := a.Auth.DeleteAccount(cmd.Context(), name); err != nil {
				return fmt.Errorf("deleting robot %s: %w", name, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted robot %s.\n", name)
			return nil
		},
	}
	return cmd
}
