package main

import (
	"github.com/spf13/cobra"

	"github.com/berth/berth/internal/config"
)

// commands lists berth's subcommands, in help order. Each constructor gets
// the shared state and returns its command.
//
// To add a command: write newXCommand(g *globals) in
// its own file, bind the flag groups it needs with config.BindFlags(…,
// &g.flags, …), load the config with g.load(cmd), open the backends with
// app.OpenStores, and list it here.
var commands = []func(g *globals) *cobra.Command{
	newServeCommand,
	newMigrateCommand,
	newGCCommand,
	newSweepCommand,
	newPurgeCommand,
	newUsageCommand,
	newQuotaCommand,
	newTagCommand,
	newNamespaceCommand,
	newPolicyCommand,
	newUserCommand,
	newRobotCommand,
	newGrantCommand,
	newRevokeCommand,
	newGrantsCommand,
	newAuthCommand,
	newVersionCommand,
}

// globals is what every command shares: the config file flag, the storage
// the flags are parsed into, and the environment.
type globals struct {
	configPath string
	// flags receives parsed flag values; only flags set explicitly on the
	// command line are applied over the file and the environment.
	flags   config.Config
	environ func() []string
}

// load builds the command's configuration: defaults, then the config file,
// then BERTH_* variables, then the flags set on the command line.
func (g *globals) load(cmd *cobra.Command) (config.Config, error) {
	return config.LoadWithFlags(g.configPath, g.environ(), cmd.Flags())
}

func newRootCommand(environ func() []string) *cobra.Command {
	g := &globals{flags: config.Default(), environ: environ}
	root := &cobra.Command{
		Use:   "berth",
		Short: "An OCI registry with an online, never-leaking garbage collector",
		Long: `berth is an OCI Distribution registry. Clients push and pull over the OCI API;
operators get tag history with a recovery window, tag expiration, repository
purge and a garbage collector that runs online, concurrently with pushes.

By default berth keeps everything in one data directory: blob bytes under
<data>/storage and metadata in the SQLite file <data>/berth.db. Point --db at
a PostgreSQL URL and --storage s3 at a bucket to run many replicas over one
database and one bucket.

Configuration comes from, in increasing precedence: built-in defaults, a YAML
file (--config or BERTH_CONFIG), BERTH_* environment variables, and flags given
on the command line.`,
		Example: `  # Start a registry on :5000 with everything under ./berth-data
  berth serve

  # Use a config file and PostgreSQL
  berth --config /etc/berth.yaml --db postgres://berth@db/berth serve

  # Apply database migrations
  berth migrate --data /var/lib/berth`,
		SilenceUsage:  true,
		SilenceErrors: true, // main prints the error once
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.configPath, "config", "", "YAML config file (env "+config.EnvConfig+")")
	config.BindFlags(pf, &g.flags, config.SharedFlags)
	for _, newCmd := range commands {
		root.AddCommand(newCmd(g))
	}
	return root
}
