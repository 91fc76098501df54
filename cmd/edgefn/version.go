package main

import (
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"
)

// version is set at link time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

// commit is the fallback when the binary carries no VCS stamp: make build
// sets it (-X main.commit=...).
var commit = ""

// buildInfo is what `edgefn version --json` prints.
type buildInfo struct {
	Version  string `json:"version"`
	Commit   string `json:"commit,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Time     string `json:"commit_time,omitempty"`
	OS       string `json:"os"`
	Arch     string `json:"arch"`
	Go       string `json:"go"`
}

// versionInfo reads the commit from the module's VCS stamp (go build in a
// git checkout records it).
func versionInfo() buildInfo {
	v := buildInfo{Version: version, Commit: commit, OS: runtime.GOOS, Arch: runtime.GOARCH, Go: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Commit = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			case "vcs.time":
				v.Time = s.Value
			}
		}
	}
	return v
}

func (v buildInfo) String() string {
	s := "edgefn " + v.Version
	if v.Commit != "" {
		c := v.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		if v.Modified {
			c += "-dirty"
		}
		s += " (commit " + c + ")"
	} else {
		s += " (commit unknown)"
	}
	return s + " " + v.OS + "/" + v.Arch + " " + v.Go
}

func versionAction(c *cli.Context) error {
	v := versionInfo()
	if c.Bool("json") {
		return printJSON(c.App.Writer, v)
	}
	_, err := c.App.Writer.Write([]byte(v.String() + "\n"))
	return err
}
