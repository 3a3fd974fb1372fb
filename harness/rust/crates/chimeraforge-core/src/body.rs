//! The exact request bytes, identical to Python's `harness.ollama.request_body` for the same inputs:
//! compact JSON, keys `model, prompt, stream, options, keep_alive`, options in [`OPTION_ORDER`], strings
//! escaped like `json.dumps(..., ensure_ascii=False)` and floats printed like Python's `repr`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::error::AgentError;

/// Key order of `options` on the wire (`harness.ollama.OPTION_ORDER`).
pub const OPTION_ORDER: [&str; 8] = [
    "num_gpu",
    "num_ctx",
    "temperature",
    "top_p",
    "top_k",
    "repeat_penalty",
    "num_predict",
    "seed",
];

/// One Ollama option value: Python's `float | int`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OptionValue {
    Int(i64),
    Float(f64),
}

impl OptionValue {
    fn write_json(&self, out: &mut String) {
        match self {
            OptionValue::Int(v) => {
                let _ = write!(out, "{v}");
            }
            OptionValue::Float(v) => out.push_str(&python_float_repr(*v)),
        }
    }
}

/// Options by name; the wire order comes from [`OPTION_ORDER`], not from the map.
pub type Options = BTreeMap<String, OptionValue>;

/// `keep_alive` as Python accepts it: a duration string or a number of seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeepAlive {
    Text(String),
    Seconds(i64),
}

/// Python's `repr(float)` (what `json.dumps` writes): shortest round-trip digits, fixed notation for
/// decimal exponents in [-4, 16), otherwise `d.ddde+XX`; `NaN`/`Infinity` like `json.dumps`.
pub fn python_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    // Rust's `{:e}` prints the shortest digits that round-trip, e.g. "-1.25e-5", "8e-1", "0e0".
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').expect("{:e} always has an exponent");
    let exp: i32 = exp.parse().expect("integer exponent");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let decpt = exp + 1; // value = 0.DIGITS x 10^decpt
    let mut out = String::from(sign);
    if !(-4 < decpt && decpt <= 16) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    } else if decpt <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-decpt) as usize));
        out.push_str(&digits);
    } else if decpt as usize >= digits.len() {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', decpt as usize - digits.len()));
        out.push_str(".0");
    } else {
        out.push_str(&digits[..decpt as usize]);
        out.push('.');
        out.push_str(&digits[decpt as usize..]);
    }
    out
}

fn push_json_str(out: &mut String, s: &str) {
    // serde_json escapes exactly the characters `json.dumps(ensure_ascii=False)` does:
    // `"`, `\`, \b \f \n \r \t and other C0 controls as lowercase `\u00XX`.
    out.push_str(&serde_json::to_string(s).expect("strings always serialise"));
}

/// The bytes of an `/api/generate` body; `options` only when something is set (an empty map is omitted).
pub fn request_body(
    model: &str,
    prompt: Option<&str>,
    stream: bool,
    options: Option<&Options>,
    keep_alive: Option<&KeepAlive>,
) -> Result<Vec<u8>, AgentError> {
    let mut out = String::with_capacity(64 + prompt.map_or(0, str::len));
    out.push_str("{\"model\":");
    push_json_str(&mut out, model);
    if let Some(prompt) = prompt {
        out.push_str(",\"prompt\":");
        push_json_str(&mut out, prompt);
    }
    out.push_str(if stream {
        ",\"stream\":true"
    } else {
        ",\"stream\":false"
    });
    if let Some(options) = options.filter(|o| !o.is_empty()) {
        reject_unknown(options)?;
        out.push_str(",\"options\":{");
        let mut first = true;
        for key in OPTION_ORDER {
            if let Some(value) = options.get(key) {
                if !first {
                    out.push(',');
                }
                first = false;
                push_json_str(&mut out, key);
                out.push(':');
                value.write_json(&mut out);
            }
        }
        out.push('}');
    }
    match keep_alive {
        Some(KeepAlive::Text(t)) => {
            out.push_str(",\"keep_alive\":");
            push_json_str(&mut out, t);
        }
        Some(KeepAlive::Seconds(s)) => {
            let _ = write!(out, ",\"keep_alive\":{s}");
        }
        None => {}
    }
    out.push('}');
    Ok(out.into_bytes())
}

/// Refuses options the spec does not know, naming them sorted (both bodies send known options only).
fn reject_unknown(options: &Options) -> Result<(), AgentError> {
    let mut unknown: Vec<&str> = options
        .keys()
        .map(String::as_str)
        .filter(|k| !OPTION_ORDER.contains(k))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    unknown.sort_unstable();
    Err(AgentError::UnsupportedOption(unknown.join(", ")))
}

/// Sampling keys of a `/v1/completions` body, in wire order (`harness.engines.llamacpp.SAMPLING_ORDER`).
pub const SAMPLING_ORDER: [&str; 5] = ["temperature", "top_p", "top_k", "repeat_penalty", "seed"];

/// The bytes of a llama.cpp `/v1/completions` body, identical to Python's
/// `harness.engines.llamacpp.completion_body`: `model, prompt, max_tokens, stream`, then the sampling
/// options; `num_ctx`/`num_gpu` are server-start settings there and stay out of the body.
pub fn completion_body(
    model: &str,
    prompt: &str,
    stream: bool,
    options: Option<&Options>,
) -> Result<Vec<u8>, AgentError> {
    let empty = Options::new();
    let options = options.unwrap_or(&empty);
    reject_unknown(options)?;
    let mut out = String::with_capacity(96 + prompt.len());
    out.push_str("{\"model\":");
    push_json_str(&mut out, model);
    out.push_str(",\"prompt\":");
    push_json_str(&mut out, prompt);
    match options.get("num_predict") {
        Some(OptionValue::Int(n)) if *n >= 0 => {
            let _ = write!(out, ",\"max_tokens\":{n}");
        }
        Some(OptionValue::Float(n)) if *n >= 0.0 => {
            let _ = write!(out, ",\"max_tokens\":{}", *n as i64);
        }
        _ => {}
    }
    out.push_str(if stream {
        ",\"stream\":true"
    } else {
        ",\"stream\":false"
    });
    for key in SAMPLING_ORDER {
        if let Some(value) = options.get(key) {
            out.push(',');
            push_json_str(&mut out, key);
            out.push(':');
            value.write_json(&mut out);
        }
    }
    out.push('}');
    Ok(out.into_bytes())
}

/// Lowercase hex sha256 of some bytes.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(data);
    let mut out = String::with_capacity(64);
    for b in digest {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_python_repr() {
        let cases = [
            (0.8, "0.8"),
            (1.0, "1.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.1, "1.1"),
            (100.0, "100.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.2345e20, "1.2345e+20"),
            (123456.789, "123456.789"),
            (1e100, "1e+100"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (x, want) in cases {
            assert_eq!(python_float_repr(x), want, "{x:?}");
        }
    }

    #[test]
    fn completion_body_is_byte_identical_to_python() {
        // The same literal is asserted by tests/unit/test_llamacpp.py against Python's completion_body.
        let mut o = Options::new();
        o.insert("seed".into(), OptionValue::Int(7));
        o.insert("num_gpu".into(), OptionValue::Int(80));
        o.insert("top_k".into(), OptionValue::Int(40));
        o.insert("num_ctx".into(), OptionValue::Int(512));
        o.insert("temperature".into(), OptionValue::Float(0.8));
        o.insert("top_p".into(), OptionValue::Float(0.9));
        o.insert("num_predict".into(), OptionValue::Int(321));
        let body = completion_body("tiny", "Hi \"there\"\n\u{e9}", true, Some(&o)).unwrap();
        let want = "{\"model\":\"tiny\",\"prompt\":\"Hi \\\"there\\\"\\n\u{e9}\",\"max_tokens\":321,\"stream\":true,\
                    \"temperature\":0.8,\"top_p\":0.9,\"top_k\":40,\"seed\":7}";
        assert_eq!(String::from_utf8(body).unwrap(), want);
        let plain = completion_body("m", "p", false, None).unwrap();
        assert_eq!(plain, br#"{"model":"m","prompt":"p","stream":false}"#);
    }

    #[test]
    fn options_omitted_when_empty_and_unknown_refused() {
        let body = request_body("m", Some("p"), true, Some(&Options::new()), None).unwrap();
        assert_eq!(body, br#"{"model":"m","prompt":"p","stream":true}"#);
        let mut bad = Options::new();
        bad.insert("mirostat".into(), OptionValue::Int(1));
        assert!(request_body("m", None, false, Some(&bad), None).is_err());
    }
}
