//! A client of `lakebuild serve` for the tests: start it on a free port, and speak HTTP/1.1
//! over a plain socket with exactly the headers a test gives (an HTTP library would set
//! its own `Host`).

use super::{Proj, R};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::Duration;

/// A running `lakebuild serve`, killed when dropped.
pub struct Server {
    child: Child,
    pub addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn serve(p: &Proj, bind: &str, env: &[(&str, &str)], extra: &[&str]) -> R<Server> {
    let mut args = vec!["serve", "--bind", bind];
    args.extend(extra);
    let mut c = p.cmd(&args);
    c.env_remove("LAKEBUILD_UI_TOKEN");
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn()?;
    let mut line = String::new();
    let stdout = child.stdout.take().ok_or("no stdout")?;
    BufReader::new(stdout).read_line(&mut line)?;
    // "lakebuild serve: http://127.0.0.1:PORT/ (…)"
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .ok_or_else(|| format!("serve printed no address: {line:?}"))?
        .to_string();
    Ok(Server { child, addr })
}

pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> R<Value> {
        serde_json::from_str(&self.body)
            .map_err(|e| format!("not JSON ({e}): {} {}", self.status, self.body).into())
    }
}

/// One HTTP/1.1 request over a plain socket, headers exactly as given (a `Host` of our
/// choosing included: an HTTP client library would set its own).
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> R<Answer> {
    let mut s = TcpStream::connect(addr.replace("0.0.0.0", "127.0.0.1"))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .ok_or("no status line")?
        .parse()?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Ok(Answer {
        status,
        head: head.to_string(),
        body,
    })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

pub fn get(addr: &str, path: &str) -> R<Value> {
    let a = http(addr, "GET", path, &[], "")?;
    if a.status != 200 {
        return Err(format!("GET {path}: {} {}", a.status, a.body).into());
    }
    a.json()
}
