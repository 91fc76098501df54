package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"

	"github.com/tetratelabs/wazero"
	"github.com/urfave/cli/v2"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/internal/manifest"
	"github.com/edgefn/edgefn/sandbox"
)

func buildAction(c *cli.Context) error {
	m, file, err := readManifestArg("build", argOr(c, "."))
	if err != nil {
		return err
	}
	if m.Build == "" {
		return usagef("build: %s has no build: command (add one, e.g. build: wat2wasm -o %s main.wat)", file, m.Wasm)
	}
	dir := filepath.Dir(file)
	fmt.Fprintf(c.App.ErrWriter, "build: (cd %s && %s)\n", dir, m.Build)
	cmd := exec.CommandContext(c.Context, "sh", "-c", m.Build)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = c.App.ErrWriter, c.App.ErrWriter
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(c.App.ErrWriter, "edgefn: build: %s: %v\n", m.Build, err)
		return failedError{}
	}
	wasmPath := manifestWasm(file, m)
	wasm, err := os.ReadFile(wasmPath)
	if err != nil {
		return fmt.Errorf("build: the build: command succeeded but %w", err)
	}
	shape, exports, err := checkModule(c.Context, m, wasm)
	if err != nil {
		return fmt.Errorf("build: %s: %w", wasmPath, err)
	}
	fmt.Fprintf(c.App.Writer, "%s: %s, %s, ABI v1 ok within limits.memory %s\nexports: %v\n",
		wasmPath, edgefn.Size(len(wasm)), shape, m.Limits.WithDefaults(edgefn.DefaultLimits).Memory, exports)
	return nil
}

// checkModule loads wasm as the agent would for m and returns its shape
// and exported functions.
func checkModule(ctx context.Context, m *edgefn.Manifest, wasm []byte) (sandbox.Shape, []string, error) {
	rt, err := sandbox.New(ctx, sandbox.Config{})
	if err != nil {
		return 0, nil, err
	}
	defer rt.Close(context.WithoutCancel(ctx))
	spec := sandbox.Spec{Name: m.Name, Version: 1, Limits: m.Limits.WithDefaults(edgefn.DefaultLimits), Grants: m.Allow, Env: m.Env, Isolation: m.Isolation}
	fn, err := rt.Load(ctx, spec, wasm)
	if err != nil {
		return 0, nil, err
	}
	// The exports, from wazero's interpreter (no code generated).
	w := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer w.Close(context.WithoutCancel(ctx))
	cm, err := w.CompileModule(ctx, wasm)
	if err != nil {
		return 0, nil, err
	}
	var exports []string
	for name := range cm.ExportedFunctions() {
		exports = append(exports, name)
	}
	for name := range cm.ExportedMemories() {
		exports = append(exports, name+" (memory)")
	}
	sort.Strings(exports)
	return fn.Shape(), exports, nil
}

// readManifestArg reads and parses the manifest arg names: a
// function.yaml, or a directory holding one.
func readManifestArg(cmd, arg string) (*edgefn.Manifest, string, error) {
	file := arg
	if st, err := os.Stat(arg); err == nil && st.IsDir() {
		file = filepath.Join(arg, "function.yaml")
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, "", usagef("%s: %v", cmd, err)
	}
	m, err := manifest.Parse(file, data)
	if err != nil {
		return nil, "", usagef("%s: %v", cmd, err)
	}
	return m, file, nil
}

// manifestWasm is the path of the module of the manifest in file.
func manifestWasm(file string, m *edgefn.Manifest) string {
	if filepath.IsAbs(m.Wasm) {
		return m.Wasm
	}
	return filepath.Join(filepath.Dir(file), m.Wasm)
}
