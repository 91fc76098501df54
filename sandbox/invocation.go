package sandbox

import (
	"bytes"
	"context"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/edgefn/edgefn"
)

// invocation is the state of one event's run: what it has asked for so far
// and what it has spent of its limits.
type invocation struct {
	res      Result // handed to the caller
	f        *Function
	ev       edgefn.Event
	parent   context.Context
	deadline time.Time

	hostCtx    context.Context // with the deadline, made on first KV/GPIO use
	hostCancel context.CancelFunc

	effects     []edgefn.Effect
	logs        []edgefn.LogLine
	logsDropped int
	logBytes    int64
	outBytes    int64
	publishes   int
	// overLimit is the first output limit the guest hit; the invocation
	// fails with output_limit.
	overLimit string
	pending   map[string]pendingKV
	// stderrTail keeps the end of what the guest wrote to stderr, for
	// failure messages.
	stderrTail []byte
}

type pendingKV struct {
	value   []byte
	deleted bool
}

const stderrTailMax = 256

// ctxForHost returns a context carrying the invocation's deadline for host
// calls that may block (KV, GPIO).
func (inv *invocation) ctxForHost() context.Context {
	if inv.hostCtx == nil {
		inv.hostCtx, inv.hostCancel = context.WithDeadline(inv.parent, inv.deadline)
	}
	return inv.hostCtx
}

// finish copies what the invocation collected into res: effects only on
// success.
func (inv *invocation) finish(res *Result) {
	if inv.hostCancel != nil {
		inv.hostCancel()
	}
	if res.Err == nil {
		res.Effects = inv.effects
	}
	res.Logs = inv.logs
	res.LogsDropped = inv.logsDropped
}

// addLog records a log line within the log budget; past it lines are
// dropped and counted.
func (inv *invocation) addLog(level edgefn.LogLevel, msg []byte) {
	if inv.logBytes+int64(len(msg)) > int64(inv.f.spec.Limits.MaxLog) {
		inv.logsDropped++
		return
	}
	inv.logBytes += int64(len(msg))
	inv.logs = append(inv.logs, edgefn.LogLine{Time: time.Now(), Level: level, Message: toValidUTF8(msg)})
}

func toValidUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// output charges n bytes of emitted or published output; false (and the
// invocation marked over its limit) when it does not fit.
func (inv *invocation) output(n int, what string) bool {
	max := int64(inv.f.spec.Limits.MaxOutput)
	if inv.outBytes+int64(n) > max {
		inv.limit(what + " over limits.max_output " + inv.f.spec.Limits.MaxOutput.String())
		return false
	}
	inv.outBytes += int64(n)
	return true
}

func (inv *invocation) limit(msg string) {
	if inv.overLimit == "" {
		inv.overLimit = msg
	}
}

func (inv *invocation) noteStderr(p []byte) {
	if len(p) >= stderrTailMax {
		inv.stderrTail = append(inv.stderrTail[:0], p[len(p)-stderrTailMax:]...)
		return
	}
	inv.stderrTail = append(inv.stderrTail, p...)
	if n := len(inv.stderrTail); n > stderrTailMax {
		inv.stderrTail = append(inv.stderrTail[:0], inv.stderrTail[n-stderrTailMax:]...)
	}
}

// stderrNote is ": stderr: <tail>" when the guest wrote to stderr.
func (inv *invocation) stderrNote() string {
	if inv == nil {
		return ""
	}
	t := bytes.TrimSpace(inv.stderrTail)
	if len(t) == 0 {
		return ""
	}
	return "; stderr: " + toValidUTF8(t)
}

// guestWriter takes what a guest writes to stdout or stderr (WASI fd 1 and
// 2) and turns complete lines into log lines of the current invocation.
type guestWriter struct {
	inst    *instance
	stdout  bool
	partial []byte
}

const maxLine = 4 << 10

func (w *guestWriter) Write(p []byte) (int, error) {
	inv := w.inst.inv
	if inv == nil {
		return len(p), nil
	}
	if !w.stdout {
		inv.noteStderr(p)
	}
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if len(w.partial)+len(p) > maxLine {
				w.flushTo(inv, p)
			} else {
				w.partial = append(w.partial, p...)
			}
			break
		}
		w.flushTo(inv, p[:i])
		p = p[i+1:]
	}
	return n, nil
}

func (w *guestWriter) flushTo(inv *invocation, tail []byte) {
	line := append(w.partial, tail...)
	w.partial = w.partial[:0]
	inv.addLog(edgefn.LogInfo, bytes.TrimRight(line, "\r"))
}

// flush logs a final line without a newline.
func (w *guestWriter) flush() {
	if inv := w.inst.inv; inv != nil && len(w.partial) > 0 {
		w.flushTo(inv, nil)
	}
	w.partial = w.partial[:0]
}

// capWriter collects a command's stdout up to max bytes.
type capWriter struct {
	buf  []byte
	max  int
	over bool
}

func (w *capWriter) Write(p []byte) (int, error) {
	if len(w.buf)+len(p) > w.max {
		w.over = true
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}
