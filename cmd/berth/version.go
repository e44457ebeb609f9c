package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/berth/berth/internal/app"
)

func newVersionCommand(_ *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version of this berth",
		Long: `version prints the release version, the VCS commit and the Go toolchain this
binary was built with. Release builds set them with -ldflags:

  go build -ldflags "-X github.com/berth/berth/internal/app.version=v1.0.0 \
    -X github.com/berth/berth/internal/app.commit=$(git rev-parse HEAD)" ./cmd/berth

Otherwise they come from the Go build information.`,
		Example: `  berth version`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := app.Version()
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "berth %s\ncommit: %s\ngo: %s\n", v.Version, v.Commit, v.GoVersion)
			return err
		},
	}
}
