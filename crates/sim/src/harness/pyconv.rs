//! Python-style value conversions.
//!
//! The reference harness read its scenario files with `int(conf[k])` and
//! `float(conf[k])`, so it accepted `"30"`, `30.7` (→ 30) or `true` (→ 1) where
//! a strict reader would refuse. We reproduce that leniency key by key, so a
//! scenario the original accepted is accepted here and vice versa.

use serde_json::Value;

/// What Python's `int(v)` would give for a JSON value, or why it would raise.
pub fn py_int(v: &Value) -> Result<i64, String> {
    match v {
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i)
            } else if let Some(u) = n.as_u64() {
                i64::try_from(u).map_err(|_| format!("{u} is out of range"))
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if !f.is_finite() || f.abs() >= 9.2e18 {
                    return Err(format!("cannot convert {f} to an integer"));
                }
                // int(30.7) == 30: truncation toward zero.
                Ok(f.trunc() as i64)
            }
        }
        Value::String(s) => {
            let t = s.trim();
            let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
            let clean: String = digits.chars().filter(|c| *c != '_').collect();
            let underscores_ok =
                !digits.starts_with('_') && !digits.ends_with('_') && !digits.contains("__");
            if clean.is_empty() || !clean.chars().all(|c| c.is_ascii_digit()) || !underscores_ok {
                return Err(format!("invalid literal for int(): {s:?}"));
            }
            let n: i64 = clean
                .parse()
                .map_err(|_| format!("{s:?} is out of range"))?;
            Ok(if t.starts_with('-') { -n } else { n })
        }
        other => Err(format!(
            "int() argument must be a string or a number, not {other}"
        )),
    }
}

/// What Python's `float(v)` would give for a JSON value, or why it would raise.
pub fn py_float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
        Value::Number(n) => n.as_f64().ok_or_else(|| format!("cannot convert {n}")),
        Value::String(s) => {
            let t = s.trim();
            let lower = t.to_ascii_lowercase();
            let body = lower.strip_prefix(['+', '-']).unwrap_or(&lower);
            // Rust's parser takes "inf"/"infinity"/"nan" as Python does; it
            // also takes things Python refuses ("1e", ".") only in error, so
            // a successful parse is a safe answer.
            if body.is_empty() || body.contains('_') {
                return Err(format!("could not convert string to float: {s:?}"));
            }
            t.parse::<f64>()
                .map_err(|_| format!("could not convert string to float: {s:?}"))
        }
        other => Err(format!(
            "float() argument must be a string or a number, not {other}"
        )),
    }
}

/// Python's `repr(float)` / `str(int)` of a JSON number, as the reference
/// printed benchmark thresholds (`0.00015`, `3000`, `1e-05`, `3000.0`).
pub fn py_number_repr(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    py_float_repr(n.as_f64().unwrap_or(f64::NAN))
}

/// Python's `repr()` of a float: shortest round-trip digits, scientific
/// notation outside 1e-4 ≤ |x| < 1e16, always a `.0` or exponent.
pub fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    let a = f.abs();
    if !(1e-4..1e16).contains(&a) {
        // Rust gives "1e-5" / "1.5e16"; Python gives "1e-05" / "1.5e+16".
        let s = format!("{f:e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        return format!("{mant}e{sign}{digits:0>2}");
    }
    let s = format!("{f}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn int_is_as_lenient_as_python() {
        assert_eq!(py_int(&json!(30)), Ok(30));
        assert_eq!(py_int(&json!(30.9)), Ok(30));
        assert_eq!(py_int(&json!(-2.5)), Ok(-2));
        assert_eq!(py_int(&json!(" 12 ")), Ok(12));
        assert_eq!(py_int(&json!("1_000")), Ok(1000));
        assert_eq!(py_int(&json!(true)), Ok(1));
        assert!(py_int(&json!("3.5")).is_err());
        assert!(py_int(&json!(null)).is_err());
        assert!(py_int(&json!([1])).is_err());
    }

    #[test]
    fn float_is_as_lenient_as_python() {
        assert_eq!(py_float(&json!(0.2)), Ok(0.2));
        assert_eq!(py_float(&json!("0.5")), Ok(0.5));
        assert_eq!(py_float(&json!(1)), Ok(1.0));
        assert_eq!(py_float(&json!(false)), Ok(0.0));
        assert!(py_float(&json!("x")).is_err());
        assert!(py_float(&json!({})).is_err());
    }

    #[test]
    fn number_repr_matches_python() {
        let n = |v: serde_json::Value| py_number_repr(v.as_number().unwrap());
        assert_eq!(n(json!(3000)), "3000");
        assert_eq!(n(json!(0.00015)), "0.00015");
        assert_eq!(n(json!(0.001)), "0.001");
        assert_eq!(n(json!(3000.0)), "3000.0");
        assert_eq!(n(json!(0.00001)), "1e-05");
        assert_eq!(py_float_repr(2.5e16), "2.5e+16");
    }
}
