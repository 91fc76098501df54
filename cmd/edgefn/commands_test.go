package main

import (
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// Every topic of help.txt belongs to a command (command() already refuses a
// command without one), and each topic has a one-line usage.
func TestHelpTopicsMatchCommands(t *testing.T) {
	var paths []string
	var walk func(prefix string, cmds []*cli.Command)
	walk = func(prefix string, cmds []*cli.Command) {
		for _, cmd := range cmds {
			if cmd.Name != "help" {
				paths = append(paths, prefix+cmd.Name)
				walk(prefix+cmd.Name+" ", cmd.Subcommands)
			}
		}
	}
	walk("", newApp(nil, io.Discard, io.Discard).Commands)
	for path, tp := range helpTopics {
		if !slices.Contains(paths, path) {
			t.Errorf("help.txt: topic %q names no command", path)
		}
		if tp.usage == "" || strings.Contains(tp.usage, "\n") {
			t.Errorf("help.txt: topic %q: want one line of usage, got %q", path, tp.usage)
		}
		if strings.ContainsAny(tp.long, "{}") {
			t.Errorf("help.txt: topic %q: an unknown {placeholder} in %q", path, tp.long)
		}
	}
	if len(paths) != len(helpTopics) {
		t.Errorf("%d commands, %d help topics", len(paths), len(helpTopics))
	}
}
