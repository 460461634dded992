//! Alerts through the binary: a webhook received by a real HTTP server on 127.0.0.1 with
//! the expected body, one alert per open problem and one recovery, a command receiving
//! the alert on stdin, and an unreachable webhook that changes nothing about the build.

mod common;
use common::*;
use lakebuild::orchestration::alerts::Alert;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// A minimal HTTP server that records every POST body and answers 200.
fn hook_server() -> R<(String, Arc<Mutex<Vec<String>>>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(match stream.try_clone() {
                Ok(s) => s,
                Err(_) => continue,
            });
            let mut len = 0usize;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                if line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0u8; len];
            if reader.read_exact(&mut body).is_ok()
                && let Ok(mut b) = seen.lock()
            {
                b.push(String::from_utf8_lossy(&body).to_string());
            }
            let mut s = stream;
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    Ok((url, bodies))
}

fn alerts(bodies: &Arc<Mutex<Vec<String>>>) -> Vec<Alert> {
    bodies
        .lock()
        .map(|b| {
            b.iter()
                .filter_map(|t| serde_json::from_str(t).ok())
                .collect()
        })
        .unwrap_or_default()
}

const FLAKY: &str = r#"
op = "command"
[params]
run = "test -f healthy || { echo 'upstream feed is down' >&2; exit 3; }; printf 'x\n1\n' > \"$LAKEBUILD_OUTPUT_DIR/out.csv\""
"#;

#[test]
fn a_failure_is_announced_once_and_its_recovery_once() -> R {
    let p = Proj::new()?;
    p.rule("feed", FLAKY)?;
    let (url, bodies) = hook_server()?;
    p.write(
        "rules/alerts/ops.toml",
        &format!("webhook = \"{url}\"\ncommand = [\"sh\", \"-c\", \"cat >> alerts.jsonl\"]\n"),
    )?;
    p.fails(&["build"], 1)?;
    let a = alerts(&bodies);
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0].status, "firing");
    assert_eq!(a[0].asset, "feed");
    assert!(
        a[0].text.contains("build failed — feed") && a[0].text.contains("upstream feed is down"),
        "{}",
        a[0].text
    );
    // The same problem again: no second alert.
    p.fails(&["build"], 1)?;
    assert_eq!(alerts(&bodies).len(), 1);
    // Fixed: one recovery.
    p.write("healthy", "")?;
    p.ok(&["build"])?;
    let a = alerts(&bodies);
    assert_eq!(a.len(), 2, "{a:?}");
    assert_eq!(a[1].status, "resolved");
    assert!(a[1].text.contains("resolved — feed"), "{}", a[1].text);
    p.ok(&["build", "--force"])?;
    assert_eq!(alerts(&bodies).len(), 2);
    // The command destination got the same two alerts on stdin.
    let lines: Vec<Alert> = std::fs::read_to_string(p.path("alerts.jsonl"))?
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(
        lines.iter().map(|a| a.status.as_str()).collect::<Vec<_>>(),
        ["firing", "resolved"]
    );
    Ok(())
}

#[test]
fn an_unreachable_webhook_neither_fails_nor_blocks_the_build() -> R {
    let p = pipeline(3)?;
    // A port nobody listens on, and a warn check that fails so there is something to send.
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    p.write(
        "rules/alerts/dead.toml",
        &format!("webhook = \"http://127.0.0.1:{port}/x\"\ntimeout = \"1s\"\nattempts = 2\n"),
    )?;
    let rule = format!(
        "{PRICES_RULE}\n[[checks]]\nname = \"few_rows\"\nkind = \"row_count\"\nmin = 1000\nseverity = \"warn\"\n"
    );
    p.rule("prices", &rule)?;
    let t = std::time::Instant::now();
    let out = p.run(&["build"])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(t.elapsed().as_secs() < 30);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("could not notify 'dead'") && err.contains("unaffected"),
        "{err}"
    );
    assert!(p.version("summary")?.is_some());
    Ok(())
}

#[test]
fn bad_destinations_are_refused_with_their_file() -> R {
    let p = pipeline(3)?;
    p.write("rules/alerts/x.toml", "webhook = \"not a url\"\n")?;
    let out = p.run(&["build"])?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rules/alerts/x.toml") && err.contains("is not a URL"),
        "{err}"
    );
    Ok(())
}
