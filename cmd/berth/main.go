// Command berth is an OCI registry whose storage never leaks and never needs
// downtime to be reclaimed. See "berth --help".
//
// main only builds the command tree (root.go) and exits; the commands call
// internal/app.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop) // a second signal kills at once
	err := execute(ctx, newRootCommand(os.Environ))
	stop()
	if err != nil {
		os.Exit(1)
	}
}
