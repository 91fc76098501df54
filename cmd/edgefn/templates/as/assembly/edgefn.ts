// Bindings to the "edgefn" host imports of ABI v1 for AssemblyScript.
// Pointers are offsets into this module's memory; AssemblyScript strings are
// UTF-16, so they are encoded to UTF-8 before they cross the boundary.

@external("edgefn", "input")
declare function host_input(buf: usize, len: i32): i32;
@external("edgefn", "meta")
declare function host_meta(key: usize, keyLen: i32, buf: usize, bufLen: i32): i32;
@external("edgefn", "emit")
declare function host_emit(buf: usize, len: i32): i32;
@external("edgefn", "publish")
declare function host_publish(topic: usize, topicLen: i32, buf: usize, len: i32, qos: i32): i32;
@external("edgefn", "log")
declare function host_log(level: i32, buf: usize, len: i32): void;
@external("edgefn", "kv_get")
declare function host_kv_get(key: usize, keyLen: i32, buf: usize, bufLen: i32): i32;
@external("edgefn", "kv_set")
declare function host_kv_set(key: usize, keyLen: i32, buf: usize, len: i32): i32;

// Return codes of ABI v1.
export const DENIED: i32 = -1;
export const OVER_LIMIT: i32 = -2;
export const NOT_FOUND: i32 = -3;
export const INVALID: i32 = -4;
export const UNAVAILABLE: i32 = -5;

export const DEBUG: i32 = 0;
export const INFO: i32 = 1;
export const WARN: i32 = 2;
export const ERROR: i32 = 3;

// input returns the event payload as UTF-8 text.
export function input(len: i32): string {
  const buf = new ArrayBuffer(len);
  const n = host_input(changetype<usize>(buf), len);
  return String.UTF8.decodeUnsafe(changetype<usize>(buf), <usize>n);
}

// A kv_get or meta: (key, buf) -> the value's full length or a negative code.
type Getter = (key: usize, keyLen: i32, buf: usize, bufLen: i32) => i32;

// Result of a get: the value, or a negative return code in rc.
export class Value {
  constructor(public text: string, public rc: i32) {}
}

function get(fn: Getter, key: string): Value {
  const k = String.UTF8.encode(key);
  let buf = new ArrayBuffer(64);
  let n = fn(changetype<usize>(k), k.byteLength, changetype<usize>(buf), buf.byteLength);
  // Too long for the first buffer: ask again with room for all of it (the
  // value can change in between, hence the loop).
  while (n > buf.byteLength) {
    buf = new ArrayBuffer(n);
    n = fn(changetype<usize>(k), k.byteLength, changetype<usize>(buf), buf.byteLength);
  }
  if (n < 0) return new Value("", n);
  return new Value(String.UTF8.decodeUnsafe(changetype<usize>(buf), <usize>n), 0);
}

// meta returns the metadata named key ("subject", "event_id"...), or "".
export function meta(key: string): string {
  return get((k, kl, b, bl) => host_meta(k, kl, b, bl), key).text;
}

export function kvGet(key: string): Value {
  return get((k, kl, b, bl) => host_kv_get(k, kl, b, bl), key);
}

export function kvSet(key: string, value: string): i32 {
  const k = String.UTF8.encode(key);
  const v = String.UTF8.encode(value);
  return host_kv_set(changetype<usize>(k), k.byteLength, changetype<usize>(v), v.byteLength);
}

export function emit(record: string): i32 {
  const b = String.UTF8.encode(record);
  return host_emit(changetype<usize>(b), b.byteLength);
}

export function publish(topic: string, payload: string, qos: i32): i32 {
  const t = String.UTF8.encode(topic);
  const p = String.UTF8.encode(payload);
  return host_publish(changetype<usize>(t), t.byteLength, changetype<usize>(p), p.byteLength, qos);
}

export function log(level: i32, msg: string): void {
  const b = String.UTF8.encode(msg);
  host_log(level, changetype<usize>(b), b.byteLength);
}
