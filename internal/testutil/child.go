package testutil

import (
	"bufio"
	"os"
	"os/exec"
	"testing"
)

// Child is the running test binary started again as a child process that
// runs one test only: a helper (skipped unless its environment says
// otherwise) that crash tests kill with SIGKILL at a random moment, then
// check that what it reported durable survived.
type Child struct {
	cmd   *exec.Cmd
	lines chan string
}

// StartChild starts the test binary as a child running only the test
// named test, with env ("KEY=value") added to this process's environment.
// Its stderr is this process's; its stdout is read line by line into
// Lines. It is killed when t ends, if it is still running.
func StartChild(t testing.TB, test string, env ...string) *Child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1", "-test.v=false")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = pw
	err = cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		t.Fatalf("start child %s: %v", test, err)
	}
	c := &Child{cmd: cmd, lines: make(chan string)}
	stop := make(chan struct{})
	go func() {
		defer close(c.lines)
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			select {
			case c.lines <- sc.Text():
			case <-stop: // the test ended without reading everything
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		_ = cmd.Process.Kill()
	})
	return c
}

// Lines returns the child's stdout, one line at a time; it is closed at
// the end of the output (the child exited or was killed).
func (c *Child) Lines() <-chan string { return c.lines }

// Kill9 kills the child with SIGKILL (no chance to clean up: a power cut
// for its files) and waits for it to end.
func (c *Child) Kill9(t testing.TB) {
	t.Helper()
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill -9 child: %v", err)
	}
	_ = c.cmd.Wait()
}

// Wait waits for the child to exit by itself and returns how it ended.
// Lines must be read to the end first, or the child may block writing.
func (c *Child) Wait() error { return c.cmd.Wait() }
