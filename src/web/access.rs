//! Who may do what on `lakebuild serve`, checked on every request before any handler:
//!
//! - `Host` must name the server: on a loopback bind, `127.0.0.1`, `localhost` or `[::1]`
//!   with its port, or a name given with `--allow-host` (DNS rebinding points a hostile
//!   name at 127.0.0.1; the browser still sends that name as `Host`). On a non-loopback
//!   bind every read needs the token anyway, so any `Host` is let through unless
//!   `--allow-host` lists the names.
//! - A request with an `Origin` (a browser's) must come from the server's own origin.
//! - Reads need the token when the server is bound beyond loopback (the pages show
//!   predictions and licensed market data).
//! - Actions (POST) need the token always, and are off when `LAKEBUILD_UI_TOKEN` is not
//!   set. A script sends it as `Authorization: Bearer …` or `X-Lakebuild-Token`; a browser
//!   logs in once through the form at `/login`, which sets an HttpOnly, SameSite=Strict
//!   session cookie derived from the token (never the token itself). Every comparison is
//!   between blake3 digests, whose equality is constant-time.

use axum::http::{HeaderMap, header};
use std::net::SocketAddr;

pub const COOKIE: &str = "lakebuild_session";
pub const TOKEN_HEADER: &str = "x-lakebuild-token";

#[derive(Clone)]
pub struct Access {
    bind: SocketAddr,
    allowed_hosts: Vec<String>,
    token: Option<blake3::Hash>,
    session: Option<blake3::Hash>,
}

impl Access {
    pub fn new(bind: SocketAddr, token: Option<&str>, allowed_hosts: Vec<String>) -> Access {
        let token = token
            .filter(|t| !t.is_empty())
            .map(|t| blake3::hash(t.as_bytes()));
        Access {
            bind,
            allowed_hosts: allowed_hosts
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            session: token.map(|t| blake3::keyed_hash(t.as_bytes(), b"lakebuild ui session v1")),
            token,
        }
    }

    pub fn loopback(&self) -> bool {
        self.bind.ip().is_loopback()
    }

    /// Whether actions can be taken at all (a token is configured).
    pub fn actions_enabled(&self) -> bool {
        self.token.is_some()
    }

    /// Whether reading needs the token.
    pub fn reads_need_token(&self) -> bool {
        !self.loopback()
    }

    /// Whether `host` (the `Host` header) names this server.
    pub fn host_ok(&self, host: Option<&str>) -> bool {
        let Some(host) = host.map(str::to_ascii_lowercase) else {
            return false;
        };
        let name = host
            .rsplit_once(':')
            .filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit()))
            .map_or(host.as_str(), |(n, _)| n);
        if self.allowed_hosts.iter().any(|a| *a == host || *a == name) {
            return true;
        }
        let port = self.bind.port();
        if self.loopback() {
            return [
                format!("127.0.0.1:{port}"),
                format!("localhost:{port}"),
                format!("[::1]:{port}"),
            ]
            .contains(&host);
        }
        if self.bind.ip().is_unspecified() {
            return self.allowed_hosts.is_empty();
        }
        host == self.bind.to_string()
    }

    /// Whether `origin` (the `Origin` header, when a browser sent one) is this server's
    /// own, as reached through `host`.
    pub fn origin_ok(&self, origin: &str, host: &str) -> bool {
        origin.eq_ignore_ascii_case(&format!("http://{host}"))
    }

    /// Whether the request carries the token (header) or a session cookie.
    pub fn authenticated(&self, headers: &HeaderMap) -> bool {
        let (Some(token), Some(session)) = (self.token, self.session) else {
            return false;
        };
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let given = bearer.or_else(|| headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()));
        if given.is_some_and(|t| blake3::hash(t.trim().as_bytes()) == token) {
            return true;
        }
        cookies(headers)
            .filter(|(k, _)| *k == COOKIE)
            .filter_map(|(_, v)| blake3::Hash::from_hex(v).ok())
            .any(|v| v == session)
    }

    /// Whether `given` is the token (the login form).
    pub fn token_matches(&self, given: &str) -> bool {
        self.token
            .is_some_and(|t| blake3::hash(given.trim().as_bytes()) == t)
    }

    /// The `Set-Cookie` value of a logged-in browser.
    pub fn session_cookie(&self) -> Option<String> {
        self.session.map(|s| {
            format!(
                "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age=2592000",
                s.to_hex()
            )
        })
    }
}

fn cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn loopback(token: Option<&str>) -> Access {
        Access::new(
            "127.0.0.1:3000".parse().unwrap_or_else(|_| unreachable!()),
            token,
            vec![],
        )
    }

    #[test]
    fn only_the_servers_own_names_pass_the_host_check() {
        let a = loopback(None);
        assert!(a.host_ok(Some("127.0.0.1:3000")));
        assert!(a.host_ok(Some("LOCALHOST:3000")));
        assert!(!a.host_ok(Some("evil.example:3000")), "DNS rebinding");
        assert!(!a.host_ok(Some("127.0.0.1:3001")));
        assert!(!a.host_ok(None));
        let named = Access::new(
            "127.0.0.1:3000".parse().unwrap_or_else(|_| unreachable!()),
            None,
            vec!["ui.internal".into()],
        );
        assert!(named.host_ok(Some("ui.internal:3000")));
        assert!(a.origin_ok("http://127.0.0.1:3000", "127.0.0.1:3000"));
        assert!(!a.origin_ok("http://evil.example", "127.0.0.1:3000"));
    }

    #[test]
    fn the_token_or_its_session_cookie_authenticates_and_nothing_else() {
        let a = loopback(Some("s3cret"));
        let mut h = HeaderMap::new();
        assert!(!a.authenticated(&h));
        h.insert(TOKEN_HEADER, HeaderValue::from_static("s3cret"));
        assert!(a.authenticated(&h));
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer wrong"),
        );
        assert!(!a.authenticated(&h));
        let cookie = a.session_cookie().unwrap_or_default();
        assert!(!cookie.contains("s3cret"), "the cookie is not the token");
        let value = cookie.split(';').next().unwrap_or_default().to_string();
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {value}")).unwrap_or_else(|_| unreachable!()),
        );
        assert!(a.authenticated(&h));
        // No token configured: nothing authenticates, actions are off.
        let none = loopback(None);
        assert!(!none.actions_enabled());
        assert!(!none.authenticated(&h));
    }
}
