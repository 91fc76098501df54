package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/edgefn/edgefn/gateway/api"
	"github.com/edgefn/edgefn/internal/strictyaml"
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

// newApp builds the CLI: the command table of commands.go (each action in
// the file of its command), the words of help.txt.
func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:                 "edgefn",
		Usage:                "serverless WebAssembly functions on edge devices",
		Reader:               stdin,
		Writer:               stdout,
		ErrWriter:            stderr,
		Version:              version,
		EnableBashCompletion: true,
		// With no command: the help; with an unknown one, a usage error
		// that names the closest command.
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return cli.ShowAppHelp(c)
			}
			return unknownCommand(c.App.Commands, "", c.Args().First())
		},
		Commands: commands(),

		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
		ExitErrHandler: func(*cli.Context, error) {},
	}
	var setUsage func([]*cli.Command)
	setUsage = func(cmds []*cli.Command) {
		for _, cmd := range cmds {
			cmd.OnUsageError = func(c *cli.Context, err error, _ bool) error {
				return usageError{fmt.Errorf("%s: %v", commandPath(c), err)}
			}
			if len(cmd.Subcommands) > 0 && cmd.Action == nil {
				// urfave/cli would answer "No help topic for 'x'", exit 1.
				cmd.Action = func(c *cli.Context) error {
					if c.NArg() == 0 {
						return cli.ShowSubcommandHelp(c)
					}
					return unknownCommand(cmd.Subcommands, cmd.Name+" ", c.Args().First())
				}
			}
			setUsage(cmd.Subcommands)
		}
	}
	setUsage(app.Commands)
	completeDefaults(app.Commands)
	// help NAME (and h NAME) for a command that does not exist is a usage
	// error with a suggestion, like the command itself.
	app.Setup()
	for _, cmd := range app.Commands {
		if cmd.Name != "help" || cmd.Action == nil {
			continue
		}
		show := cmd.Action
		// One help command serves the app and every command with
		// subcommands (gpio help NAME): the context above it says which.
		cmd.Action = func(c *cli.Context) error {
			name := c.Args().First()
			if name == "" {
				return show(c)
			}
			cmds, prefix := c.App.Commands, ""
			if l := c.Lineage(); len(l) > 2 && l[1].Command != nil && l[2].Command != nil {
				cmds, prefix = l[1].Command.Subcommands, l[1].Command.Name+" "
			}
			for _, sub := range cmds {
				if sub.HasName(name) {
					return show(c)
				}
			}
			return unknownCommand(cmds, prefix, name)
		}
	}
	return app
}

func init() {
	cli.VersionFlag = &cli.BoolFlag{Name: "version", Aliases: []string{"v"}, Usage: "print the version of this binary"}
	cli.VersionPrinter = func(c *cli.Context) { fmt.Fprintln(c.App.Writer, versionInfo().String()) }
}

// unknownCommand is the usage error for a command name that is not among
// cmds (the app's, or a command's subcommands, named with prefix "gpio "),
// with the closest one when it is close enough to be a typo.
func unknownCommand(cmds []*cli.Command, prefix, name string) error {
	best, dist := "", len(name)/2+2
	for _, cmd := range cmds {
		if cmd.Hidden || prefix != "" && cmd.Name == "help" {
			continue
		}
		for _, n := range cmd.Names() {
			if d := strictyaml.EditDistance(name, n); d < dist {
				best, dist = cmd.Name, d
			}
		}
	}
	if best != "" {
		return usagef("unknown command %s%s, did you mean %s%s?", prefix, name, prefix, best)
	}
	return usagef("unknown command %s%s (edgefn %shelp lists them)", prefix, name, prefix)
}

// wantsJSON reports whether the command line asks for JSON output, so that
// errors come as JSON too.
func wantsJSON(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		switch a {
		case "--json", "-json", "--json=true", "-json=true":
			return true
		}
	}
	return false
}

// run runs the CLI and returns the process exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := newApp(stdin, stdout, stderr)
	err := app.RunContext(ctx, args)
	if err == nil {
		return exitOK
	}
	code := exitFailed
	var ue usageError
	if errors.As(err, &ue) {
		code = exitUsage
	}
	var fe failedError
	if errors.As(err, &fe) {
		// Already reported (as JSON under --json).
		return code
	}
	if wantsJSON(args) {
		// One JSON object on stdout, as for a success; the exit status
		// is the same as without --json.
		_ = printJSON(stdout, jsonError(err, code))
		return code
	}
	fmt.Fprintf(stderr, "edgefn: %v\n", err)
	return code
}

// interleaved lets flags follow positional arguments (urfave/cli v2 stops
// parsing flags at the first argument): it parses the whole argument list
// again into a fresh flag set, keeping the values of flags given before the
// arguments.
func interleaved(c *cli.Context) (*cli.Context, error) {
	if c.NArg() == 0 {
		return c, nil
	}
	set := flag.NewFlagSet(c.Command.Name, flag.ContinueOnError)
	set.SetOutput(io.Discard)
	for _, f := range c.Command.Flags {
		if err := f.Apply(set); err != nil {
			return nil, err
		}
	}
	var pos []string
	rest := c.Args().Slice()
	for len(rest) > 0 {
		if err := set.Parse(rest); err != nil {
			return nil, usagef("%s: %v", commandPath(c), err)
		}
		rest = set.Args()
		if len(rest) > 0 {
			pos = append(pos, rest[0])
			rest = rest[1:]
		}
	}
	seen := map[string]bool{}
	set.Visit(func(f *flag.Flag) { seen[f.Name] = true })
	for _, f := range c.Command.Flags {
		name := f.Names()[0]
		if seen[name] || !c.IsSet(name) {
			continue
		}
		vals := []string{fmt.Sprint(c.Value(name))}
		if _, ok := f.(*cli.StringSliceFlag); ok {
			vals = c.StringSlice(name)
		}
		for _, v := range vals {
			if err := set.Set(name, v); err != nil {
				return nil, usagef("%s: --%s: %v", commandPath(c), name, err)
			}
		}
	}
	// Aliases (-f for --follow) are separate entries of the flag set: give
	// every name of a flag the value set under any of them.
	set.Visit(func(f *flag.Flag) { seen[f.Name] = true })
	for _, f := range c.Command.Flags {
		names := f.Names()
		if _, ok := f.(*cli.StringSliceFlag); ok || len(names) < 2 {
			continue
		}
		for _, n := range names {
			if !seen[n] {
				continue
			}
			v := set.Lookup(n).Value.String()
			for _, other := range names {
				if other != n {
					if err := set.Set(other, v); err != nil {
						return nil, usagef("%s: --%s: %v", commandPath(c), other, err)
					}
				}
			}
			break
		}
	}
	if err := set.Parse(append([]string{"--"}, pos...)); err != nil {
		return nil, usagef("%s: %v", commandPath(c), err)
	}
	nc := cli.NewContext(c.App, set, c)
	nc.Command = c.Command // NewContext leaves an empty one: errors name the command
	return nc, nil
}

// commandPath names the running command as typed: "logs", "gpio pulse".
func commandPath(c *cli.Context) string {
	var names []string
	var last *cli.Command
	for _, l := range c.Lineage() {
		if cmd := l.Command; cmd != nil && cmd != last && cmd.Name != "" && cmd.Name != c.App.Name {
			names = append([]string{cmd.Name}, names...)
			last = cmd
		}
	}
	return strings.Join(names, " ")
}

// jsonError is err as --json prints it: the API's error shape, code being
// the exit status, with a refused deploy's problems as a list.
func jsonError(err error, code int) api.Error {
	e := api.Error{Error: err.Error(), Code: code}
	var se *api.StatusError
	if errors.As(err, &se) && len(se.Problems) > 0 {
		e.Problems = se.Problems
		e.Error = strings.TrimSuffix(e.Error, ":\n  "+strings.Join(se.Problems, "\n  "))
	}
	return e
}
