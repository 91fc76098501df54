//! rust-reactor: an edgefn reactor in Rust (std, no cargo), built with
//! `rustc --target wasm32-unknown-unknown --crate-type cdylib -O`.
//!
//! A light switch: each press (an MQTT message on `buttons/+/press`, or a GPIO
//! edge when the manifest adds a `gpio:` trigger) toggles a light whose state
//! is kept in kv (`light`), counts presses in kv (`presses`) and emits
//! `{"button":"buttons/hall/press","edge":"","presses":3,"light":true}`. When the
//! manifest's env names a pin (`LED: GPIO18`, granted in `allow.gpio_write`),
//! the light is that pin too; without it the function claims no pin.

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
        pub fn kv_get(key: *const u8, key_len: i32, buf: *mut u8, buf_len: i32) -> i32;
        pub fn kv_set(key: *const u8, key_len: i32, buf: *const u8, len: i32) -> i32;
    }
}

const NOT_FOUND: i32 = -3;

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

/// A kv value parsed as a number, 0 when the key is not there.
fn kv_number(key: &str) -> Result<u64, HostError> {
    match read_value("kv_get", key, host::kv_get) {
        Ok(v) => Ok(std::str::from_utf8(&v).ok().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)),
        Err(HostError(_, NOT_FOUND)) => Ok(0),
        Err(e) => Err(e),
    }
}

fn kv_set(key: &str, value: &str) -> Result<i32, HostError> {
    check("kv_set", unsafe { host::kv_set(key.as_ptr(), key.len() as i32, value.as_ptr(), value.len() as i32) })
}

/// Appends s as the inside of a JSON string (a topic may hold any character).
fn json_escape(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

fn handle(payload_len: usize) -> Result<(), HostError> {
    // The payload is not needed here, but this is how to read it.
    let mut payload = vec![0u8; payload_len];
    unsafe { host::input(payload.as_mut_ptr(), payload_len as i32) };

    // The topic (or pin) and, for a GPIO edge, which edge.
    let button = meta("subject");
    let edge = meta("edge");

    let light = kv_number("light")? == 0;
    let presses = kv_number("presses")? + 1;
    kv_set("light", if light { "1" } else { "0" })?;
    kv_set("presses", &presses.to_string())?;
    // The manifest's env reaches a reactor through meta("env.NAME").
    let led = meta("env.LED");
    if !led.is_empty() {
        check("gpio_write", unsafe { host::gpio_write(led.as_ptr(), led.len() as i32, light as i32) })?;
    }

    let mut rec = String::with_capacity(96);
    rec.push_str(r#"{"button":""#);
    json_escape(&mut rec, &button);
    rec.push_str(r#"","edge":""#);
    json_escape(&mut rec, &edge);
    let _ = write!(rec, r#"","presses":{},"light":{}}}"#, presses, light);
    check("emit", unsafe { host::emit(rec.as_ptr(), rec.len() as i32) })?;
    log(1, &format!("{}: light {}", button, if light { "on" } else { "off" }));
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
