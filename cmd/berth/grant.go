package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/berth/berth/internal/api"
	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/meta"
)

func newGrantCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "grant ACCOUNT ROLE NAMESPACE[/REPO]",
		Short: "Give a user or robot a role on a namespace or repository",
		Long: `grant gives ACCOUNT (a user, or a robot NAMESPACE+NAME) ROLE on a namespace, or
on one repository of it. Roles are ordered: read (pull), write (read, plus
push, tag, delete, restore, expiry) and admin (write, plus the namespace's
settings, grants, visibility and robots). Granting again changes the role.

The namespace must exist; the repository need not (a grant may precede the
first push). A robot can only be granted inside its own namespace. Grants are
listed by "berth grants" and taken back by "berth revoke". The change is
recorded as done by "operator".`,
		Example: `  # bob may push to every repository of acme
  berth grant bob write acme

  # the CI robot of acme may pull acme/base too
  berth grant acme+ci read acme/base`,
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			account, target := args[0], args[2]
			role, err := auth.ParseRole(args[1])
			if err != nil {
				return err
			}
			a, closeA, err := g.openAccounts(cmd)
			if err != nil {
				return err
			}
			defer closeA()
			if err := a.Auth.Grant(cmd.Context(), account, role, target, meta.ActorOperator); err != nil {
				return fmt.Errorf("granting %s on %s to %s: %w", role, target, account, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Granted %s on %s to %s.\n", role, target, account)
			return nil
		},
	}
	return cmd
}

func newRevokeCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "revoke ACCOUNT NAMESPACE[/REPO]",
		Short: "Take back an account's grant on a namespace or repository",
		Long: `revoke deletes the grant ACCOUNT holds on a namespace, or on one repository of
it: exactly that grant (a grant on the namespace and one on a repository of it
are two grants). Tokens already issued keep what they carry for their
lifetime (auth.token.ttl).`,
		Example: `  berth revoke bob acme
  berth revoke acme+ci acme/base`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			account, target := args[0], args[1]
			a, closeA, err := g.openAccounts(cmd)
			if err != nil {
				return err
			}
			defer closeA()
			if err := a.Auth.Revoke(cmd.Context(), account, target); err != nil {
				return fmt.Errorf("revoking the grant of %s on %s: %w", account, target, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Revoked the grant of %s on %s.\n", account, target)
			return nil
		},
	}
	return cmd
}

func newGrantsCommand(g *globals) *cobra.Command {
	var account string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "grants (NAMESPACE | --account NAME)",
		Short: "List the grants on a namespace, or an account's",
		Long: `grants lists the grants on NAMESPACE and its repositories, or with --account
those NAME holds: who, which role, on what, when and by whom. A user's own
namespace (admin) and public namespaces (read) are not grants and are not
listed.`,
		Example: `  berth grants acme
  berth grants --account bob --json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (len(args) == 1) == (account != "") {
				return fmt.Errorf("give either NAMESPACE or --account NAME")
			}
			a, closeA, err := g.openAccounts(cmd)
			if err != nil {
				return err
			}
			defer closeA()
			var gs []meta.Grant
			if account != "" {
				gs, err = a.Auth.AccountGrants(cmd.Context(), account)
			} else {
				if err := auth.ValidateUserName(args[0]); err != nil {
					return fmt.Errorf("namespace %q: want a namespace name (grants on a repository are listed with its namespace's)", args[0])
				}
				gs, err = a.Auth.NamespaceGrants(cmd.Context(), args[0])
			}
			if err != nil {
				return fmt.Errorf("listing grants: %w", err)
			}
			doc := api.NewGrants(gs)
			if asJSON {
				return printJSON(cmd.OutOrStdout(), doc)
			}
			return printGrants(cmd.OutOrStdout(), doc.Grants)
		},
	}
	f := cmd.Flags()
	f.StringVar(&account, "account", "", "list the grants this user or robot holds")
	f.BoolVar(&asJSON, "json", false, "print the grants as JSON")
	return cmd
}

func printGrants(w io.Writer, gs []api.Grant) error {
	if len(gs) == 0 {
		_, err := fmt.Fprintln(w, "No grants.")
		return err
	}
	rows := []string{"ACCOUNT\tROLE\tON\tCREATED\tCREATED BY"}
	for _, g := range gs {
		rows = append(rows, fmt.Sprintf("%s\t%s\t%s\t%s\t%s", g.Account, g.Role, grantObject(g), humanTime(&g.CreatedAt), orDash(g.CreatedBy)))
	}
	return table(w, rows...)
}
