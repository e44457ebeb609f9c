package main

import (
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/berth/berth/internal/api"
	"github.com/berth/berth/internal/meta"
)

func newUserCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Add, list and delete users, set their passwords and admin flag",
		Long: `user manages the registry's users: people who log in with a name and a
password (docker login, Basic credentials). A user's name is also the name of
the namespace they own: they are admin on it. A registry administrator (the
admin flag) may do anything, including managing users.

The subcommands work on the same --data/--db as a running server, while it
runs; a changed password or a deleted user stops working on each server
within a minute (its credential cache) and a token already issued within its
lifetime (auth.token.ttl). Changes are recorded as done by "operator".`,
		Example: `  berth user add alice --admin
  echo "$PASSWORD" | berth user add ci-bot --password-stdin
  berth user list
  berth user admin alice false`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newUserAddCommand(g), newUserPasswdCommand(g), newUserAdminCommand(g),
		newUserDeleteCommand(g), newUserListCommand(g))
	return cmd
}

func newUserAddCommand(g *globals) *cobra.Command {
	var admin, fromStdin, asJSON bool
	cmd := &cobra.Command{
		Use:   "add NAME [--admin] [--password-stdin]",
		Short: "Create a user",
		Long: `add creates a user with a password, typed twice on the terminal without echo,
or read from stdin with --password-stdin (for scripts; one trailing newline is
dropped). A password is 8 to 72 bytes. NAME follows the grammar of a namespace:
lowercase letters and digits, with single '.', '_' or '-' between them.
--admin makes a registry administrator.`,
		Example: `  # The first administrator, typing the password
  berth user add alice --admin

  # From a script
  printf '%s' "$PASSWORD" | berth user add bob --password-stdin`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			password, err := readPassword(cmd, name, fromStdin)
			if err != nil {
				return fmt.Errorf("adding user %s: %w", name, err)
			}
			a, closeA, err := g.openAccounts(cmd)
			if err != nil {
				return err
			}
			defer closeA()
			ctx := cmd.Context()
			if err := a.Auth.AddUser(ctx, name, password, admin, meta.ActorOperator); err != nil {
				return fmt.Errorf("adding user %s: %w", name, err)
			}
			acc, err := a.Auth.Account(ctx, name)
			if err != nil {
				return err
			}
			doc := api.NewAccount(acc, nil)
			if asJSON {
				return printJSON(cmd.OutOrStdout(), doc)
			}
			what := "user"
			if admin {
				what = "registry administrator"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Added %s %s.\n", what, name)
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&admin, "admin", false, "make the user a registry administrator")
	f.BoolVar(&fromStdin, "password-stdin", false, "read the password from stdin")
	f.BoolVar(&asJSON, "json", false, "print the user as JSON")
	return cmd
}

func newUserPasswdCommand(g *globals) *cobra.Command {
	var fromStdin bool
	cmd := &cobra.Command{
		Use:   "passwd NAME [--password-stdin]",
		Short: "Set a user's password",
		Long: `passwd replaces a user's password, typed twice on the terminal without echo or
read from stdin with --password-stdin. The old password stops working on each
server within a minute; tokens already issued live out their lifetime.`,
		Example: `  berth user passwd alice
  printf '%s' "$NEW_PASSWORD" | berth user passwd bob --password-stdin`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			password, err := readPassword(cmd, name, fromStdin)
			if err != nil {
				return fmt.Errorf("setting the password of %s: %w", name, err)
			}
			a, closeA, err := g.openAccounts(cmd)
			if err != nil {
				return err
			}
			defer closeA()
			if err := a.Auth.SetPassword(cmd.Context(), name, password); err != nil {
				return fmt.Errorf("setting the password of %s: %w", name, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Password of %s changed.\n", name)
			return nil
		},
	}
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from stdin")
	return cmd
}

func newUserAdminCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin NAME true|false",
		Short: "Make a user a registry administrator, or not",
		Long: `admin sets a user's registry-administrator flag: true makes them an
administrator (admin on every namespace, manages users and keys), false takes
it away. Robots cannot be administrators.`,
		Example: `  berth user admin alice true
  berth user admin alice false`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			admin, err := strconv.ParseBool(args[1])
			if err != nil {
				return fmt.Errorf("admin %s %q: want true or false", name, args[1])
			}
			a, closeA, err := g.openAccounts(cmd)
			if err != nil {
				return err
			}
			defer closeA()
			if err := a.Auth.SetAdmin(cmd.Context(), name, admin); err != nil {
				return fmt.Errorf("setting the admin flag of %s: %w", name, err)
			}
			if admin {
				fmt.Fprintf(cmd.OutOrStdout(), "%s is a registry administrator.\n", name)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "%s is no longer a registry administrator.\n", name)
			}
			return nil
		},
	}
	return cmd
}

func newUserDeleteCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a user and its grants",
		Long: `delete removes a user and every grant it holds. Its namespace and what was
pushed to it stay (purge them with "berth purge"). Its credentials stop working
on each server within a minute; tokens already issued live out their lifetime.`,
		Example: `  berth user delete bob`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			a, closeA, err := g.openAccounts(cmd)
			if err != nil {
				return err
			}
			defer closeA()
			acc, err := a.Auth.Account(cmd.Context(), name)
			if err != nil {
				return fmt.Errorf("deleting user %s: %w", name, err)
			}
			if acc.Kind != meta.AccountUser {
				return fmt.Errorf("%s is a robot; delete it with: berth robot delete %s", name, name)
			}
			if err := a.Auth.DeleteAccount(cmd.Context(), name); err != nil {
				return fmt.Errorf("deleting user %s: %w", name, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted user %s.\n", name)
			return nil
		},
	}
	return cmd
}

func newUserListCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List users",
		Long: `list prints every user: whether it is a registry administrator, when and by
whom it was created. Robots are listed by "berth robot list"; a user's grants
by "berth grants --account NAME".`,
		Example: `  berth user list
  berth user list --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, closeA, err := g.openAccounts(cmd)
			if err != nil {
				return err
			}
			defer closeA()
			as, err := a.Auth.Accounts(cmd.Context(), meta.AccountUser, "")
			if err != nil {
				return fmt.Errorf("listing users: %w", err)
			}
			doc := api.Users{Users: []api.Account{}}
			for _, acc := range as {
				doc.Users = append(doc.Users, api.NewAccount(acc, nil))
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), doc)
			}
			return printUsers(cmd.OutOrStdout(), doc.Users)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the users as JSON")
	return cmd
}

func printUsers(w io.Writer, us []api.Account) error {
	if len(us) == 0 {
		_, err := fmt.Fprintln(w, "No users; add one with: berth user add NAME --admin")
		return err
	}
	rows := []string{"NAME\tADMIN\tCREATED\tCREATED BY"}
	for _, u := range us {
		admin := "no"
		if u.Admin {
			admin = "yes"
		}
		rows = append(rows, fmt.Sprintf("%s\t%s\t%s\t%s", u.Name, admin, humanTime(&u.CreatedAt), orDash(u.CreatedBy)))
	}
	return table(w, rows...)
}

// orDash is s, or "-" when it is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
