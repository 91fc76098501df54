package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/gateway/api"
)

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
	req := api.InvokeRequest{Payload: payload, Source: c.String("source"), Subject: c.String("subject")}
	for _, m := range c.StringSlice("meta") {
		k, v, ok := strings.Cut(m, "=")
		if !ok || k == "" {
			return usagef("invoke: --meta %q: want KEY=VALUE", m)
		}
		if req.Meta == nil {
			req.Meta = map[string]string{}
		}
		req.Meta[k] = v
	}
	if s := req.Source; s != "" && !edgefn.Source(s).Valid() {
		return usagef("invoke: --source %q: want mqtt, gpio, timer or http", s)
	}
	r, err := connect(c)
	if err != nil {
		return err
	}
	name := c.Args().First()
	resp, err := r.Invoke(c.Context, name, req)
	if err != nil {
		return fmt.Errorf("invoke %s: %w", name, err)
	}
	return printInvocation(c, resp, "see edgefn logs "+name)
}

// printInvocation prints what an invocation did (invoke and run), and
// returns failedError when it failed; hint says where to look then.
func printInvocation(c *cli.Context, inv api.Invocation, hint string) error {
	if c.Bool("json") {
		if err := printJSON(c.App.Writer, inv); err != nil {
			return err
		}
	} else {
		printInvocationText(c.App.Writer, inv)
	}
	if inv.Outcome != "ok" {
		if !c.Bool("json") {
			fmt.Fprintf(c.App.ErrWriter, "edgefn: %s %s: the function failed (%s); %s\n", c.Command.Name, inv.Function, inv.Outcome, hint)
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

func printInvocationText(w io.Writer, r api.Invocation) {
	start := "warm"
	if r.Cold {
		start = "cold"
	}
	o := failText(r.Outcome, r.Message)
	head := r.Function
	if r.Version > 0 {
		head += fmt.Sprintf(" version %d", r.Version)
	}
	mem := ""
	if r.MemoryBytes > 0 {
		mem = ", memory " + edgefn.Size(r.MemoryBytes).String()
	}
	fmt.Fprintf(w, "%s: %s (%s, %s start%s)\n", head, o, roundDur(api.Duration(r.DurationMS)), start, mem)
	tw := newTable(w)
	for _, rec := range r.Records {
		id := rec.ID
		if id == "" {
			id = "(not committed)"
		}
		fmt.Fprintf(tw, "record %s\t%s\n", id, rec.Text())
	}
	for _, p := range r.Published {
		fmt.Fprintf(tw, "publish %s (qos %d)\t%s\n", p.Topic, p.QoS, p.Text())
	}
	for _, k := range r.KV {
		fmt.Fprintf(tw, "kv_%s %s\t%s\n", k.Op, k.Key, k.Text())
	}
	for _, g := range r.GPIO {
		lv := "low"
		if g.High {
			lv = "high"
		}
		fmt.Fprintf(tw, "gpio_write %s\t%s\n", g.Pin, lv)
	}
	for _, l := range r.Logs {
		fmt.Fprintf(tw, "log %s\t%s\n", l.Level, l.Message)
	}
	if r.LogsDropped > 0 {
		fmt.Fprintf(tw, "logs dropped\t%d (over max_log)\n", r.LogsDropped)
	}
	_ = tw.Flush()
}

func gpioLsAction(c *cli.Context) error {
	g, printed, err := fetch(c, func(r *api.Client) (api.GPIO, error) { return r.GPIO(c.Context) })
	if printed || err != nil {
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
}

func gpioPulseAction(c *cli.Context) error {
	if w := c.Duration("width"); w <= 0 || w > 10*time.Second {
		return usagef("gpio pulse: --width %s: want more than 0 and up to 10s", w)
	}
	return gpioPost(c, func(r *api.Client, pin string) (api.PinChange, error) {
		return r.Pulse(c.Context, pin, c.Duration("width"))
	}, fmt.Sprintf("pulsed %s for %s", c.Args().First(), c.Duration("width")))
}

func gpioSetAction(c *cli.Context) error {
	var high bool
	switch strings.ToLower(c.Args().Get(1)) {
	case "high", "1", "on":
		high = true
	case "low", "0", "off":
	default:
		return usagef("gpio set: level %q: want high or low", c.Args().Get(1))
	}
	return gpioPost(c, func(r *api.Client, pin string) (api.PinChange, error) {
		return r.SetPin(c.Context, pin, high)
	}, fmt.Sprintf("%s set %s", c.Args().First(), strings.ToLower(c.Args().Get(1))))
}

func gpioPost(c *cli.Context, call func(*api.Client, string) (api.PinChange, error), done string) error {
	r, err := connect(c)
	if err != nil {
		return err
	}
	pin := c.Args().First()
	out, err := call(r, pin)
	if err != nil {
		if api.IsNotFound(err) {
			return fmt.Errorf("gpio %s: the agent has no GPIO injection (gpio.backend must be simulated)", pin)
		}
		return fmt.Errorf("gpio %s: %w", pin, err)
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, out)
	}
	fmt.Fprintln(c.App.Writer, done)
	return nil
}
