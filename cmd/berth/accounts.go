package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/berth/berth/internal/app"
)

// openAccounts loads the command's config and opens access control over
// the same stores a running server uses. Call the returned function when
// done.
func (g *globals) openAccounts(cmd *cobra.Command) (*app.Accounts, func(), error) {
	cfg, err := g.load(cmd)
	if err != nil {
		return nil, nil, err
	}
	a, err := app.OpenAccounts(cmd.Context(), cfg)
	if err != nil {
		return nil, nil, err
	}
	return a, func() { _ = a.Close() }, nil
}

// maxPasswordInput bounds a password read from stdin.
const maxPasswordInput = 4 << 10

// readPassword reads a new password for user: from stdin when fromStdin
// (one trailing newline dropped, as docker login --password-stdin does),
// else typed twice on the terminal without echo. Without a terminal,
// --password-stdin is required: a password never comes from a flag, where
// ps and shell history would show it.
func readPassword(cmd *cobra.Command, user string, fromStdin bool) (string, error) {
	in := cmd.InOrStdin()
	if fromStdin {
		b, err := io.ReadAll(io.LimitReader(in, maxPasswordInput+1))
		if err != nil {
			return "", fmt.Errorf("reading the password from stdin: %w", err)
		}
		if len(b) > maxPasswordInput {
			return "", fmt.Errorf("reading the password from stdin: more than %d bytes", maxPasswordInput)
		}
		p := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if p == "" {
			return "", errors.New("no password on stdin")
		}
		return p, nil
	}
	f, ok := in.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", errors.New("stdin is not a terminal: give the password on stdin with --password-stdin")
	}
	prompt := cmd.ErrOrStderr()
	fmt.Fprintf(prompt, "New password for %s: ", user)
	first, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(prompt)
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	fmt.Fprint(prompt, "Again: ")
	again, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(prompt)
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	if string(first) != string(again) {
		return "", errors.New("the passwords differ; nothing was changed")
	}
	return string(first), nil
}
