package edgefn

import "fmt"

// Reason is why an invocation failed. Callers act on it with errors.As on a
// *Failure, never by matching strings.
type Reason string

// The failure reasons.
const (
	// ReasonTimeout: the function ran past its deadline.
	ReasonTimeout Reason = "timeout"
	// ReasonMemory: the function tried to grow its memory past its cap.
	ReasonMemory Reason = "memory"
	// ReasonTrap: the function trapped (unreachable, out-of-bounds access,
	// division by zero, call depth exceeded, a wild pointer passed to a host
	// import).
	ReasonTrap Reason = "trap"
	// ReasonOutputLimit: the function emitted, published or logged more than
	// its limits allow.
	ReasonOutputLimit Reason = "output_limit"
	// ReasonExit: the function returned non-zero or exited with a non-zero
	// code.
	ReasonExit Reason = "exit"
	// ReasonOutboxFull: the outbox budget is full and its policy is
	// reject_new.
	ReasonOutboxFull Reason = "outbox_full"
	// ReasonQueueFull: the function's queue was full and the event was
	// dropped.
	ReasonQueueFull Reason = "queue_full"
	// ReasonStorage: the outbox could not commit (disk full, I/O error).
	ReasonStorage Reason = "storage"
	// ReasonRejected: the event was refused before the function ran (a
	// dropped file over its trigger's max_size, or not a regular file).
	ReasonRejected Reason = "rejected"
	// ReasonInternal: the agent itself failed to run the function.
	ReasonInternal Reason = "internal"
)

// Failure is the error of a failed invocation.
type Failure struct {
	Reason Reason
	// Message is the guest's own message where there is one (a trap
	// message, an abort message, an exit code), else a description.
	Message string
	// Err is the underlying error, if any.
	Err error
}

func (f *Failure) Error() string {
	if d := f.Detail(); d != "" {
		return string(f.Reason) + ": " + d
	}
	return string(f.Reason)
}

// Detail is the error without its reason: the message and the underlying
// error. Stored failures keep it apart from their reason, so that what
// shows them prints the reason once.
func (f *Failure) Detail() string {
	switch {
	case f.Message != "" && f.Err != nil:
		return fmt.Sprintf("%s: %v", f.Message, f.Err)
	case f.Message != "":
		return f.Message
	case f.Err != nil:
		return f.Err.Error()
	}
	return ""
}

func (f *Failure) Unwrap() error { return f.Err }

// Fail returns a *Failure with a formatted message.
func Fail(r Reason, format string, args ...any) *Failure {
	return &Failure{Reason: r, Message: fmt.Sprintf(format, args...)}
}
