package guest

import "strconv"

// Code is a negative return code of an edgefn host import (ABI v1). It is an
// error, so the codes below work with errors.Is on what the SDK returns.
type Code int32

// The return codes of ABI v1.
const (
	// ErrDenied: the function's grants (allow: in function.yaml) do not
	// permit the call: a topic outside allow.publish, a pin not listed, kv
	// without allow.kv.
	ErrDenied Code = -1
	// ErrOverLimit: a limit of the invocation was reached (max_output,
	// max_publishes, the largest single copy, a key over 1024 bytes).
	ErrOverLimit Code = -2
	// ErrNotFound: no such metadata key or kv key.
	ErrNotFound Code = -3
	// ErrInvalid: an invalid argument (empty or non-UTF-8 key, a topic with
	// wildcards, a QoS over 2, a GPIO level other than 0 or 1).
	ErrInvalid Code = -4
	// ErrUnavailable: the device lacks the thing asked for (the pin, the
	// kv store).
	ErrUnavailable Code = -5
)

// Error implements error.
func (c Code) Error() string {
	switch c {
	case ErrDenied:
		return "denied by grants"
	case ErrOverLimit:
		return "over a limit"
	case ErrNotFound:
		return "not found"
	case ErrInvalid:
		return "invalid argument"
	case ErrUnavailable:
		return "not available on this device"
	}
	return "return code " + strconv.Itoa(int(c))
}

// Error is a failed host call: which import, on what (a key, a topic, a pin),
// and the return code. errors.Is(err, guest.ErrDenied) matches its Code;
// errors.As(err, &e) with e *guest.Error gives the details.
type Error struct {
	// Op is the import that failed: "publish", "kv_get"...
	Op string
	// Arg is the key, topic or pin of the call ("" for emit, which has
	// none).
	Arg string
	// Code is the host's return code.
	Code Code
}

// Error implements error: "edgefn.publish "actuators/x": denied by grants".
func (e *Error) Error() string {
	s := "edgefn." + e.Op
	if e.Op != "emit" { // every other import names something, maybe ""
		s += " " + strconv.Quote(e.Arg)
	}
	return s + ": " + e.Code.Error()
}

// Unwrap returns the Code, for errors.Is.
func (e *Error) Unwrap() error { return e.Code }

// check turns a host return code into nil (rc >= 0) or an *Error.
func check(op, arg string, rc int32) error {
	if rc >= 0 {
		return nil
	}
	return &Error{Op: op, Arg: arg, Code: Code(rc)}
}

// Level is the level of a log line.
type Level int32

// Log levels of ABI v1.
const (
	LevelDebug Level = 0
	LevelInfo  Level = 1
	LevelWarn  Level = 2
	LevelError Level = 3
)
