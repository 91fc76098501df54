package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"
)

// Exit codes that mean something to scripts.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// usageError marks an error as a usage problem (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// failedError is an error whose message has already been printed; the
// command only needs to exit 1.
type failedError struct{}

func (failedError) Error() string { return "failed" }

// newApp builds the CLI. Each subcommand lives in its own file.
func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:                 "edgefn",
		Usage:                "serverless WebAssembly functions on edge devices",
		Reader:               stdin,
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: true,
		HideHelpCommand:      true,
		Commands: []*cli.Command{
			versionCommand(),
			runCommand(),
			agentCommand(),
			loginCommand(),
			deployCommand(),
			lsCommand(),
			statusCommand(),
			logsCommand(),
			usageCommand(),
			outboxCommand(),
			invokeCommand(),
			rollbackCommand(),
			rmCommand(),
			gpioCommand(),
			keygenCommand(),
			newCommand(),
			completionCommand(),
		},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
		ExitErrHandler: func(*cli.Context, error) {},
	}
	return app
}

// run runs the CLI and returns the process exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := newApp(stdin, stdout, stderr)
	err := app.RunContext(ctx, args)
	if err == nil {
		return exitOK
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "edgefn: %v\n", err)
		return exitUsage
	}
	var fe failedError
	if !errors.As(err, &fe) {
		fmt.Fprintf(stderr, "edgefn: %v\n", err)
	}
	return exitFailed
}
