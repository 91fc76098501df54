package sandbox

import (
	"context"
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/edgefn/edgefn"
)

// abiCall encodes one record of the abifuzz guest: the import op mod 10 calls, with args.
func abiCall(op uint32, args ...uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, op)
	for i := 0; i < 5; i++ {
		var a uint32
		if i < len(args) {
			a = args[i]
		}
		b = binary.LittleEndian.AppendUint32(b, a)
	}
	return b
}

// FuzzHostABI calls every edgefn import with random pointers and lengths (the abifuzz guest
// forwards its payload's words as arguments) and checks that the host never panics and that
// every failure is a typed one: a trap naming the import, an output limit or the guest's own
// return code. Crashers go to testdata/fuzz/FuzzHostABI.
func FuzzHostABI(f *testing.F) {
	const (
		topic, pin, key, metaKey = 0x10, 0x30, 0x40, 0x50
		buf, end, past           = 0x1000, 0x10000, 0xffffffff
	)
	seeds := [][]byte{
		abiCall(0, buf, 64),                   // input
		abiCall(1, metaKey, 5, buf, 64),       // meta("env.X")
		abiCall(2, topic, 15),                 // emit
		abiCall(3, topic, 15, buf, 16, 1),     // publish
		abiCall(4, 1, topic, 15),              // log
		abiCall(5, pin, 6, 1),                 // gpio_write
		abiCall(6, pin, 6),                    // gpio_read
		abiCall(7, key, 3, buf, 16),           // kv_get
		abiCall(8, key, 3, topic, 15),         // kv_set
		abiCall(9, key, 3),                    // kv_delete
		abiCall(2, end-4, 8),                  // across the end of memory
		abiCall(3, topic, past, buf, past, 7), // huge lengths, bad qos
		abiCall(7, key, 3, past, past),        // kv_get into nowhere
		abiCall(1, past, 1, buf, 0),           // meta key outside memory
		abiCall(4, past, buf, 0x7fffffff),     // log level and length out of range
		append(abiCall(8, key, 3, 0, 0xffff), abiCall(7, key, 3, 0, 0x10000)...),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	ctx := context.Background()
	r, err := New(ctx, Config{KV: &memKV{data: map[string]string{"abifuzz/key": "value"}}, GPIO: pins{"GPIO17": true}})
	if err != nil {
		f.Fatal(err)
	}
	defer r.Close(ctx)
	spec := testSpec("abifuzz")
	spec.Env = map[string]string{"X": "x"}
	spec.Limits.Timeout = time.Second
	spec.Grants = edgefn.Grants{Publish: []string{"#"}, GPIOWrite: []string{"GPIO17"}, GPIORead: []string{"GPIO17"}, KV: true}
	fn, err := r.Load(ctx, spec, fixture(f, "abifuzz"))
	if err != nil {
		f.Fatal(err)
	}
	defer fn.Close(ctx)
	f.Fuzz(func(t *testing.T, calls []byte) {
		res := fn.Invoke(ctx, event(string(calls)))
		if res.Err == nil {
			return
		}
		fl := res.Failure()
		if fl == nil {
			t.Fatalf("untyped failure: %v", res.Err)
		}
		var re runtime.Error
		if errors.As(fl.Err, &re) || strings.Contains(fl.Message, "recovered by wazero") {
			t.Fatalf("host panic: %v (%v)", fl, fl.Err)
		}
		switch fl.Reason {
		case edgefn.ReasonTrap:
			if !strings.HasPrefix(fl.Message, "edgefn.") {
				t.Fatalf("trap not from a host import: %v (%v)", fl, fl.Err)
			}
		case edgefn.ReasonOutputLimit, edgefn.ReasonTimeout: // a slow machine
		default:
			t.Fatalf("unexpected failure: %v (%v)", fl, fl.Err)
		}
	})
}

// The abifuzz guest does call the imports with its payload's words.
func TestABIFuzzGuest(t *testing.T) {
	f := loadAlone(t, "abifuzz", func(s *Spec) { s.Grants.Publish = []string{"#"} })
	res := f.Invoke(context.Background(), event(string(append(abiCall(2, 0x10, 15), abiCall(3, 0x10, 15, 0x30, 6, 1)...))))
	wantOK(t, res)
	if len(res.Effects) != 2 || string(res.Effects[0].Payload) != "actuators/fan/x" ||
		res.Effects[1].Topic != "actuators/fan/x" || string(res.Effects[1].Payload) != "GPIO17" {
		t.Errorf("effects %+v", res.Effects)
	}
	fl := wantFailure(t, f.Invoke(context.Background(), event(string(abiCall(12, 0xfffc, 8)))), edgefn.ReasonTrap)
	if !strings.HasPrefix(fl.Message, "edgefn.emit: buffer [0xfffc, +8) is outside guest memory") {
		t.Errorf("trap %q", fl.Message)
	}
}
