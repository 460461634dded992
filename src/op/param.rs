//! Typed reads of a rule's params (the JSON object that is hashed into the key), one
//! definition for every op. A param's type was checked against the op's declared params
//! when the rules loaded; these read values and give the op's own defaults.

use serde_json::Value;

/// A string or a list of strings, as a list (empty when absent).
pub use crate::core::catalog::string_list as strings;

/// A string param.
pub fn str<'a>(params: &'a Value, name: &str) -> Option<&'a str> {
    params.get(name).and_then(|v| v.as_str())
}

/// A string param, or `default`.
pub fn str_or<'a>(params: &'a Value, name: &str, default: &'a str) -> &'a str {
    str(params, name).unwrap_or(default)
}

/// A non-negative integer param, or `default`; the error names the param.
pub fn int(params: &Value, name: &str, default: usize) -> Result<usize, String> {
    match params.get(name) {
        None => Ok(default),
        Some(v) => v
            .as_u64()
            .map(|v| v as usize)
            .ok_or_else(|| format!("params.{name} must be a non-negative integer")),
    }
}

/// A number param, or `default`; the error names the param.
pub fn float(params: &Value, name: &str, default: f64) -> Result<f64, String> {
    match params.get(name) {
        None => Ok(default),
        Some(v) => v
            .as_f64()
            .ok_or_else(|| format!("params.{name} must be a number")),
    }
}

/// A boolean param, or `default`.
pub fn flag(params: &Value, name: &str, default: bool) -> bool {
    params
        .get(name)
        .and_then(|v| v.as_bool())
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_reads_with_defaults_and_named_errors() {
        let p = json!({"s": "x", "n": 3, "f": 0.5, "b": false, "neg": -1});
        assert_eq!(str(&p, "s"), Some("x"));
        assert_eq!(str_or(&p, "missing", "d"), "d");
        assert_eq!(int(&p, "n", 9), Ok(3));
        assert_eq!(int(&p, "missing", 9), Ok(9));
        assert_eq!(
            int(&p, "neg", 9),
            Err("params.neg must be a non-negative integer".into())
        );
        assert_eq!(float(&p, "f", 1.0), Ok(0.5));
        assert_eq!(float(&p, "n", 1.0), Ok(3.0));
        assert_eq!(float(&p, "s", 1.0), Err("params.s must be a number".into()));
        assert!(!flag(&p, "b", true) && flag(&p, "missing", true));
    }
}
