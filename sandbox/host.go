package sandbox

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/edgefn/edgefn"
	"github.com/tetratelabs/wazero/api"
)

// Return codes of the host API (ABI v1).
const (
	rcOK          = 0
	rcDenied      = -1 // denied by grants
	rcOverLimit   = -2 // over a limit
	rcNotFound    = -3
	rcInvalid     = -4 // invalid argument
	rcUnavailable = -5 // not available on this device
)

// maxKey bounds kv keys, topics and pin names.
const maxKey = 1024

// hostTrap is the panic value of a host function that must trap the
// invocation (a pointer outside guest memory, an AssemblyScript abort);
// wazero wraps it and classify turns it into a trap with msg.
type hostTrap struct{ msg string }

func (e *hostTrap) Error() string { return e.msg }

type hostFunc struct {
	name    string
	fn      api.GoModuleFunc
	params  []api.ValueType
	results []api.ValueType
	names   []string
}

func (r *Runtime) hostFuncs() []hostFunc {
	i32 := api.ValueTypeI32
	p := func(n int) []api.ValueType {
		ts := make([]api.ValueType, n)
		for i := range ts {
			ts[i] = i32
		}
		return ts
	}
	one := []api.ValueType{i32}
	return []hostFunc{
		{"input", r.input, p(2), one, []string{"buf", "len"}},
		{"meta", r.meta, p(4), one, []string{"key", "key_len", "buf", "buf_len"}},
		{"emit", r.emit, p(2), one, []string{"buf", "len"}},
		{"publish", r.publish, p(5), one, []string{"topic", "topic_len", "buf", "len", "qos"}},
		{"log", r.logLine, p(3), nil, []string{"level", "buf", "len"}},
		{"gpio_write", r.gpioWrite, p(3), one, []string{"pin", "pin_len", "level"}},
		{"gpio_read", r.gpioRead, p(2), one, []string{"pin", "pin_len"}},
		{"kv_get", r.kvGet, p(4), one, []string{"key", "key_len", "buf", "buf_len"}},
		{"kv_set", r.kvSet, p(4), one, []string{"key", "key_len", "buf", "len"}},
		{"kv_delete", r.kvDelete, p(2), one, []string{"key", "key_len"}},
	}
}

// current returns the invocation a host call belongs to.
func current(ctx context.Context, name string) *invocation {
	if inst, ok := ctx.Value(instKey{}).(*instance); ok && inst.inv != nil {
		return inst.inv
	}
	panic(&hostTrap{msg: "edgefn." + name + ": called outside an invocation (from a start function?)"})
}

// view returns guest memory [ptr, ptr+n) without copying, or traps naming
// the import when it is outside guest memory.
func view(mod api.Module, name string, ptr, n uint32) []byte {
	mem := mod.Memory()
	if mem == nil {
		panic(&hostTrap{msg: "edgefn." + name + ": the module has no memory"})
	}
	b, ok := mem.Read(ptr, n)
	if !ok {
		panic(&hostTrap{msg: fmt.Sprintf("edgefn.%s: buffer [0x%x, +%d) is outside guest memory (%d bytes)", name, ptr, n, mem.Size())})
	}
	return b
}

func ret(stack []uint64, v int32) { stack[0] = api.EncodeI32(v) }

// copyOut writes as much of val as fits in the guest buffer (buf, bufLen),
// which must lie inside guest memory, and returns val's full length.
func copyOut(mod api.Module, name string, buf, bufLen uint32, val []byte) int32 {
	dst := view(mod, name, buf, bufLen)
	copy(dst, val)
	return int32(len(val))
}

// str reads a short string argument (key, topic, pin): it traps on a bad
// pointer, and returns ok false (the caller answers -4 or -2) when it is
// empty, too long or not UTF-8.
func str(mod api.Module, name string, ptr, n uint32) (s string, rc int32) {
	if n > maxKey {
		view(mod, name, ptr, 0) // still trap on a wild pointer
		return "", rcOverLimit
	}
	b := view(mod, name, ptr, n)
	if len(b) == 0 || !utf8.Valid(b) {
		return "", rcInvalid
	}
	return string(b), rcOK
}

// withString starts an import whose first argument is a string (key, topic,
// pin) at stack[0] and stack[1]: it returns the calling invocation (see
// current) and the string with rcOK, or the rc that refuses it (see str).
func withString(ctx context.Context, mod api.Module, name string, stack []uint64) (*invocation, string, int32) {
	inv := current(ctx, name)
	s, rc := str(mod, name, api.DecodeU32(stack[0]), api.DecodeU32(stack[1]))
	return inv, s, rc
}

// input(buf, len) -> n: copies the payload, up to len bytes.
func (r *Runtime) input(ctx context.Context, mod api.Module, stack []uint64) {
	inv := current(ctx, "input")
	buf, n := api.DecodeU32(stack[0]), api.DecodeU32(stack[1])
	p := inv.ev.Payload
	if uint32(len(p)) < n {
		n = uint32(len(p))
	}
	dst := view(mod, "input", buf, n)
	ret(stack, int32(copy(dst, p)))
}

// meta(key, key_len, buf, buf_len) -> full length, or -3.
func (r *Runtime) meta(ctx context.Context, mod api.Module, stack []uint64) {
	inv, key, rc := withString(ctx, mod, "meta", stack)
	buf, bufLen := api.DecodeU32(stack[2]), api.DecodeU32(stack[3])
	if rc != rcOK {
		view(mod, "meta", buf, bufLen)
		ret(stack, rc)
		return
	}
	val, ok := inv.metaValue(key)
	if !ok {
		view(mod, "meta", buf, bufLen)
		ret(stack, rcNotFound)
		return
	}
	ret(stack, copyOut(mod, "meta", buf, bufLen, []byte(val)))
}

func (inv *invocation) metaValue(key string) (string, bool) {
	ev := &inv.ev
	switch key {
	case "source":
		return string(ev.Source), true
	case "subject":
		return ev.Subject, true
	case "event_id":
		return ev.ID, true
	case "time_ms":
		return strconv.FormatInt(ev.Time.UnixMilli(), 10), true
	case "function":
		return inv.f.spec.Name, true
	case "version":
		return strconv.Itoa(inv.f.spec.Version), true
	}
	// "env.NAME" is the manifest's env for reactors, which have no WASI
	// environment of their own (commands get it as real env vars).
	if name, ok := strings.CutPrefix(key, "env."); ok {
		v, ok := inv.f.spec.Env[name]
		return v, ok
	}
	v, ok := ev.Meta[key]
	return v, ok
}

// emit(buf, len) -> rc.
func (r *Runtime) emit(ctx context.Context, mod api.Module, stack []uint64) {
	inv := current(ctx, "emit")
	buf, n := api.DecodeU32(stack[0]), api.DecodeU32(stack[1])
	if int64(n) > int64(r.cfg.MaxCopy) || !inv.output(int(n), "emit") {
		if int64(n) > int64(r.cfg.MaxCopy) {
			inv.limit(fmt.Sprintf("emit of %d bytes over the largest copy (%s)", n, r.cfg.MaxCopy))
		}
		view(mod, "emit", buf, 0)
		ret(stack, rcOverLimit)
		return
	}
	b := view(mod, "emit", buf, n)
	inv.effects = append(inv.effects, edgefn.Effect{Kind: edgefn.EffectEmit, Payload: clone(b)})
	ret(stack, rcOK)
}

func clone(b []byte) []byte {
	c := make([]byte, len(b))
	copy(c, b)
	return c
}

// publish(topic, topic_len, buf, len, qos) -> rc.
func (r *Runtime) publish(ctx context.Context, mod api.Module, stack []uint64) {
	const name = "publish"
	inv, topic, rc := withString(ctx, mod, name, stack)
	buf, n, qos := api.DecodeU32(stack[2]), api.DecodeU32(stack[3]), api.DecodeU32(stack[4])
	if int64(n) <= int64(r.cfg.MaxCopy) {
		view(mod, name, buf, n) // trap on a wild pointer whatever the answer
	}
	switch {
	case rc != rcOK:
	case !edgefn.ValidTopicName(topic) || qos > 2:
		rc = rcInvalid
	case !inv.f.spec.Grants.MayPublish(topic):
		rc = rcDenied
	case inv.publishes >= inv.f.spec.Limits.MaxPublishes:
		inv.limit(fmt.Sprintf("more than limits.max_publishes (%d) publishes", inv.f.spec.Limits.MaxPublishes))
		rc = rcOverLimit
	case int64(n) > int64(r.cfg.MaxCopy):
		inv.limit(fmt.Sprintf("publish of %d bytes over the largest copy (%s)", n, r.cfg.MaxCopy))
		rc = rcOverLimit
	case !inv.output(int(n), "publish"):
		rc = rcOverLimit
	}
	if rc != rcOK {
		ret(stack, rc)
		return
	}
	inv.publishes++
	inv.effects = append(inv.effects, edgefn.Effect{Kind: edgefn.EffectPublish, Topic: topic, QoS: byte(qos),
		Payload: clone(view(mod, name, buf, n))})
	ret(stack, rcOK)
}

// log(level, buf, len).
func (r *Runtime) logLine(ctx context.Context, mod api.Module, stack []uint64) {
	inv := current(ctx, "log")
	level := int32(api.DecodeI32(stack[0]))
	buf, n := api.DecodeU32(stack[1]), api.DecodeU32(stack[2])
	if int64(n) > int64(r.cfg.MaxCopy) || inv.logBytes+int64(n) > int64(inv.f.spec.Limits.MaxLog) {
		view(mod, "log", buf, 0)
		inv.logsDropped++
		return
	}
	if level < int32(edgefn.LogDebug) || level > int32(edgefn.LogError) {
		level = int32(edgefn.LogInfo)
	}
	inv.addLog(edgefn.LogLevel(level), view(mod, "log", buf, n))
}

// gpio_write(pin, pin_len, level) -> rc.
func (r *Runtime) gpioWrite(ctx context.Context, mod api.Module, stack []uint64) {
	inv, pin, rc := withString(ctx, mod, "gpio_write", stack)
	level := api.DecodeU32(stack[2])
	switch {
	case rc != rcOK:
	case level > 1:
		rc = rcInvalid
	case !inv.f.spec.Grants.MayWrite(pin):
		rc = rcDenied
	case r.cfg.GPIO == nil || !r.cfg.GPIO.Has(pin):
		rc = rcUnavailable
	default:
		inv.effects = append(inv.effects, edgefn.Effect{Kind: edgefn.EffectGPIOWrite, Pin: pin, High: level == 1})
	}
	ret(stack, rc)
}

// gpio_read(pin, pin_len) -> level (0 or 1) or a negative rc.
func (r *Runtime) gpioRead(ctx context.Context, mod api.Module, stack []uint64) {
	inv, pin, rc := withString(ctx, mod, "gpio_read", stack)
	switch {
	case rc != rcOK:
	case !inv.f.spec.Grants.MayRead(pin):
		rc = rcDenied
	case r.cfg.GPIO == nil || !r.cfg.GPIO.Has(pin):
		rc = rcUnavailable
	default:
		high, err := r.cfg.GPIO.Read(inv.ctxForHost(), pin)
		switch {
		case err != nil:
			inv.addLog(edgefn.LogError, []byte("edgefn: gpio_read "+pin+": "+err.Error()))
			rc = rcUnavailable
		case high:
			rc = 1
		}
	}
	ret(stack, rc)
}

// kv_get(key, key_len, buf, buf_len) -> full length, or -3.
func (r *Runtime) kvGet(ctx context.Context, mod api.Module, stack []uint64) {
	const name = "kv_get"
	inv, key, rc := withString(ctx, mod, name, stack)
	buf, bufLen := api.DecodeU32(stack[2]), api.DecodeU32(stack[3])
	view(mod, name, buf, bufLen)
	switch {
	case rc != rcOK:
	case !inv.f.spec.Grants.KV:
		rc = rcDenied
	default:
		if p, ok := inv.pending[key]; ok {
			if p.deleted {
				rc = rcNotFound
			} else {
				rc = copyOut(mod, name, buf, bufLen, p.value)
			}
			break
		}
		if r.cfg.KV == nil {
			rc = rcUnavailable
			break
		}
		val, ok, err := r.cfg.KV.Get(inv.ctxForHost(), inv.f.spec.Name, key)
		switch {
		case err != nil:
			inv.addLog(edgefn.LogError, []byte("edgefn: kv_get "+key+": "+err.Error()))
			rc = rcUnavailable
		case !ok:
			rc = rcNotFound
		default:
			rc = copyOut(mod, name, buf, bufLen, val)
		}
	}
	ret(stack, rc)
}

// kv_set(key, key_len, buf, len) -> rc.
func (r *Runtime) kvSet(ctx context.Context, mod api.Module, stack []uint64) {
	const name = "kv_set"
	inv, key, rc := withString(ctx, mod, name, stack)
	buf, n := api.DecodeU32(stack[2]), api.DecodeU32(stack[3])
	if int64(n) > int64(r.cfg.MaxCopy) {
		view(mod, name, buf, 0)
		if rc == rcOK {
			rc = rcOverLimit
		}
	} else {
		view(mod, name, buf, n)
	}
	if rc == rcOK && !inv.f.spec.Grants.KV {
		rc = rcDenied
	}
	if rc != rcOK {
		ret(stack, rc)
		return
	}
	val := clone(view(mod, name, buf, n))
	inv.setPending(key, pendingKV{value: val})
	inv.effects = append(inv.effects, edgefn.Effect{Kind: edgefn.EffectKVSet, Key: key, Payload: val})
	ret(stack, rcOK)
}

// kv_delete(key, key_len) -> rc.
func (r *Runtime) kvDelete(ctx context.Context, mod api.Module, stack []uint64) {
	const name = "kv_delete"
	inv, key, rc := withString(ctx, mod, name, stack)
	if rc == rcOK && !inv.f.spec.Grants.KV {
		rc = rcDenied
	}
	if rc == rcOK {
		inv.setPending(key, pendingKV{deleted: true})
		inv.effects = append(inv.effects, edgefn.Effect{Kind: edgefn.EffectKVDelete, Key: key})
	}
	ret(stack, rc)
}

func (inv *invocation) setPending(key string, p pendingKV) {
	if inv.pending == nil {
		inv.pending = map[string]pendingKV{}
	}
	inv.pending[key] = p
}

// abort(message, file, line, column) is AssemblyScript's env.abort: it traps
// the invocation with the guest's message and where it came from.
func (r *Runtime) abort(ctx context.Context, mod api.Module, stack []uint64) {
	msg := asString(mod, api.DecodeU32(stack[0]))
	file := asString(mod, api.DecodeU32(stack[1]))
	line, col := api.DecodeU32(stack[2]), api.DecodeU32(stack[3])
	if msg == "" {
		msg = "abort"
	}
	panic(&hostTrap{msg: fmt.Sprintf("abort: %s at %s:%d:%d", msg, file, line, col)})
}

// asString reads an AssemblyScript string: UTF-16LE, its byte length in the
// u32 just before ptr. A bad pointer gives "", never a panic of its own.
func asString(mod api.Module, ptr uint32) string {
	mem := mod.Memory()
	if mem == nil || ptr < 4 {
		return ""
	}
	n, ok := mem.ReadUint32Le(ptr - 4)
	if !ok {
		return ""
	}
	if n > 4096 {
		n = 4096
	}
	b, ok := mem.Read(ptr, n&^1)
	if !ok {
		return ""
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = uint16(b[2*i]) | uint16(b[2*i+1])<<8
	}
	return string(utf16.Decode(u))
}
