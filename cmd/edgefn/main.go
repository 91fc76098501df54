// Command edgefn is the edgefn agent and its workstation CLI in one binary.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal, shutdown is under way and bounded; a second
	// signal gets the default action and ends the process at once.
	go func() { <-ctx.Done(); stop() }()
	os.Exit(run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr))
}
