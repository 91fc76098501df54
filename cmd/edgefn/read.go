package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/edgefn/edgefn/gateway"
)

// getJSON fetches path and, with --json, prints the agent's answer as is;
// otherwise it decodes it into out for a table.
func getJSON(c *cli.Context, path string, out any) (printed bool, err error) {
	r, err := connect(c)
	if err != nil {
		return false, err
	}
	var raw json.RawMessage
	if err := r.do(c.Context, "GET", path, nil, "", &raw); err != nil {
		return false, err
	}
	if c.Bool("json") {
		_, err := c.App.Writer.Write(append([]byte(strings.TrimSpace(string(raw))), '\n'))
		return true, err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return false, fmt.Errorf("%s answered %s with unexpected JSON: %v", r.url, path, err)
	}
	return false, nil
}

// functionRow is what ls and status show of a function.
type functionRow struct {
	Name     string    `json:"name"`
	Version  int       `json:"version"`
	Hash     string    `json:"hash"`
	Deployed time.Time `json:"deployed"`
	Triggers []string  `json:"triggers"`
	State    string    `json:"state"`
	Versions []int     `json:"versions"`
	Stats    struct {
		Invocations  int64            `json:"invocations"`
		Errors       map[string]int64 `json:"errors"`
		Cold         int64            `json:"cold"`
		Warm         int64            `json:"warm"`
		P50          time.Duration    `json:"p50_ns"`
		P99          time.Duration    `json:"p99_ns"`
		QueueDepth   int              `json:"queue_depth"`
		Dropped      int64            `json:"dropped"`
		ChainDropped int64            `json:"chain_dropped"`
	} `json:"stats"`
}

func lsCommand() *cli.Command {
	return &cli.Command{
		Name:  "ls",
		Usage: "list the deployed functions: version, triggers, state",
		Flags: remoteFlags(jsonFlag()),
		Action: noArgs(func(c *cli.Context) error {
			var fns []functionRow
			if printed, err := getJSON(c, "/v1/functions", &fns); printed || err != nil {
				return err
			}
			if len(fns) == 0 {
				fmt.Fprintln(c.App.Writer, "no functions deployed (edgefn deploy function.yaml)")
				return nil
			}
			tw := newTable(c.App.Writer)
			fmt.Fprintln(tw, "NAME\tVERSION\tSTATE\tTRIGGERS\tDEPLOYED\tHASH")
			for _, f := range fns {
				trig := strings.Join(f.Triggers, ", ")
				if trig == "" {
					trig = "(invoke only)"
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%.12s\n", f.Name, f.Version, f.State, trig, ago(f.Deployed), f.Hash)
			}
			return tw.Flush()
		}),
	}
}

type statusView struct {
	Gateway   string                     `json:"gateway"`
	Started   time.Time                  `json:"started"`
	Uptime    string                     `json:"uptime"`
	Parts     map[string]json.RawMessage `json:"parts"`
	Outbox    *outboxStats               `json:"outbox"`
	OutboxErr string                     `json:"outbox_error"`
	Functions []functionRow              `json:"functions"`
}

// outboxStats is outbox.Stats as the status API encodes it.
type outboxStats struct {
	Depth, Bytes, MaxBytes int64
	OldestAge              time.Duration
	Drops                  map[string]int64
	DeadLetters            int64
	FileBytes              int64
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show the agent: broker, uplink, outbox, GPIO and per-function counters",
		Flags: remoteFlags(jsonFlag()),
		Action: noArgs(func(c *cli.Context) error {
			var st statusView
			if printed, err := getJSON(c, "/v1/status", &st); printed || err != nil {
				return err
			}
			w := c.App.Writer
			tw := newTable(w)
			fmt.Fprintf(tw, "gateway\t%s (up %s)\n", st.Gateway, st.Uptime)
			names := make([]string, 0, len(st.Parts))
			for n := range st.Parts {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				fmt.Fprintf(tw, "%s\t%s\n", n, describePart(n, st.Parts[n]))
			}
			if _, ok := st.Parts["uplink"]; !ok && st.Outbox != nil {
				fmt.Fprintf(tw, "uplink\tno uplink configured: %d records waiting\n", st.Outbox.Depth)
			}
			switch {
			case st.Outbox != nil:
				o := st.Outbox
				fmt.Fprintf(tw, "outbox\t%d pending (%s of %s), oldest %s, dead letters %d, drops %s\n",
					o.Depth, humanSize(o.Bytes), humanSize(o.MaxBytes), roundDur(o.OldestAge), o.DeadLetters, drops(o.Drops))
			case st.OutboxErr != "":
				fmt.Fprintf(tw, "outbox\terror: %s\n", st.OutboxErr)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if len(st.Functions) == 0 {
				fmt.Fprintln(w, "\nno functions deployed")
				return nil
			}
			fmt.Fprintln(w)
			tw = newTable(w)
			fmt.Fprintln(tw, "FUNCTION\tVERSION\tSTATE\tINVOCATIONS\tERRORS\tP50\tP99\tCOLD\tWARM\tQUEUE\tDROPPED\tCHAIN DROPS")
			for _, f := range st.Functions {
				s := f.Stats
				fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\n", f.Name, f.Version, f.State, s.Invocations,
					errorsByReason(sum(s.Errors), s.Errors), roundDur(s.P50), roundDur(s.P99), s.Cold, s.Warm, s.QueueDepth, s.Dropped, s.ChainDropped)
			}
			return tw.Flush()
		}),
	}
}

// describePart formats one part of the status (broker, uplink, gpio) on a
// line; parts it does not know are shown as their scalar fields.
func describePart(name string, raw json.RawMessage) string {
	switch name {
	case "uplink":
		var u struct {
			Name, Kind, LastError string
			Online, Running       bool
			LastSuccess           time.Time
			Backlog               int64
			OldestAge             time.Duration
			Sent, Failed, Retries int64
			LastDeadLetter        string
		}
		if json.Unmarshal(raw, &u) == nil && u.Kind != "" {
			state := "offline"
			if u.Online {
				state = "online"
			}
			if !u.Running {
				state = "stopped"
			}
			s := fmt.Sprintf("%s %s, sent %d, backlog %d (oldest %s), retries %d, last success %s",
				u.Kind, state, u.Sent, u.Backlog, roundDur(u.OldestAge), u.Retries, ago(u.LastSuccess))
			if u.LastError != "" && !u.Online {
				s += ", last error: " + u.LastError
			}
			return s
		}
	case "timers":
		var ts []struct {
			Spec                   string    `json:"spec"`
			Fired, Skipped, Failed int64     `json:"-"`
			Next                   time.Time `json:"next"`
		}
		var counts []struct {
			Fired   int64 `json:"fired"`
			Skipped int64 `json:"skipped"`
			Failed  int64 `json:"failed"`
		}
		if json.Unmarshal(raw, &ts) == nil && json.Unmarshal(raw, &counts) == nil {
			if len(ts) == 0 {
				return "none"
			}
			parts := make([]string, len(ts))
			for i, t := range ts {
				parts[i] = fmt.Sprintf("%s (fired %d, skipped %d, failed %d, next in %s)", t.Spec,
					counts[i].Fired, counts[i].Skipped, counts[i].Failed, roundDur(time.Until(t.Next)))
			}
			return strings.Join(parts, "; ")
		}
	case "gpio":
		var g struct {
			Backend string            `json:"backend"`
			Pins    []json.RawMessage `json:"pins"`
		}
		if json.Unmarshal(raw, &g) == nil && g.Backend != "" {
			return fmt.Sprintf("%s backend, %d pins (edgefn gpio ls)", g.Backend, len(g.Pins))
		}
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return strings.TrimSpace(string(raw))
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		switch v := m[k].(type) {
		case map[string]any, []any:
		case string:
			if v != "" {
				parts = append(parts, k+" "+v)
			}
		default:
			parts = append(parts, fmt.Sprintf("%s %v", k, v))
		}
	}
	return strings.Join(parts, ", ")
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// errorsByReason formats "3 (timeout 2, trap 1)".
func errorsByReason[K ~string](total int64, m map[K]int64) string {
	if total == 0 {
		return "0"
	}
	keys := make([]string, 0, len(m))
	for k, v := range m {
		if v > 0 {
			keys = append(keys, string(k))
		}
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[K(k)]))
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}

func drops(m map[string]int64) string {
	if sum(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func logsCommand() *cli.Command {
	return &cli.Command{
		Name:      "logs",
		Usage:     "show a function's log lines and failures (from the agent's bounded log ring)",
		ArgsUsage: "NAME",
		Flags: remoteFlags(jsonFlag(),
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing new lines until interrupted"},
			&cli.StringFlag{Name: "since", Usage: "only lines newer than this: a duration (1h) or an RFC 3339 time"},
			&cli.IntFlag{Name: "limit", Aliases: []string{"n"}, Value: 200, Usage: "at most this many of the most recent lines"},
		),
		Action: withArgs(1, 1, "a function NAME", logsAction),
	}
}

func logsAction(c *cli.Context) error {
	if c.Int("limit") < 1 || c.Int("limit") > 5000 {
		return usagef("logs: --limit %d: want 1 to 5000", c.Int("limit"))
	}
	since := c.String("since")
	if since != "" {
		_, derr := time.ParseDuration(since)
		_, terr := time.Parse(time.RFC3339, since)
		if derr != nil && terr != nil {
			return usagef("logs: --since %q: want a duration (1h, 30m) or an RFC 3339 time", since)
		}
	}
	r, err := connect(c)
	if err != nil {
		return err
	}
	name := c.Args().First()
	q := url.Values{"limit": {strconv.Itoa(c.Int("limit"))}}
	if since != "" {
		q.Set("since", since)
	}
	var after int64
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		if after > 0 {
			q.Set("after", strconv.FormatInt(after, 10))
		}
		var resp gateway.LogsResponse
		if err := r.do(c.Context, "GET", "/v1/functions/"+url.PathEscape(name)+"/logs?"+q.Encode(), nil, "", &resp); err != nil {
			if c.Bool("follow") && c.Context.Err() != nil {
				return nil
			}
			return fmt.Errorf("logs %s: %w", name, err)
		}
		for _, e := range resp.Entries {
			if err := printLogEntry(c.App.Writer, e, c.Bool("json")); err != nil {
				return err
			}
		}
		after = max(resp.Last, after)
		if !c.Bool("follow") {
			return nil
		}
		select {
		case <-c.Context.Done():
			return nil
		case <-tick.C:
		}
	}
}

func printLogEntry(w io.Writer, e gateway.LogEntry, asJSON bool) error {
	if asJSON {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	ts := e.Time.Local().Format("2006-01-02 15:04:05.000")
	if e.Reason != "" {
		_, err := fmt.Fprintf(w, "%s  FAIL   %s (event %s)\n", ts, failText(e.Reason, e.Message), e.EventID)
		return err
	}
	_, err := fmt.Fprintf(w, "%s  %-5s  %s\n", ts, e.Level, e.Message)
	return err
}

func usageCommand() *cli.Command {
	return &cli.Command{
		Name:  "usage",
		Usage: "metering per function: invocations, errors, duration, GB-seconds, cold vs warm",
		Description: "Aggregates the invocation records the agent keeps (bounded by its retention).\n" +
			"GB-seconds is the memory cap (GiB) times the duration (s), summed, as clouds bill it.",
		Flags: remoteFlags(jsonFlag(), &cli.StringFlag{Name: "since", Value: "24h", Usage: "period: a duration back from now or an RFC 3339 time"}),
		Action: noArgs(func(c *cli.Context) error {
			var u gateway.UsageResponse
			if printed, err := getJSON(c, "/v1/usage?since="+url.QueryEscape(c.String("since")), &u); printed || err != nil {
				return err
			}
			w := c.App.Writer
			fmt.Fprintf(w, "since %s\n", u.Since.Local().Format("2006-01-02 15:04:05"))
			if len(u.Functions) == 0 {
				fmt.Fprintln(w, "no invocations")
				return nil
			}
			tw := newTable(w)
			fmt.Fprintln(tw, "FUNCTION\tINVOCATIONS\tERRORS\tTOTAL\tP99\tGB-SECONDS\tCOLD\tWARM")
			for _, f := range u.Functions {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%.6f\t%d\t%d\n", f.Function, f.Invocations, errorsByReason(f.Errors, f.ErrorsByReason),
					roundDur(f.TotalDuration), roundDur(f.P99Duration), f.GBSeconds, f.Cold, f.Warm)
			}
			return tw.Flush()
		}),
	}
}

func outboxCommand() *cli.Command {
	return &cli.Command{
		Name:        "outbox",
		Usage:       "the outbox: backlog per function, drops by reason, dead letters",
		Subcommands: []*cli.Command{outboxRecoverCommand()},
		Flags:       remoteFlags(jsonFlag(), &cli.IntFlag{Name: "dead-letters", Value: 20, Usage: "list at most this many dead letters"}),
		Action: noArgs(func(c *cli.Context) error {
			var o gateway.OutboxResponse
			if printed, err := getJSON(c, "/v1/outbox?dead_letters="+strconv.Itoa(max(c.Int("dead-letters"), 0)), &o); printed || err != nil {
				return err
			}
			w := c.App.Writer
			tw := newTable(w)
			fmt.Fprintf(tw, "pending\t%d records, %s of %s, oldest %s\n", o.Depth, humanSize(o.Bytes), humanSize(o.MaxBytes), roundDur(o.OldestAge))
			fmt.Fprintf(tw, "drops\t%s\n", drops(o.Drops))
			fmt.Fprintf(tw, "dead letters\t%d\n", o.DeadCount)
			fmt.Fprintf(tw, "last seq\t%d\n", o.LastSeq)
			fmt.Fprintf(tw, "file\t%s, %d invocation records kept\n", humanSize(o.FileBytes), o.Invocations)
			if err := tw.Flush(); err != nil {
				return err
			}
			if len(o.Functions) > 0 {
				fmt.Fprintln(w)
				tw = newTable(w)
				fmt.Fprintln(tw, "FUNCTION\tPENDING\tBYTES")
				names := make([]string, 0, len(o.Functions))
				for n := range o.Functions {
					names = append(names, n)
				}
				sort.Strings(names)
				for _, n := range names {
					fmt.Fprintf(tw, "%s\t%d\t%s\n", n, o.Functions[n].Depth, humanSize(o.Functions[n].Bytes))
				}
				if err := tw.Flush(); err != nil {
					return err
				}
			}
			if len(o.DeadLetters) > 0 {
				fmt.Fprintln(w)
				tw = newTable(w)
				fmt.Fprintln(tw, "DEAD LETTER\tFUNCTION\tVERSION\tPARKED\tREASON\tPAYLOAD")
				for _, d := range o.DeadLetters {
					p := d.Payload
					if p == "" && d.PayloadBase64 != "" {
						p = "base64:" + d.PayloadBase64
					}
					if len(p) > 60 {
						p = p[:57] + "..."
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", d.ID, d.Function, d.Version, ago(d.At), d.Reason, p)
				}
				return tw.Flush()
			}
			return nil
		}),
	}
}

// failText is "reason: message", or the reason alone when the failure has
// no message ("exit: edgefn_handle returned 1", "queue_full").
func failText(reason, msg string) string {
	if msg == "" {
		return reason
	}
	return reason + ": " + msg
}
