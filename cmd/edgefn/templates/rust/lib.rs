//! rust-reactor: an edgefn reactor in Rust (std, no cargo), built with
//! `rustc --target wasm32-unknown-unknown --crate-type cdylib -O`.
//!
//! A button on a GPIO pin (the event's subject, e.g. GPIO17) toggles an LED on
//! GPIO18: the handler reads the LED, writes the opposite level, counts presses
//! in kv (`presses`) and emits `{"pin":"GPIO17","edge":"falling","presses":3,"led":true}`.

use std::fmt::Write;

/// The "edgefn" host imports of ABI v1 (pointers are offsets into this
/// module's memory; the return codes are documented in docs/languages.md).
mod host {
    #[link(wasm_import_module = "edgefn")]
    extern "C" {
        pub fn input(buf: *mut u8, len: i32) -> i32;
        pub fn meta(key: *const u8, key_len: i32, buf: *mut u8, buf_len: i32) -> i32;
        pub fn emit(buf: *const u8, len: i32) -> i32;
        pub fn log(level: i32, buf: *const u8, len: i32);
        pub fn gpio_write(pin: *const u8, pin_len: i32, level: i32) -> i32;
        pub fn gpio_read(pin: *const u8, pin_len: i32) -> i32;
        pub fn kv_get(key: *const u8, key_len: i32, buf: *mut u8, buf_len: i32) -> i32;
        pub fn kv_set(key: *const u8, key_len: i32, buf: *const u8, len: i32) -> i32;
    }
}

const NOT_FOUND: i32 = -3;
const LED: &str = "GPIO18";

/// A negative host return code, named after the import that gave it.
struct HostError(&'static str, i32);

fn check(op: &'static str, rc: i32) -> Result<i32, HostError> {
    if rc < 0 {
        Err(HostError(op, rc))
    } else {
        Ok(rc)
    }
}

fn log(level: i32, msg: &str) {
    unsafe { host::log(level, msg.as_ptr(), msg.len() as i32) }
}

/// Reads a value with the (buf, buf_len) -> full length convention: a first
/// try into a small buffer, a second with the exact size when it did not fit.
fn read_value(
    op: &'static str,
    key: &str,
    f: unsafe extern "C" fn(*const u8, i32, *mut u8, i32) -> i32,
) -> Result<Vec<u8>, HostError> {
    let mut buf = vec![0u8; 64];
    loop {
        let n = check(op, unsafe { f(key.as_ptr(), key.len() as i32, buf.as_mut_ptr(), buf.len() as i32) })? as usize;
        if n <= buf.len() {
            buf.truncate(n);
            return Ok(buf);
        }
        buf.resize(n, 0);
    }
}

fn meta(key: &str) -> String {
    read_value("meta", key, host::meta)
        .map(|v| String::from_utf8_lossy(&v).into_owned())
        .unwrap_or_default()
}

fn handle(payload_len: usize) -> Result<(), HostError> {
    // The payload is not needed here, but this is how to read it.
    let mut payload = vec![0u8; payload_len];
    unsafe { host::input(payload.as_mut_ptr(), payload_len as i32) };

    let pin = meta("subject");
    let edge = meta("edge");

    let led_on = check("gpio_read", unsafe { host::gpio_read(LED.as_ptr(), LED.len() as i32) })? == 1;
    check("gpio_write", unsafe { host::gpio_write(LED.as_ptr(), LED.len() as i32, (!led_on) as i32) })?;

    let presses = match read_value("kv_get", "presses", host::kv_get) {
        Ok(v) => std::str::from_utf8(&v).ok().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0),
        Err(HostError(_, NOT_FOUND)) => 0,
        Err(e) => return Err(e),
    } + 1;
    let count = presses.to_string();
    let key = "presses";
    check("kv_set", unsafe { host::kv_set(key.as_ptr(), key.len() as i32, count.as_ptr(), count.len() as i32) })?;

    // Pin names and edges are plain ASCII words, so escape_default (Rust's
    // escaping, not JSON's) never has anything to escape here.
    let mut rec = String::with_capacity(96);
    let _ = write!(rec, r#"{{"pin":"{}","edge":"{}","presses":{},"led":{}}}"#,
        pin.escape_default(), edge.escape_default(), presses, !led_on);
    check("emit", unsafe { host::emit(rec.as_ptr(), rec.len() as i32) })?;
    log(1, &format!("{} {}: LED {}", pin, edge, if led_on { "off" } else { "on" }));
    Ok(())
}

/// The reactor entry point of ABI v1: 0 on success, 1 on a host error.
#[no_mangle]
pub extern "C" fn edgefn_handle(payload_len: i32) -> i32 {
    match handle(payload_len.max(0) as usize) {
        Ok(()) => 0,
        Err(HostError(op, rc)) => {
            log(3, &format!("edgefn.{} returned {}", op, rc));
            1
        }
    }
}
