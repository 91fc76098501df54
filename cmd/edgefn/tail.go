package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/edgefn/edgefn/gateway/api"
)

func tailAction(c *cli.Context) error {
	filter := c.Args().First()
	if filter == "" {
		filter = "#"
	}
	n := c.Int("n")
	if n < 0 || n > 256 {
		return usagef("tail: -n %d: want 0 to 256", n)
	}
	r, err := connect(c)
	if err != nil {
		return err
	}
	resp, err := r.Traffic(c.Context, filter, n)
	if err != nil {
		if c.Context.Err() != nil {
			return nil
		}
		var se *api.StatusError
		if errors.As(err, &se) {
			return fmt.Errorf("tail %s: %w", filter, err)
		}
		return err
	}
	defer resp.Body.Close()
	err = api.ReadEvents(resp.Body, func(ev api.Event) error {
		switch ev.Name {
		case "message":
			if c.Bool("json") {
				_, err := fmt.Fprintln(c.App.Writer, ev.Data)
				return err
			}
			var m api.TrafficMessage
			if err := json.Unmarshal([]byte(ev.Data), &m); err != nil {
				return fmt.Errorf("tail: the agent sent something that is not a message: %v", err)
			}
			return printTraffic(c, m)
		case "missed":
			fmt.Fprintf(c.App.ErrWriter, "edgefn: tail: %s messages missed (printing too slowly)\n", ev.Data)
		}
		return nil
	})
	if c.Context.Err() != nil {
		return nil // Ctrl-C: a normal end
	}
	if err == nil {
		err = fmt.Errorf("tail: the agent at %s closed the stream", r.URL)
	}
	return err
}

func printTraffic(c *cli.Context, m api.TrafficMessage) error {
	p := m.Text()
	if m.Truncated {
		p += fmt.Sprintf(" … (%d bytes)", m.Size)
	}
	flags := ""
	if m.Retain {
		flags += " retained"
	}
	if m.Origin != "" {
		flags += " from " + m.Origin
	}
	_, err := fmt.Fprintf(c.App.Writer, "%s  %s (qos %d%s)  %s\n", m.Time.Local().Format("15:04:05.000"), m.Topic, m.QoS, flags, p)
	return err
}
