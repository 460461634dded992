//! Canonical encodings: the exact bytes that keys are hashed from.
//!
//! Every value is written with a one-byte type tag and a length prefix, so that no two
//! different ingredient lists can encode to the same bytes. Parameters are written as
//! canonical JSON (sorted keys, shortest round-trip float formatting). Changing anything
//! here changes every key: bump `KEY_FORMAT` when you do.

use serde_json::Value;
use std::fmt::Write as _;

/// Format version tag hashed into every key.
pub const KEY_FORMAT: &str = "lakebuild-key/1";

/// A 32-byte blake3 digest.
pub type Hash = blake3::Hash;

/// A blake3 hasher fed with typed, length-prefixed fields.
pub struct CanonicalHasher(blake3::Hasher);

impl CanonicalHasher {
    /// Starts a hash in the given domain (e.g. "key", "rule"), tagged with the format version.
    pub fn new(domain: &str) -> Self {
        let mut h = CanonicalHasher(blake3::Hasher::new());
        h.str(KEY_FORMAT).str(domain);
        h
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.tagged(b's', s.as_bytes())
    }

    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.tagged(b'b', b)
    }

    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.0.update(b"i");
        self.0.update(&v.to_le_bytes());
        self
    }

    pub fn hash(&mut self, h: &Hash) -> &mut Self {
        self.0.update(b"h");
        self.0.update(h.as_bytes());
        self
    }

    fn tagged(&mut self, tag: u8, b: &[u8]) -> &mut Self {
        self.0.update(&[tag]);
        self.0.update(&(b.len() as u64).to_le_bytes());
        self.0.update(b);
        self
    }

    pub fn finish(&self) -> Hash {
        self.0.finalize()
    }
}

/// JSON with object keys sorted at every level and no insignificant whitespace.
/// Numbers keep serde_json's formatting (integers exact, floats shortest round-trip).
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                write_canonical(&map[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Number(n) => {
            // Floats that hold whole numbers print as "1.0": keep them distinct from ints,
            // since a param's type is part of what it means.
            let _ = write!(out, "{n}");
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Short, human-sized form of a hash for display.
pub fn short(h: &str) -> &str {
    &h[..h.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let a = json!({"b": 1, "a": {"y": [1, 2.5], "x": "s"}});
        assert_eq!(canonical_json(&a), r#"{"a":{"x":"s","y":[1,2.5]},"b":1}"#);
    }

    #[test]
    fn length_prefix_separates_fields() {
        let mut a = CanonicalHasher::new("t");
        a.str("ab").str("c");
        let mut b = CanonicalHasher::new("t");
        b.str("a").str("bc");
        assert_ne!(a.finish(), b.finish());
    }

    #[test]
    fn domain_separates_hashes() {
        assert_ne!(
            CanonicalHasher::new("key").finish(),
            CanonicalHasher::new("rule").finish()
        );
    }
}
