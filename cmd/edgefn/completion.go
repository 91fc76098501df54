package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// Completion scripts: urfave/cli's, which ask the binary itself
// (--generate-bash-completion) for the commands, flags and arguments at
// each point; the word being completed is passed in EDGEFN_COMPLETE_WORD
// (file arguments are listed from its directory).
const bashCompletion = `# edgefn bash completion: source <(edgefn completion bash)
_edgefn_complete() {
  local cur words
  cur="${COMP_WORDS[COMP_CWORD]}"
  words=("${COMP_WORDS[@]:0:$COMP_CWORD}")
  local opts
  if [[ "$cur" == "-"* ]]; then
    opts=$("${words[@]}" "$cur" --generate-bash-completion 2>/dev/null)
  else
    opts=$(EDGEFN_COMPLETE_WORD="$cur" "${words[@]}" --generate-bash-completion 2>/dev/null)
  fi
  COMPREPLY=($(compgen -W "${opts}" -- "${cur}"))
}
complete -o bashdefault -o default -o nospace -F _edgefn_complete edgefn
`

const zshCompletion = `#compdef edgefn
# edgefn zsh completion: source <(edgefn completion zsh)
_edgefn_complete() {
  local -a opts
  local cur
  cur=${words[-1]}
  if [[ "$cur" == "-"* ]]; then
    opts=("${(@f)$(${words[@]:0:#words[@]-1} ${cur} --generate-bash-completion)}")
  else
    opts=("${(@f)$(EDGEFN_COMPLETE_WORD="$cur" ${words[@]:0:#words[@]-1} --generate-bash-completion)}")
  fi
  if [[ "${opts[1]}" != "" ]]; then
    _describe 'values' opts
  else
    _files
  fi
}
compdef _edgefn_complete edgefn
`

func completionAction(c *cli.Context) error {
	switch c.Args().First() {
	case "bash":
		fmt.Fprint(c.App.Writer, bashCompletion)
	case "zsh":
		fmt.Fprint(c.App.Writer, zshCompletion)
	default:
		return usagef("completion: %q: want bash or zsh", c.Args().First())
	}
	return nil
}

// Bounds of argument completion: it must answer at once, or say nothing.
const (
	completeTimeout = 1500 * time.Millisecond
	completeMax     = 500
)

// completingFlag reports whether the word being completed is a flag, and
// if so prints the command's flags as urfave/cli does.
func completingFlag(c *cli.Context) bool {
	if n := len(os.Args); n > 2 && strings.HasPrefix(os.Args[n-2], "-") {
		cli.DefaultCompleteWithFlags(c.Command)(c)
		return true
	}
	return false
}

// completeFunctions completes a function NAME argument with the names of
// the functions on the agent (the one the command would talk to), asked
// with a short timeout; nothing when it cannot be reached.
func completeFunctions(c *cli.Context) {
	if completingFlag(c) || c.NArg() > 0 {
		return
	}
	r, err := connect(c)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(c.Context, completeTimeout)
	defer cancel()
	fns, err := r.Functions(ctx)
	if err != nil {
		return
	}
	for i, f := range fns {
		if i == completeMax {
			break
		}
		fmt.Fprintln(c.App.Writer, f.Name)
	}
}

// completeFiles completes a file argument with the directories and the
// files ending in one of exts in the directory of the word being
// completed.
func completeFiles(exts ...string) cli.BashCompleteFunc {
	return func(c *cli.Context) {
		if completingFlag(c) || c.NArg() > 0 {
			return
		}
		for i, name := range matchingFiles(os.Getenv("EDGEFN_COMPLETE_WORD"), exts) {
			if i == completeMax {
				break
			}
			fmt.Fprintln(c.App.Writer, name)
		}
	}
}

// matchingFiles lists, for a partly typed path, the directories (with a
// trailing /) and the files ending in one of exts next to it that start
// with it.
func matchingFiles(word string, exts []string) []string {
	dir, prefix := filepath.Split(word)
	from := dir
	if from == "" {
		from = "."
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, prefix) || (strings.HasPrefix(name, ".") && !strings.HasPrefix(prefix, ".")) {
			continue
		}
		if e.IsDir() {
			out = append(out, dir+name+"/")
			continue
		}
		for _, ext := range exts {
			if strings.HasSuffix(strings.ToLower(name), ext) {
				out = append(out, dir+name)
				break
			}
		}
	}
	return out
}

// completeDefaults gives every command without its own argument completion
// urfave/cli's (flags, subcommands) minus the help command it adds, so a
// command that takes no argument completes to nothing rather than "help h".
func completeDefaults(cmds []*cli.Command) {
	for _, cmd := range cmds {
		if cmd.BashComplete == nil {
			cmd.BashComplete = func(c *cli.Context) {
				if completingFlag(c) {
					return
				}
				for _, sub := range c.Command.Subcommands {
					if !sub.Hidden && sub.Name != "help" {
						fmt.Fprintln(c.App.Writer, sub.Name)
					}
				}
			}
		}
		completeDefaults(cmd.Subcommands)
	}
}
