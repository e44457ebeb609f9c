package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth/berth/internal/app"
)

// closeTimeout bounds how long a command waits for queued webhook events.
const closeTimeout = 30 * time.Second

// openServices loads the command's config and opens the registry and the
// collector over the same stores a running server uses. Call the returned
// function when done.
func (g *globals) openServices(cmd *cobra.Command) (*app.Services, func(), error) {
	cfg, err := g.load(cmd)
	if err != nil {
		return nil, nil, err
	}
	svc, err := app.OpenServices(cmd.Context(), cfg, app.NewLogger(cfg))
	if err != nil {
		return nil, nil, err
	}
	return svc, func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(cmd.Context()), closeTimeout)
		defer cancel()
		_ = svc.Close(ctx)
	}, nil
}
