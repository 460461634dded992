//! MLflow's own configuration, read from the environment the way its clients read it:
//! `MLFLOW_TRACKING_URI` (an `http(s)://` server) turns tracking on; the credentials are
//! `MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD` (HTTP Basic, as the server's
//! `basic-auth` app expects) or `MLFLOW_TRACKING_TOKEN` (a bearer token). They are read
//! when a delivery needs them, never stored, and scrubbed from every message.

use std::fmt;
use std::time::Duration;

/// How requests authenticate.
#[derive(Clone, PartialEq)]
pub enum Auth {
    None,
    Basic { user: String, password: String },
    Bearer(String),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Auth::None => "none",
            Auth::Basic { .. } => "basic (redacted)",
            Auth::Bearer(_) => "bearer (redacted)",
        })
    }
}

/// A tracking server and how to reach it.
#[derive(Debug, Clone)]
pub struct Config {
    /// `scheme://host[:port][/prefix]`, without credentials or a trailing `/`.
    pub base: String,
    pub auth: Auth,
    /// Per request.
    pub timeout: Duration,
    /// Extra attempts of a request that failed in transit or with a 5xx / 429.
    pub retries: u32,
}

impl Config {
    /// From the environment; `Ok(None)` without `MLFLOW_TRACKING_URI`, an error for a URI
    /// lakebuild cannot talk to.
    pub fn from_env() -> Result<Option<Config>, String> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let Some(uri) = var("MLFLOW_TRACKING_URI") else {
            return Ok(None);
        };
        let mut auth = match (
            var("MLFLOW_TRACKING_USERNAME"),
            var("MLFLOW_TRACKING_PASSWORD"),
        ) {
            (Some(user), Some(password)) => Auth::Basic { user, password },
            _ => var("MLFLOW_TRACKING_TOKEN").map_or(Auth::None, Auth::Bearer),
        };
        let url = url::Url::parse(&uri).map_err(|_| {
            "MLFLOW_TRACKING_URI is not a URL: set it to the tracking server, e.g. http://127.0.0.1:5000".to_string()
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "MLFLOW_TRACKING_URI uses '{}:', which lakebuild does not speak: point it at a tracking server (http:// or https://)",
                url.scheme()
            ));
        }
        // Credentials in the URI itself count as Basic ones, and never appear again.
        if !url.username().is_empty() && auth == Auth::None {
            auth = Auth::Basic {
                user: url.username().to_string(),
                password: url.password().unwrap_or_default().to_string(),
            };
        }
        let mut clean = url.clone();
        let _ = clean.set_username("");
        let _ = clean.set_password(None);
        let timeout = var("MLFLOW_HTTP_REQUEST_TIMEOUT")
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(Duration::from_secs(10), |s| {
                Duration::from_secs(s.clamp(1, 120))
            });
        let retries = var("MLFLOW_HTTP_REQUEST_MAX_RETRIES")
            .and_then(|v| v.parse::<u32>().ok())
            .map_or(2, |r| r.min(5));
        Ok(Some(Config {
            base: clean.as_str().trim_end_matches('/').to_string(),
            auth,
            timeout,
            retries,
        }))
    }

    /// The credentials' text, for scrubbing.
    fn secrets(&self) -> Vec<&str> {
        match &self.auth {
            Auth::None => vec![],
            Auth::Basic { user, password } => vec![password.as_str(), user.as_str()],
            Auth::Bearer(t) => vec![t.as_str()],
        }
    }

    /// `text` with every credential replaced by `<redacted>`.
    pub fn scrub(&self, text: &str) -> String {
        let mut s = text.to_string();
        for secret in self.secrets().into_iter().filter(|v| v.len() >= 3) {
            s = s.replace(secret, "<redacted>");
            s = s.replace(&base64(secret.as_bytes()), "<redacted>");
        }
        s
    }

    /// The `Authorization` header's value, if any.
    pub fn authorization(&self) -> Option<String> {
        match &self.auth {
            Auth::None => None,
            Auth::Basic { user, password } => Some(format!(
                "Basic {}",
                base64(format!("{user}:{password}").as_bytes())
            )),
            Auth::Bearer(t) => Some(format!("Bearer {t}")),
        }
    }
}

/// Standard base64 with padding (RFC 4648 §4).
pub fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), coded);
        }
    }

    #[test]
    fn credentials_never_show() {
        let c = Config {
            base: "http://127.0.0.1:5000".into(),
            auth: Auth::Basic {
                user: "alice".into(),
                password: "s3cret-pw".into(),
            },
            timeout: Duration::from_secs(1),
            retries: 0,
        };
        let header = c.authorization().unwrap_or_default();
        let msg = format!("failed: {header} for alice with s3cret-pw {c:?}");
        let clean = c.scrub(&msg);
        assert!(
            !clean.contains("s3cret-pw") && !clean.contains("alice"),
            "{clean}"
        );
        assert!(!clean.contains(&base64(b"alice:s3cret-pw")), "{clean}");
    }
}
