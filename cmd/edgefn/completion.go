package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// Completion scripts: urfave/cli's, which ask the binary itself
// (--generate-bash-completion) for the commands and flags at each point.
const bashCompletion = `# edgefn bash completion: source <(edgefn completion bash)
_edgefn_complete() {
  local cur words
  cur="${COMP_WORDS[COMP_CWORD]}"
  words=("${COMP_WORDS[@]:0:$COMP_CWORD}")
  local opts
  if [[ "$cur" == "-"* ]]; then
    opts=$("${words[@]}" "$cur" --generate-bash-completion 2>/dev/null)
  else
    opts=$("${words[@]}" --generate-bash-completion 2>/dev/null)
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
    opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion)}")
  fi
  if [[ "${opts[1]}" != "" ]]; then
    _describe 'values' opts
  else
    _files
  fi
}
compdef _edgefn_complete edgefn
`

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print the shell completion script (bash or zsh)",
		ArgsUsage: "bash|zsh",
		Description: "bash: source <(edgefn completion bash)   (add it to ~/.bashrc)\n" +
			"zsh:  source <(edgefn completion zsh)    (add it to ~/.zshrc, after compinit)",
		Action: countArgs(1, 1, "bash or zsh", func(c *cli.Context) error {
			switch c.Args().First() {
			case "bash":
				fmt.Fprint(c.App.Writer, bashCompletion)
			case "zsh":
				fmt.Fprint(c.App.Writer, zshCompletion)
			default:
				return usagef("completion: %q: want bash or zsh", c.Args().First())
			}
			return nil
		}),
	}
}
