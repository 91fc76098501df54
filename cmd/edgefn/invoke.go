package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/gateway"
)

func invokeCommand() *cli.Command {
	return &cli.Command{
		Name:      "invoke",
		Usage:     "run a deployed function once on the agent and print what it did",
		ArgsUsage: "NAME",
		Description: "Sends one HTTP event to NAME and waits until its effects are committed. Prints the\n" +
			"outcome, the records it emitted (with their ids), its publishes and its logs.\n" +
			"Exit status 1 when the outcome is not ok.",
		Flags: remoteFlags(jsonFlag(),
			&cli.StringFlag{Name: "data", Aliases: []string{"d"}, Usage: "payload: a string, or @FILE to send FILE's content (@- for stdin)"},
			&cli.StringSliceFlag{Name: "meta", Usage: "event metadata KEY=VALUE (repeatable)"},
			&cli.StringFlag{Name: "subject", Usage: "the event's subject, as a trigger would set it: an MQTT topic, a pin name", DefaultText: "the function name"},
			&cli.StringFlag{Name: "source", Usage: "the event's source: mqtt, gpio, timer or http", DefaultText: "http"},
		),
		Action: withArgs(1, 1, "a function NAME", invokeAction),
	}
}

func invokeAction(c *cli.Context) error {
	var payload []byte
	var err error
	switch d := c.String("data"); {
	case d == "@-":
		if payload, err = readAll(c); err != nil {
			return usagef("invoke: --data @-: %v", err)
		}
	case strings.HasPrefix(d, "@"):
		if payload, err = os.ReadFile(d[1:]); err != nil {
			return usagef("invoke: --data: %v", err)
		}
	default:
		payload = []byte(d)
	}
	q := url.Values{}
	for _, m := range c.StringSlice("meta") {
		k, v, ok := strings.Cut(m, "=")
		if !ok || k == "" {
			return usagef("invoke: --meta %q: want KEY=VALUE", m)
		}
		q.Set(k, v)
	}
	r, err := connect(c)
	if err != nil {
		return err
	}
	r.header = http.Header{}
	if s := c.String("source"); s != "" {
		if !edgefn.Source(s).Valid() {
			return usagef("invoke: --source %q: want mqtt, gpio, timer or http", s)
		}
		r.header.Set("X-Edgefn-Source", s)
	}
	if s := c.String("subject"); s != "" {
		r.header.Set("X-Edgefn-Subject", s)
	}
	name := c.Args().First()
	path := "/v1/functions/" + url.PathEscape(name) + "/invoke"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var raw json.RawMessage
	if err := r.do(c.Context, "POST", path, bytes.NewReader(payload), "application/octet-stream", &raw); err != nil {
		return fmt.Errorf("invoke %s: %w", name, err)
	}
	var resp gateway.InvokeResponse
	if err := json.Unmarshal(raw, &resp); err != nil {
		return fmt.Errorf("invoke %s: unexpected answer: %v", name, err)
	}
	if c.Bool("json") {
		if _, err := c.App.Writer.Write(append(bytes.TrimSpace(raw), '\n')); err != nil {
			return err
		}
	} else {
		printInvoke(c, resp)
	}
	if resp.Outcome != "ok" {
		if !c.Bool("json") {
			fmt.Fprintf(c.App.ErrWriter, "edgefn: invoke %s: the function failed (%s); see edgefn logs %s\n", name, resp.Outcome, name)
		}
		return failedError{}
	}
	return nil
}

func readAll(c *cli.Context) ([]byte, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(c.App.Reader)
	return b.Bytes(), err
}

func printInvoke(c *cli.Context, r gateway.InvokeResponse) {
	w := c.App.Writer
	start := "warm"
	if r.Cold {
		start = "cold"
	}
	o := failText(r.Outcome, r.Message)
	d := time.Duration(r.DurationMS * float64(time.Millisecond))
	fmt.Fprintf(w, "%s version %d: %s (%s, %s start)\n", r.Function, r.Version, o, roundDur(d), start)
	tw := newTable(w)
	for _, rec := range r.Records {
		p := rec.Payload
		if rec.PayloadB4 != "" {
			p = "base64:" + rec.PayloadB4
		}
		fmt.Fprintf(tw, "record %s\t%s\n", rec.ID, p)
	}
	for _, p := range r.Published {
		fmt.Fprintf(tw, "publish %s (qos %d)\t%s\n", p.Topic, p.QoS, p.Payload)
	}
	for _, l := range r.Logs {
		fmt.Fprintf(tw, "log %s\t%s\n", l.Level, l.Message)
	}
	_ = tw.Flush()
}

func gpioCommand() *cli.Command {
	return &cli.Command{
		Name:  "gpio",
		Usage: "list pins and inject edges on the agent's simulated GPIO chip",
		Subcommands: []*cli.Command{
			{
				Name:  "ls",
				Usage: "list the pins and their levels",
				Flags: remoteFlags(jsonFlag()),
				Action: noArgs(func(c *cli.Context) error {
					var g struct {
						Backend string `json:"backend"`
						Pins    []struct {
							Name string `json:"name"`
							High bool   `json:"high"`
						} `json:"pins"`
					}
					if printed, err := getJSON(c, "/v1/gpio", &g); printed || err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "backend %s\n", g.Backend)
					tw := newTable(c.App.Writer)
					fmt.Fprintln(tw, "PIN\tLEVEL")
					for _, p := range g.Pins {
						lv := "low"
						if p.High {
							lv = "high"
						}
						fmt.Fprintf(tw, "%s\t%s\n", p.Name, lv)
					}
					return tw.Flush()
				}),
			},
			{
				Name:      "pulse",
				Usage:     "drive a pin to the opposite level for --width, then back (two edges)",
				ArgsUsage: "PIN",
				Flags:     remoteFlags(&cli.DurationFlag{Name: "width", Value: 10 * time.Millisecond, Usage: "how long the pulse lasts (up to 10s)"}),
				Action: withArgs(1, 1, "a PIN such as GPIO17", func(c *cli.Context) error {
					if w := c.Duration("width"); w <= 0 || w > 10*time.Second {
						return usagef("gpio pulse: --width %s: want more than 0 and up to 10s", w)
					}
					return gpioPost(c, "/pulse?width="+url.QueryEscape(c.Duration("width").String()),
						fmt.Sprintf("pulsed %s for %s", c.Args().First(), c.Duration("width")))
				}),
			},
			{
				Name:      "set",
				Usage:     "drive a simulated input pin high or low (an edge when it changes)",
				ArgsUsage: "PIN high|low",
				Flags:     remoteFlags(),
				Action: withArgs(2, 2, "PIN and high or low", func(c *cli.Context) error {
					var high bool
					switch strings.ToLower(c.Args().Get(1)) {
					case "high", "1", "on":
						high = true
					case "low", "0", "off":
					default:
						return usagef("gpio set: level %q: want high or low", c.Args().Get(1))
					}
					return gpioPost(c, fmt.Sprintf("/level?high=%t", high), fmt.Sprintf("%s set %s", c.Args().First(), strings.ToLower(c.Args().Get(1))))
				}),
			},
		},
	}
}

func gpioPost(c *cli.Context, suffix, done string) error {
	r, err := connect(c)
	if err != nil {
		return err
	}
	pin := c.Args().First()
	if err := r.do(c.Context, "POST", "/v1/gpio/"+url.PathEscape(pin)+suffix, nil, "", nil); err != nil {
		if ae, ok := err.(*apiError); ok && ae.Status == 404 {
			return fmt.Errorf("gpio %s: the agent has no GPIO injection (gpio.backend must be simulated)", pin)
		}
		return fmt.Errorf("gpio %s: %w", pin, err)
	}
	fmt.Fprintln(c.App.Writer, done)
	return nil
}
