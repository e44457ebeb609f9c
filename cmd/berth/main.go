// Command berth is an OCI registry whose storage never leaks and never needs
// downtime to be reclaimed. See "berth --help".
//
// main only builds the command tree (root.go) and exits; the commands call
// internal/app.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop) // a second signal kills at once
	err := newRootCommand(os.Environ).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "berth:", err)
		os.Exit(1)
	}
}
