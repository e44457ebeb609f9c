package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/berth/berth/internal/api"
	"github.com/berth/berth/internal/app"
	"github.com/berth/berth/internal/meta"
)

// jsonError is how a command given --json reports its failure: one object
// on stdout, where the command's answer would have been, so that a script
// reading stdout always parses one JSON document and tells the two apart
// by the exit status.
type jsonError struct {
	Error string `json:"error"`
	// Code classifies the failure: the management API's code for the
	// same failure (NAME_UNKNOWN, DENIED, INVALID_ARGUMENT...), or one of
	// the command line's own: NO_REGISTRY, SCHEMA_OUTDATED,
	// SCHEMA_UNKNOWN, NOT_FOUND, or ERROR for anything else.
	Code string `json:"code"`
}

// reportedError is a failure the command already reported in its output
// (a verification that found differences): execute adds nothing, and the
// exit status says it.
type reportedError struct{ error }

func (e reportedError) Unwrap() error { return e.error }

// execute runs the command line and reports its error, if any: as a
// jsonError on stdout when the command ran with --json, else as
// "berth: ..." on stderr. It returns the error, for the exit status.
func execute(ctx context.Context, root *cobra.Command) error {
	cmd, err := root.ExecuteContextC(ctx)
	var reported reportedError
	if err == nil || errors.As(err, &reported) {
		return err
	}
	if cmd != nil && wantsJSON(cmd) {
		if perr := printJSON(cmd.OutOrStdout(), jsonError{Error: err.Error(), Code: errorCode(err)}); perr == nil {
			return err
		}
	}
	if cmd == nil {
		cmd = root
	}
	fmt.Fprintln(cmd.ErrOrStderr(), "berth:", err)
	return err
}

// wantsJSON reports whether cmd has a --json flag and it was given.
func wantsJSON(cmd *cobra.Command) bool {
	f := cmd.Flags().Lookup("json")
	return f != nil && f.Changed && f.Value.String() == "true"
}

// errorCode classifies err for a jsonError.
func errorCode(err error) string {
	switch {
	case errors.Is(err, app.ErrNoRegistry):
		return "NO_REGISTRY"
	case errors.Is(err, meta.ErrSchemaOutdated):
		return "SCHEMA_OUTDATED"
	case errors.Is(err, meta.ErrSchemaUnknown):
		return "SCHEMA_UNKNOWN"
	}
	if code, ok := api.ErrorCode(err); ok {
		return code
	}
	if errors.Is(err, meta.ErrNotFound) {
		return "NOT_FOUND"
	}
	return "ERROR"
}
