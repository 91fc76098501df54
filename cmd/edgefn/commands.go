package main

import (
	_ "embed"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/gateway/api"
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

// commands is the whole CLI in the order `edgefn help` lists it: each
// command's path, flags, argument completion and action (nil when it has
// none); its words are its topic in help.txt.
func commands() []*cli.Command {
	return []*cli.Command{
		command("version", []cli.Flag{jsonFlag()}, nil, noArgs(versionAction)),
		command("run", []cli.Flag{
			&cli.StringFlag{Name: "data", Usage: "event payload: a string, or @FILE to read it from FILE"},
			&cli.StringFlag{Name: "subject", Usage: "event subject (MQTT topic, pin, timer spec…; default from the manifest's trigger, else local)"},
			&cli.StringFlag{Name: "source", Usage: "event source: mqtt, gpio, timer or http (default from the manifest's trigger, else http)"},
			&cli.StringSliceFlag{Name: "meta", Usage: "K=V event metadata, read with the meta import (repeatable)"},
			&cli.StringFlag{Name: "file", Usage: "a file dropped for a files trigger: its content is the payload, with meta file.name and file.size (source file, subject the trigger's directory)"},
			&cli.StringFlag{Name: "pin", Usage: "a GPIO edge on PIN: source gpio, subject PIN, the agent's gpio payload and meta"},
			&cli.StringFlag{Name: "edge", Value: string(edgefn.EdgeRising), Usage: "with --pin: rising or falling"},
			&cli.StringSliceFlag{Name: "high", Usage: "simulated GPIO input PIN that reads high (repeatable)"},
			&cli.StringSliceFlag{Name: "env", Usage: "K=V added to (or replacing in) the manifest's env (repeatable)"},
			&cli.StringFlag{Name: "kv-file", Usage: "keep kv in this JSON file across runs (created when missing)"},
			&cli.StringFlag{Name: "memory", Value: edgefn.DefaultLimits.Memory.String(), Usage: "memory limit (KiB, MiB); overrides the manifest's"},
			&cli.DurationFlag{Name: "timeout", Value: edgefn.DefaultLimits.Timeout, Usage: "deadline of the invocation; overrides the manifest's"},
			&cli.StringSliceFlag{Name: "allow-publish", Usage: "MQTT topic filter the function may publish to (repeatable; added to the manifest's)"},
			&cli.BoolFlag{Name: "allow-kv", Usage: "let the function use kv"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object"},
		}, completeFiles(".yaml", ".yml", ".wasm"), withArgs(1, 1, "one function.yaml, DIR or MODULE.wasm", runAction)),
		command("build", nil, completeFiles(".yaml", ".yml"), withArgs(0, 1, "DIR or function.yaml", buildAction)),
		command("agent", []cli.Flag{
			configFlag(),
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "text or json"},
		}, nil, onDevice(agentAction)),
		command("login", []cli.Flag{
			&cli.StringFlag{Name: "token", EnvVars: []string{"EDGEFN_TOKEN"}, Usage: "the agent's API token (its data dir's api.token)"},
			&cli.StringFlag{Name: "token-file", Usage: "read the token from this file"},
			&cli.StringFlag{Name: "fingerprint", Usage: "the certificate fingerprint the agent printed, sha256:<hex>"},
			&cli.BoolFlag{Name: "accept-fingerprint", Usage: "trust the certificate presented now without asking"},
			jsonFlag(),
		}, nil, withArgs(1, 1, "the agent's URL", loginAction)),
		command("deploy", remoteFlags(jsonFlag(), signKeyFlag()), completeFiles(".yaml", ".yml"), withArgs(0, 1, "at most one manifest file", deployAction)),
		command("ls", remoteFlags(jsonFlag()), completeFunctions, withArgs(0, 1, "at most one function NAME", lsAction)),
		command("status", remoteFlags(jsonFlag()), nil, noArgs(statusAction)),
		command("logs", remoteFlags(jsonFlag(),
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing new lines until interrupted"},
			&cli.StringFlag{Name: "since", Usage: "only lines newer than this: a duration (1h) or an RFC 3339 time"},
			&cli.IntFlag{Name: "limit", Aliases: []string{"n"}, Value: 200, Usage: "at most this many of the most recent lines"},
		), completeFunctions, withArgs(1, 1, "a function NAME", logsAction)),
		command("tail", remoteFlags(jsonFlag(), &cli.IntFlag{Name: "n", Value: 10, Usage: "messages from before to print first (0 to 256)"}),
			nil, withArgs(0, 1, "at most one topic FILTER", tailAction)),
		command("usage", remoteFlags(jsonFlag(), &cli.StringFlag{Name: "since", Value: "24h", Usage: "period: a duration back from now or an RFC 3339 time"}),
			nil, noArgs(usageAction)),
		command("outbox", remoteFlags(jsonFlag(), &cli.IntFlag{Name: "dead-letters", Value: 20, Usage: "list at most this many dead letters"}),
			nil, noArgs(outboxAction),
			command("outbox peek", remoteFlags(jsonFlag(), &cli.IntFlag{Name: "n", Value: api.DefaultPeek, Usage: fmt.Sprintf("at most this many records (1 to %d)", api.MaxPeek)}),
				completeFunctions, withArgs(0, 1, "at most one FUNCTION", outboxPeekAction)),
			command("outbox recover", []cli.Flag{
				configFlag(),
				&cli.BoolFlag{Name: "force", Usage: "move the outbox aside even when it opens cleanly (its pending records go with it)"},
			}, nil, onDevice(outboxRecoverAction)),
		),
		command("invoke", remoteFlags(jsonFlag(),
			&cli.StringFlag{Name: "data", Aliases: []string{"d"}, Usage: "payload: a string, or @FILE to send FILE's content (@- for stdin)"},
			&cli.StringSliceFlag{Name: "meta", Usage: "event metadata KEY=VALUE (repeatable)"},
			&cli.StringFlag{Name: "subject", Usage: "the event's subject, as a trigger would set it: an MQTT topic, a pin name", DefaultText: "the function name"},
			&cli.StringFlag{Name: "source", Usage: "the event's source: mqtt, gpio, timer or http", DefaultText: "http"},
		), completeFunctions, withArgs(1, 1, "a function NAME", invokeAction)),
		command("rollback", remoteFlags(jsonFlag(), &cli.IntFlag{Name: "to", Usage: "version to activate", DefaultText: "the one before the active one"}, signKeyFlag()),
			completeFunctions, withArgs(1, 1, "a function NAME", rollbackAction)),
		command("rm", remoteFlags(jsonFlag()), completeFunctions, withArgs(1, 1, "a function NAME", rmAction)),
		command("gpio", nil, nil, nil,
			command("gpio ls", remoteFlags(jsonFlag()), nil, noArgs(gpioLsAction)),
			command("gpio pulse", remoteFlags(jsonFlag(), &cli.DurationFlag{Name: "width", Value: 10 * time.Millisecond, Usage: "how long the pulse lasts (up to 10s)"}),
				nil, withArgs(1, 1, "a PIN such as GPIO17", gpioPulseAction)),
			command("gpio set", remoteFlags(jsonFlag()), nil, withArgs(2, 2, "PIN and high or low", gpioSetAction)),
		),
		command("keygen", nil, nil, countArgs(0, 1, "at most one KEYFILE", keygenAction)),
		fleetCommand(),
		command("new", []cli.Flag{
			&cli.StringFlag{Name: "lang", Aliases: []string{"l"}, Usage: "go, c, rust, as or wat (required)"},
			&cli.StringFlag{Name: "dir", Usage: "directory to write (default ./NAME); must not exist or be empty"},
			&cli.StringFlag{Name: "sdk", EnvVars: []string{"EDGEFN_SRC"}, Usage: "go: a checkout of github.com/edgefn/edgefn for the SDK (a replace line in go.mod)"},
		}, nil, withArgs(1, 1, "the function's NAME", newAction)),
		command("completion", nil, nil, countArgs(1, 1, "bash or zsh", completionAction)),
	}
}
