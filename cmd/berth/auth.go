package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth/berth/internal/api"
	"github.com/berth/berth/internal/duration"
)

func newAuthCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "auth",
		Short: "Manage the keys berth signs its tokens with",
		Long: `auth manages what access control keeps besides accounts: the keys berth signs
its tokens with. They live in the database, so every replica signs and
verifies with the same keys.`,
		Example: `  berth auth rotate-key
  berth auth rotate-key --retire-older`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newRotateKeyCommand(g))
	return cmd
}

func newRotateKeyCommand(g *globals) *cobra.Command {
	var retireOlder, asJSON bool
	cmd := &cobra.Command{
		Use:   "rotate-key [--retire-older]",
		Short: "Add a new token signing key, or retire the older ones",
		Long: `rotate-key adds a new signing key, which signs tokens from then on. Older keys
keep verifying the tokens they signed until they are retired with
--retire-older, which retires every key but the newest. Retire only after a
token lifetime (auth.token.ttl, 5 minutes by default) has passed since the
rotation: a token signed by a retired key no longer verifies, so clients
holding one must log in again.`,
		Example: `  # Rotate, then retire the old key once a token lifetime (5m) has passed
  berth auth rotate-key
  sleep 300
  berth auth rotate-key --retire-older`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, closeA, err := g.openAccounts(cmd)
			if err != nil {
				return err
			}
			defer closeA()
			id, retired, err := a.Auth.RotateKey(cmd.Context(), retireOlder)
			if err != nil {
				return fmt.Errorf("rotating the signing key: %w", err)
			}
			if retired == nil {
				retired = []string{}
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), api.KeyRotation{SigningKey: id, Retired: retired})
			}
			w := cmd.OutOrStdout()
			switch {
			case !retireOlder && id == "berth-1":
				fmt.Fprintf(w, "Signing key %s created (the registry had none); it signs tokens from now on.\n", id)
			case !retireOlder:
				fmt.Fprintf(w, "Signing key %s added; running servers sign with it within 30 s.\n"+
					"Older keys still verify the tokens they signed. After a token lifetime\n"+
					"(auth.token.ttl: %s) has passed, retire them with:\n"+
					"  berth auth rotate-key --retire-older\n", id, duration.Format(a.TokenTTL))
			case len(retired) == 0:
				fmt.Fprintf(w, "Nothing to retire: %s is the only key in use.\n", id)
			default:
				fmt.Fprintf(w, "Retired %s; %s signs and verifies (running servers within 30 s).\n"+
					"Tokens signed by a retired key no longer verify: their clients log in again.\n",
					strings.Join(retired, ", "), id)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&retireOlder, "retire-older", false, "retire every key but the newest (after a token lifetime has passed since the rotation)")
	f.BoolVar(&asJSON, "json", false, "print the keys as JSON")
	return cmd
}
