package testutil

import (
	"fmt"
	"os"
	"slices"
	"testing"
	"time"
)

const childEnv = "EDGEFN_TESTUTIL_CHILD"

// TestChildProcess is not a test: it is the child of TestStartChild,
// which says in its environment whether to exit or to wait to be killed.
func TestChildProcess(t *testing.T) {
	switch os.Getenv(childEnv) {
	case "":
		t.Skip("child process of TestStartChild")
	case "exit":
		fmt.Println("one")
		fmt.Println("two")
	case "hang":
		fmt.Println("ready")
		time.Sleep(time.Hour) // until killed
	}
}

func TestStartChild(t *testing.T) {
	c := StartChild(t, "TestChildProcess", childEnv+"=exit")
	var got []string
	for l := range c.Lines() {
		got = append(got, l)
	}
	if err := c.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	if !slices.Equal(got, []string{"one", "two", "PASS"}) {
		t.Errorf("child printed %q, want one, two and the test binary's PASS", got)
	}

	c = StartChild(t, "TestChildProcess", childEnv+"=hang")
	if l := <-c.Lines(); l != "ready" {
		t.Fatalf("child printed %q, want ready", l)
	}
	c.Kill9(t)
	for range c.Lines() { // closed once the child is gone
	}
	if code := c.cmd.ProcessState.ExitCode(); code != -1 {
		t.Errorf("killed child: exit code %d, want -1 (ended by a signal)", code)
	}
}
