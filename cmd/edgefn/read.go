package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/edgefn/edgefn/gateway/api"
)

// fetch connects to the agent and calls get; with --json it prints the
// answer (the api type, as the agent sent it) and reports printed.
func fetch[T any](c *cli.Context, get func(*api.Client) (T, error)) (out T, printed bool, err error) {
	r, err := connect(c)
	if err != nil {
		return out, false, err
	}
	if out, err = get(r); err != nil {
		return out, false, err
	}
	if c.Bool("json") {
		return out, true, printJSON(c.App.Writer, out)
	}
	return out, false, nil
}

func lsAction(c *cli.Context) error {
	if c.NArg() == 1 {
		return lsVersions(c, c.Args().First())
	}
	fns, printed, err := fetch(c, func(r *api.Client) ([]api.Function, error) { return r.Functions(c.Context) })
	if printed || err != nil {
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
}

// lsVersions prints one function's stored versions.
func lsVersions(c *cli.Context, name string) error {
	f, printed, err := fetch(c, func(r *api.Client) (api.Function, error) { return r.Function(c.Context, name) })
	if printed || err != nil {
		if err != nil {
			err = fmt.Errorf("ls %s: %w", name, err)
		}
		return err
	}
	w := c.App.Writer
	fmt.Fprintf(w, "%s: version %d active, %s\n", f.Name, f.Version, f.State)
	tw := newTable(w)
	fmt.Fprintln(tw, "VERSION\tACTIVE\tDEPLOYED\tSIGNER\tORIGIN\tHASH\tMODULE SHA256")
	for _, v := range f.Versions {
		active, signer := "", v.Signer
		if v.Active {
			active = "*"
		}
		if signer == "" {
			signer = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%.16s\t%s\t%.12s\t%.12s\n", v.Version, active, v.Deployed.Local().Format("2006-01-02 15:04:05"), signer, v.Origin, v.Hash, v.ModuleSHA256)
	}
	return tw.Flush()
}

func statusAction(c *cli.Context) error {
	st, printed, err := fetch(c, func(r *api.Client) (api.Status, error) { return r.Status(c.Context) })
	if printed || err != nil {
		return err
	}
	w := c.App.Writer
	tw := newTable(w)
	fmt.Fprintf(tw, "gateway\t%s (up %s)\n", st.Gateway, roundDur(time.Duration(st.UptimeMS)*time.Millisecond))
	if st.Broker != nil {
		fmt.Fprintf(tw, "broker\t%s\n", describeBroker(st.Broker))
	}
	if st.GPIO != nil {
		fmt.Fprintf(tw, "gpio\t%s backend, %d pins (edgefn gpio ls)\n", st.GPIO.Backend, len(st.GPIO.Pins))
	}
	fmt.Fprintf(tw, "timers\t%s\n", describeTimers(st.Timers))
	for _, f := range st.Files {
		fmt.Fprintf(tw, "files\t%s\n", describeFileWatch(f))
	}
	for _, u := range st.Uplinks {
		fmt.Fprintf(tw, "uplink\t%s\n", describeUplink(u))
	}
	if len(st.Uplinks) == 0 && st.Outbox != nil {
		fmt.Fprintf(tw, "uplink\tno uplink configured: %d records waiting\n", st.Outbox.Depth)
	}
	switch {
	case st.Outbox != nil:
		o := st.Outbox
		fmt.Fprintf(tw, "outbox\t%d pending (%s of %s), oldest %s, dead letters %d, drops %s\n",
			o.Depth, humanSize(o.Bytes), humanSize(o.MaxBytes), roundDur(time.Duration(o.OldestAgeMS)*time.Millisecond), o.DeadLetterCount, drops(o.Drops))
	case st.OutboxError != "":
		fmt.Fprintf(tw, "outbox\terror: %s\n", st.OutboxError)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(st.Functions) == 0 {
		fmt.Fprintln(w, "\nno functions deployed")
		return nil
	}
	tw = nextTable(w, "FUNCTION\tVERSION\tSTATE\tINVOCATIONS\tERRORS\tP50\tP99\tCOLD\tWARM\tQUEUE\tDROPPED\tCHAIN DROPS")
	for _, f := range st.Functions {
		s := f.Stats
		if s == nil {
			s = &api.FunctionStats{}
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\n", f.Name, f.Version, f.State, s.Invocations,
			errorsByReason(sum(s.Errors), s.Errors), roundDur(api.Duration(s.P50MS)), roundDur(api.Duration(s.P99MS)), s.Cold, s.Warm, s.QueueDepth, s.Dropped, s.ChainDropped)
	}
	return tw.Flush()
}

// describeBroker formats the broker's state on a line.
func describeBroker(b *api.Broker) string {
	if b.Kind == "external" {
		state := "disconnected"
		if b.Connected {
			state = "connected"
		}
		s := fmt.Sprintf("external %s, %s, %d filters, delivered %d, failed %d, reconnects %d", b.Addr, state, b.Subscribed, b.Delivered, b.Failed, b.Reconnects)
		if b.LastError != "" && !b.Connected {
			s += ", last error: " + b.LastError
		}
		return s
	}
	return fmt.Sprintf("embedded %s, %d clients, delivered %d, failed %d, rejected %d", b.Addr, b.Clients, b.Delivered, b.Failed, b.Rejected)
}

// describeUplink formats an uplink's state on a line.
func describeUplink(u api.Uplink) string {
	state := "offline"
	if u.Online {
		state = "online"
	}
	if !u.Running {
		state = "stopped"
	}
	s := fmt.Sprintf("%s %s, sent %d, backlog %d (oldest %s), retries %d, last success %s",
		u.Kind, state, u.Sent, u.Backlog, roundDur(time.Duration(u.OldestAgeMS)*time.Millisecond), u.Retries, ago(u.LastSuccess))
	if u.LastError != "" && !u.Online {
		s += ", last error: " + u.LastError
	}
	return s
}

// describeTimers formats the timers on a line.
func describeTimers(ts []api.Timer) string {
	if len(ts) == 0 {
		return "none"
	}
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = fmt.Sprintf("%s (fired %d, skipped %d, failed %d, next in %s)", t.Spec, t.Fired, t.Skipped, t.Failed, roundDur(time.Until(t.Next)))
	}
	return strings.Join(parts, "; ")
}

// describeFileWatch formats a watched directory on a line.
func describeFileWatch(f api.FileWatch) string {
	s := fmt.Sprintf("%s -> %s (queued %d, processed %d, failed %d, rejected %d)", f.Dir, f.Function, f.Queued, f.Processed, f.Failed, f.Rejected)
	if !f.Watching {
		s += ", not watched"
	}
	if f.Error != "" {
		s += ", error: " + f.Error
	}
	return s
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
	q := api.LogsQuery{Since: since, Limit: c.Int("limit")}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := r.Logs(c.Context, name, q)
		if err != nil {
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
		q.After = max(resp.Last, q.After)
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

func printLogEntry(w io.Writer, e api.LogEntry, asJSON bool) error {
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

func usageAction(c *cli.Context) error {
	u, printed, err := fetch(c, func(r *api.Client) (api.Usage, error) { return r.Usage(c.Context, c.String("since")) })
	if printed || err != nil {
		return err
	}
	w := c.App.Writer
	fmt.Fprintf(w, "since %s\n", u.Since.Local().Format("2006-01-02 15:04:05"))
	tw := tableOf(w, len(u.Functions), "no invocations", "FUNCTION\tINVOCATIONS\tERRORS\tTOTAL\tP99\tGB-SECONDS\tCOLD\tWARM")
	if tw == nil {
		return nil
	}
	for _, f := range u.Functions {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%.6f\t%d\t%d\n", f.Function, f.Invocations, errorsByReason(f.Errors, f.ErrorsByReason),
			roundDur(api.Duration(f.TotalDurationMS)), roundDur(api.Duration(f.P99DurationMS)), f.GBSeconds, f.Cold, f.Warm)
	}
	return tw.Flush()
}

func outboxAction(c *cli.Context) error {
	o, printed, err := fetch(c, func(r *api.Client) (api.Outbox, error) { return r.Outbox(c.Context, max(c.Int("dead-letters"), 0)) })
	if printed || err != nil {
		return err
	}
	w := c.App.Writer
	tw := newTable(w)
	fmt.Fprintf(tw, "pending\t%d records, %s of %s, oldest %s\n", o.Depth, humanSize(o.Bytes), humanSize(o.MaxBytes), roundDur(time.Duration(o.OldestAgeMS)*time.Millisecond))
	fmt.Fprintf(tw, "drops\t%s\n", drops(o.Drops))
	fmt.Fprintf(tw, "dead letters\t%d\n", o.DeadLetterCount)
	fmt.Fprintf(tw, "last seq\t%d\n", o.LastSeq)
	fmt.Fprintf(tw, "file\t%s, %d invocation records kept\n", humanSize(o.FileBytes), o.InvocationRecords)
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(o.Functions) > 0 {
		tw = nextTable(w, "FUNCTION\tPENDING\tBYTES")
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
		tw = nextTable(w, "DEAD LETTER\tFUNCTION\tVERSION\tPARKED\tREASON\tPAYLOAD")
		for _, d := range o.DeadLetters {
			p := d.Text()
			if len(p) > 60 {
				p = p[:57] + "..."
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", d.ID, d.Function, d.Version, ago(d.At), d.Reason, p)
		}
		return tw.Flush()
	}
	return nil
}

// failText is "reason: message", or the reason alone when the failure has
// no message ("exit: edgefn_handle returned 1", "queue_full").
func failText(reason, msg string) string {
	if msg == "" {
		return reason
	}
	return reason + ": " + msg
}

func outboxPeekAction(c *cli.Context) error {
	n := c.Int("n")
	if n < 1 || n > api.MaxPeek {
		return usagef("outbox peek: -n %d: want 1 to %d", n, api.MaxPeek)
	}
	fn := c.Args().First()
	p, printed, err := fetch(c, func(r *api.Client) (api.PendingRecords, error) { return r.PendingRecords(c.Context, fn, n) })
	if printed || err != nil {
		return err
	}
	w := c.App.Writer
	tw := tableOf(w, len(p.Records), "no records waiting", "ID\tFUNCTION\tVERSION\tSUBJECT\tAGE\tSIZE\tPAYLOAD")
	if tw == nil {
		return nil
	}
	for _, rec := range p.Records {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", rec.ID, rec.Function, rec.Version, rec.Subject, ago(rec.Time), humanSize(int64(rec.Size)), clip(rec.Text(), 200))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if p.More {
		fmt.Fprintf(w, "%d of %d waiting shown (-n for more)\n", len(p.Records), p.Depth)
	}
	return nil
}

// clip cuts s to at most n bytes (on a rune boundary), marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// nextTable starts a table below what w printed: a blank line, then
// header.
func nextTable(w io.Writer, header string) *tabwriter.Writer {
	fmt.Fprintln(w)
	tw := newTable(w)
	fmt.Fprintln(tw, header)
	return tw
}

// tableOf starts a table of n rows under header, or prints none and
// returns nil when n is 0.
func tableOf(w io.Writer, n int, none, header string) *tabwriter.Writer {
	if n == 0 {
		fmt.Fprintln(w, none)
		return nil
	}
	tw := newTable(w)
	fmt.Fprintln(tw, header)
	return tw
}
