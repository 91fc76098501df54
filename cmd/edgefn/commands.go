package main

import (
	_ "embed"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// helpFile holds the words of every command: its argument synopsis, its
// one-line usage and its long help, in one topic a command (see its header).
//
//go:embed help.txt
var helpFile string

// topic is one command's words from help.txt.
type topic struct{ args, usage, long string }

// helpTopics are help.txt's topics by command path ("outbox peek").
var helpTopics = parseHelp(helpFile)

// parseHelp reads help.txt: "# " lines before the first topic are its
// header; a topic starts at a line "== PATH" or "== PATH: ARGS", its next
// line is the usage, and what follows a blank line is the long help.
func parseHelp(text string) map[string]topic {
	topics := map[string]topic{}
	_, body, _ := strings.Cut(text, "\n== ")
	for _, section := range strings.Split(body, "\n== ") {
		head, rest, _ := strings.Cut(section, "\n")
		path, args, _ := strings.Cut(head, ": ")
		usage, long, _ := strings.Cut(rest, "\n")
		long = strings.NewReplacer("{credentials}", credentialsHint, "{history}", fmt.Sprint(historyDepth)).Replace(long)
		topics[path] = topic{args: args, usage: usage, long: strings.Trim(long, "\n")}
	}
	return topics
}

// command is the command at path ("outbox peek", named "peek") with its
// words from help.txt; flags, complete, action and subs may be nil.
func command(path string, flags []cli.Flag, complete cli.BashCompleteFunc, action cli.ActionFunc, subs ...*cli.Command) *cli.Command {
	t, ok := helpTopics[path]
	if !ok {
		panic("help.txt has no topic for " + path)
	}
	return &cli.Command{
		Name:         path[strings.LastIndex(path, " ")+1:],
		Usage:        t.usage,
		ArgsUsage:    t.args,
		Description:  t.long,
		Flags:        flags,
		BashComplete: complete,
		Action:       action,
		Subcommands:  subs,
	}
}
