package testutil

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// AgentReady bounds how long StartAgent waits for the agent's ready
// banner: a guard against a hang, not a measurement.
const AgentReady = 90 * time.Second

// Agent is `edgefn agent` running as a child process: a real process that
// a test can stop, interrupt or kill as a power cut would.
type Agent struct {
	Cmd *exec.Cmd
	// From the ready banner: the admin API's URL, its certificate's
	// fingerprint and the embedded broker's address ("" when the banner
	// has no such line).
	AdminURL, Fingerprint, Broker string
	// Stderr is what the agent logged so far.
	Stderr *Buffer
	done   chan struct{}
	err    error
	killed atomic.Bool
}

// StartAgent runs `bin agent --config config` and returns once the agent
// printed its ready banner, failing the test if it exits first or is not
// ready within AgentReady. The agent is killed, if still running, when the
// test ends.
func StartAgent(t testing.TB, bin, config string) *Agent {
	t.Helper()
	a := &Agent{Cmd: exec.Command(bin, "agent", "--config", config), Stderr: &Buffer{}, done: make(chan struct{})}
	a.Cmd.Stderr = a.Stderr
	stdout, err := a.Cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			key, value, _ := strings.Cut(line, ":")
			value = strings.TrimSuffix(strings.TrimSpace(value), " (embedded)")
			switch key {
			case "admin API":
				a.AdminURL = value
			case "certificate":
				a.Fingerprint = value
			case "MQTT broker":
				a.Broker = value
			case "data dir":
				close(ready)
			}
		}
		a.err = a.Cmd.Wait()
		close(a.done)
	}()
	t.Cleanup(a.Kill)
	select {
	case <-ready:
	case <-a.done:
		t.Fatalf("agent exited before it was ready (%v):\n%s", a.err, a.Stderr)
	case <-time.After(AgentReady):
		a.Kill()
		t.Fatalf("agent not ready after %s:\n%s", AgentReady, a.Stderr)
	}
	return a
}

// Done is closed when the process has exited; Err is then what waiting
// for it returned (nil for exit status 0).
func (a *Agent) Done() <-chan struct{} { return a.done }

// Err is the process's exit error, once Done is closed.
func (a *Agent) Err() error {
	<-a.done
	return a.err
}

// Stop sends SIGTERM and waits for a clean exit (status 0) within 60s,
// failing the test otherwise: an agent that exited on its own must have
// exited cleanly too. It does nothing after Kill.
func (a *Agent) Stop(t testing.TB) {
	t.Helper()
	if a.killed.Load() {
		return
	}
	_ = a.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
		if a.err != nil {
			t.Errorf("agent exit after SIGTERM: %v\n%s", a.err, a.Stderr)
		}
	case <-time.After(60 * time.Second):
		a.Kill()
		t.Errorf("agent did not stop within 60s of SIGTERM:\n%s", a.Stderr)
	}
}

// Kill kills the process (SIGKILL), as a power cut would, and waits for it
// to be gone.
func (a *Agent) Kill() {
	a.killed.Store(true)
	_ = a.Cmd.Process.Signal(syscall.SIGKILL)
	<-a.done
}

// BuildEdgefn builds the edgefn binary from the package at pkg ("." or
// "../cmd/edgefn", relative to the test's package) into a new temporary
// directory; remove deletes that directory.
func BuildEdgefn(pkg string) (bin string, remove func(), err error) {
	dir, err := os.MkdirTemp("", "edgefn-bin-")
	if err != nil {
		return "", nil, err
	}
	remove = func() { os.RemoveAll(dir) }
	bin = filepath.Join(dir, "edgefn")
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		remove()
		return "", nil, fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin, remove, nil
}
