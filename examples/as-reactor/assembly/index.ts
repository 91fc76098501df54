// as-reactor: an edgefn reactor in AssemblyScript. The payload is a number as
// text ("23.4"); the function keeps an exponential moving average in kv
// ("ema"), emits {"subject":…,"value":…,"ema":…} and publishes the value to
// alerts/spike when it is more than SPIKE away from the average.
import * as edgefn from "./edgefn";

// How far from the average a value counts as a spike, and the weight of a new
// value in the average. Constants here; a reactor can read the manifest's env
// with edgefn.meta("env.NAME").
const SPIKE: f64 = 5.0;
const ALPHA: f64 = 0.2;

export function edgefn_handle(payloadLen: i32): i32 {
  const text = edgefn.input(payloadLen).trim();
  const value = parseFloat(text);
  if (isNaN(value)) {
    edgefn.log(edgefn.ERROR, "payload \"" + text + "\" is not a number");
    return 1;
  }

  let ema = value;
  const old = edgefn.kvGet("ema");
  if (old.rc == 0) {
    ema = ALPHA * value + (1 - ALPHA) * parseFloat(old.text);
  } else if (old.rc != edgefn.NOT_FOUND) {
    edgefn.log(edgefn.ERROR, "kv_get ema: return code " + old.rc.toString());
    return 1;
  }
  let rc = edgefn.kvSet("ema", ema.toString());
  if (rc < 0) return rc;

  const subject = edgefn.meta("subject");
  rc = edgefn.emit("{\"subject\":\"" + jsonEscape(subject) + "\",\"value\":" + value.toString() + ",\"ema\":" + ema.toString() + "}");
  if (rc < 0) return rc;

  if (Math.abs(value - ema) > SPIKE) {
    edgefn.log(edgefn.WARN, subject + ": spike " + value.toString() + " against an average of " + ema.toString());
    rc = edgefn.publish("alerts/spike", value.toString(), 1);
    if (rc < 0) return rc;
  }
  return 0;
}

// jsonEscape makes s safe inside a JSON string (a topic may hold any
// character but NUL).
function jsonEscape(s: string): string {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 0x22 || c == 0x5c) out += "\\" + String.fromCharCode(c);
    else if (c < 0x20) out += "\\u00" + (c < 0x10 ? "0" : "") + c.toString(16);
    else out += String.fromCharCode(c);
  }
  return out;
}
