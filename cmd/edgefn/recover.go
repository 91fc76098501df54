package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/edgefn/edgefn/gateway"
	"github.com/edgefn/edgefn/sync/outbox"
)

func outboxRecoverAction(c *cli.Context, cfg *gateway.Config) error {
	path := filepath.Join(cfg.DataDir, "outbox.db")
	s, err := outbox.Open(context.Background(), outbox.Config{Path: path, Gateway: cfg.GatewayID})
	switch {
	case err == nil:
		st, serr := s.Stats(context.Background())
		s.Close()
		if !c.Bool("force") {
			if serr == nil {
				return fmt.Errorf("%s is healthy (%d records pending): nothing to recover (--force moves it aside anyway)", path, st.Depth)
			}
			return fmt.Errorf("%s opens but cannot be read (%v): stop the agent and use --force to move it aside", path, serr)
		}
	case errors.Is(err, outbox.ErrCorrupt):
		fmt.Fprintf(c.App.ErrWriter, "%v\n", err)
	default:
		return fmt.Errorf("%w (not a corruption: fix the cause, e.g. permissions or disk space, rather than moving it aside)", err)
	}
	moved, err := outbox.MoveAside(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "moved %s to %s; the agent will start with a fresh outbox\n", path, moved)
	return nil
}
