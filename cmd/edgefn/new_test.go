package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/examples"
	"github.com/edgefn/edgefn/internal/manifest"
)

// Every source file of an example is embedded for edgefn new: a file
// added to an example without being added to examples/sources.go would
// be missing from new projects.
// offlineBuildEnv points a build at this machine's caches, which make wasm
// filled (HOME is a temporary directory in these tests), and keeps npm off
// the network: a cold Go cache compiles the runtime for minutes, and the
// build: lines must work offline.
func offlineBuildEnv() []string {
	env := []string{"npm_config_offline=true"}
	if b, err := exec.Command("go", "env", "GOCACHE").Output(); err == nil {
		env = append(env, "GOCACHE="+strings.TrimSpace(string(b)))
	}
	if b, err := exec.Command("npm", "config", "get", "cache").Output(); err == nil {
		env = append(env, "npm_config_cache="+strings.TrimSpace(string(b)))
	}
	return env
}

// templateManifest reads a new project's manifest: it names the function,
// its module is NAME.wasm, and it claims no pin and only NAME/... topics,
// so that projects from every template deploy side by side.
func templateManifest(t *testing.T, proj, name string) *edgefn.Manifest {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(proj, "function.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse("function.yaml", src)
	if err != nil || m.Name != name || m.Wasm != "./"+name+".wasm" {
		t.Fatalf("manifest: %v %+v", err, m)
	}
	if strings.Contains(string(src), "GPIO") || len(m.Allow.GPIOWrite)+len(m.Allow.GPIORead) != 0 {
		t.Errorf("the template claims pins:\n%s", src)
	}
	if len(m.Triggers) == 0 {
		t.Fatalf("no trigger:\n%s", src)
	}
	for _, tr := range m.Triggers {
		if tr.Kind() != edgefn.SourceMQTT || !strings.HasPrefix(tr.MQTT, name+"/") {
			t.Errorf("trigger %+v: want an MQTT topic under %s/", tr, name)
		}
	}
	for _, p := range m.Allow.Publish {
		if !strings.HasPrefix(p, name+"/") {
			t.Errorf("allow.publish %q: want a topic under %s/", p, name)
		}
	}
	return m
}

func TestTemplatesHoldEveryExampleFile(t *testing.T) {
	for lang, ex := range templateLangs {
		src := filepath.Join("..", "..", "examples", ex)
		err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if d.Name() == "node_modules" {
					return filepath.SkipDir
				}
				return nil
			}
			if strings.HasSuffix(p, ".wasm") || strings.HasPrefix(d.Name(), ".") {
				return nil
			}
			rel, _ := filepath.Rel(filepath.Join("..", "..", "examples"), p)
			want, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			got, err := examples.Sources.ReadFile(filepath.ToSlash(rel))
			if err != nil {
				t.Errorf("%s: examples/%s is not embedded: add it to examples/sources.go", lang, rel)
			} else if !bytes.Equal(got, want) {
				t.Errorf("%s: embedded %s differs from the file", lang, rel)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// The proof of the function author's loop, with the real binary, for every
// language edgefn new offers: new → build (the manifest's build: line,
// offline) → run function.yaml → deploy to a real agent process → a real
// MQTT message (mosquitto_pub, the embedded broker) → the record at the
// HTTP uplink's receiver. One agent serves every language; the projects
// build in parallel.
func TestNewProjects(t *testing.T) {
	c := newCLI(t)
	dir := t.TempDir()
	cloud := newReceiver(t)
	agent := startAgent(t, t.TempDir(), cloud.srv.URL, agentOpts{})
	c.login(agent)
	env := offlineBuildEnv()
	cases := []struct {
		lang, data, want string
		tool             string
		slow             bool
	}{
		{lang: "wat", data: "hi", want: "hi", tool: "wat2wasm"},
		{lang: "c", data: "21.5", want: `"F":70.70`, tool: "clang"},
		{lang: "rust", data: "press", want: `"presses":1`, tool: "/usr/bin/rustc"},
		{lang: "as", data: "23.4", want: `"ema"`, tool: "npm"},
		{lang: "go", data: `{"celsius": 31}`, want: `"alert":true`, tool: "go", slow: true},
	}
	for _, tc := range cases {
		if _, ok := templateLangs[tc.lang]; !ok {
			t.Errorf("--lang %s is not offered any more", tc.lang)
		}
	}
	if len(cases) != len(templateLangs) {
		t.Errorf("%d languages tested, edgefn new offers %d", len(cases), len(templateLangs))
	}
	t.Run("lang", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.lang, func(t *testing.T) {
				t.Parallel()
				// Builds run side by side on a shared machine: minutes, not
				// the 60s a CLI command gets elsewhere.
				c := &cliEnv{t: t, home: c.home, env: c.env, timeout: 5 * time.Minute}
				name := "my-" + tc.lang
				out, errOut, code := c.runIn(dir, nil, "new", name, "--lang", tc.lang)
				if code != 0 {
					t.Fatalf("exit %d: %s %s", code, out, errOut)
				}
				proj := filepath.Join(dir, name)
				m := templateManifest(t, proj, name)
				// The lines new prints are the ones this test runs.
				pub := fmt.Sprintf("mosquitto_pub -q 1 -t %s -m '%s'", sampleTopic(m.Triggers[0].MQTT), tc.data)
				for _, want := range []string{"edgefn build " + name, fmt.Sprintf("edgefn run %s/function.yaml --data '%s'", name, tc.data),
					"edgefn deploy " + name + "/function.yaml", pub, "edgefn tail '" + name + "/#'", "edgefn outbox peek " + name} {
					if !strings.Contains(out, "\n  "+want) {
						t.Errorf("new does not print %q:\n%s", want, out)
					}
				}
				readme, _ := os.ReadFile(filepath.Join(proj, "README.md"))
				if strings.Contains(string(readme), templateLangs[tc.lang]) || strings.Contains(string(readme), "repository root") ||
					!strings.Contains(string(readme), "edgefn build") {
					t.Errorf("README.md speaks of the example, not the project:\n%s", readme)
				}
				if tc.slow && testing.Short() {
					t.Skip("builds a Go module: skipped with -short")
				}
				if _, err := exec.LookPath(tc.tool); err != nil {
					t.Skipf("%s not installed", tc.tool)
				}
				// The manifest's build: line, offline, then the module
				// checked against the manifest.
				if out, errOut, code := c.runIn(dir, env, "build", name); code != 0 || !strings.Contains(out, "ABI v1 ok") {
					t.Fatalf("build: exit %d: %s %s", code, out, errOut)
				}
				// A generous timeout: the cold start compiles the module on
				// a shared CI machine.
				args := []string{"run", name + "/function.yaml", "--timeout", "5s", "--data", tc.data}
				out, errOut, code = c.runIn(dir, nil, args...)
				if code != 0 || !strings.Contains(out, tc.want) {
					t.Errorf("run: exit %d: %s %s", code, out, errOut)
				}
				if tc.lang == "go" { // guest.Env reads the manifest's env (--env here)
					out, errOut, code = c.runIn(dir, nil, append(args, "--env", "THRESHOLD=40")...)
					if code != 0 || !strings.Contains(out, `"threshold":40,"alert":false`) {
						t.Errorf("run --env THRESHOLD=40: exit %d: %s %s", code, out, errOut)
					}
				}
				// Deployed beside the other languages' projects (no pin or
				// topic in common), a message on its topic becomes a
				// record at the cloud. The template's deadline is a
				// device's (20-50ms, _initialize included); this shared
				// machine builds the other projects meanwhile, so the
				// deployed copy gets 5s, as run got --timeout 5s.
				mf := filepath.Join(proj, "function.yaml")
				src, _ := os.ReadFile(mf)
				if err := os.WriteFile(mf, regexp.MustCompile(`timeout: \d+ms`).ReplaceAll(src, []byte("timeout: 5s")), 0o644); err != nil {
					t.Fatal(err)
				}
				if out, errOut, code := c.runIn(proj, nil, "deploy", "function.yaml"); code != 0 {
					t.Fatalf("deploy: exit %d: %s %s", code, out, errOut)
				}
				publish(t, agent.Broker, sampleTopic(m.Triggers[0].MQTT), []string{tc.data})
				arrived := func() bool {
					for _, r := range cloud.snapshot() {
						if r.Function == name && strings.Contains(r.payload(), tc.want) {
							return true
						}
					}
					return false
				}
				for deadline := time.Now().Add(60 * time.Second); !arrived(); time.Sleep(50 * time.Millisecond) {
					if time.Now().After(deadline) {
						logs, _, _ := c.run("logs", name)
						t.Fatalf("no record of %s at the cloud after 60s; its logs:\n%s\nthe cloud has %+v", name, logs, cloud.snapshot())
					}
				}
			})
		}
	})
	if _, errOut, code := c.runIn(dir, nil, "new", "my-wat", "--lang", "wat"); code != 1 || !strings.Contains(errOut, "not empty") {
		t.Errorf("new over an existing project: exit %d: %s", code, errOut)
	}
	for _, args := range [][]string{{"new", "x"}, {"new", "Bad Name", "--lang", "go"}, {"new", "x", "--lang", "cobol"}, {"new"}} {
		if _, errOut, code := c.runIn(dir, nil, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2: %s", args, code, errOut)
		}
	}
	if out, _, code := c.run("completion", "bash"); code != 0 || !strings.Contains(out, "complete -o") {
		t.Errorf("completion bash: exit %d: %s", code, out)
	}
	if _, _, code := c.run("completion", "fish"); code != 2 {
		t.Errorf("completion fish: exit %d, want 2", code)
	}
}
