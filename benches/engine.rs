//! Engine benchmarks (issue 2). Run with:
//!
//!     cargo bench --bench engine              # default: 10 assets x 2,500 daily partitions
//!     LAKEBUILD_BENCH_DAYS=250 cargo bench --bench engine   # a quicker, smaller lake
//!     LAKEBUILD_BENCH_DAYS=25000 cargo bench --bench engine # ten times the lake (issue 21)
//!
//! Prints: full build time, no-op build time and `status` time (whole process, median of
//! runs), one-new-day incremental build time and its ratio to the full build, and blake3
//! hashing throughput against `b3sum` on the same files when `b3sum` is on PATH.

use lakebuild::engine::sources::hash_file;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::{CODES, bin, write_engine_rules, write_source};

fn run(root: &Path, args: &[&str]) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let out = Command::new(bin())
        .current_dir(root)
        .args(args)
        .env("NO_COLOR", "1")
        .output()?;
    let took = t.elapsed();
    if !out.status.success() {
        anyhow::bail!(
            "lakebuild {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(took)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::var("LAKEBUILD_BENCH_DAYS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2500);
    let dir = tempfile::tempdir()?;
    // LAKEBUILD_BENCH_DIR keeps the lake for inspection.
    let kept = std::env::var("LAKEBUILD_BENCH_DIR")
        .ok()
        .map(std::path::PathBuf::from);
    let root = kept.as_deref().unwrap_or(dir.path());
    std::fs::create_dir_all(root.join("rules"))?;
    write_source(&root.join("data/src.parquet"), n)?;
    write_engine_rules(root)?;
    println!("lake: 10 assets x {n} daily partitions x {CODES} rows (cargo bench --bench engine)");

    let full = run(root, &["build", "-q", "-j", "2"])?;
    println!("full build:                {:>10.1} ms", ms(full));

    let noop = median(
        (0..7)
            .map(|_| run(root, &["build", "-q"]))
            .collect::<anyhow::Result<_>>()?,
    );
    println!(
        "no-op build (process):     {:>10.1} ms   (goal < 100 ms; < 300 ms at 25,000 days)",
        ms(noop)
    );
    let status = median(
        (0..5)
            .map(|_| run(root, &["status"]))
            .collect::<anyhow::Result<_>>()?,
    );
    println!(
        "status (process):          {:>10.1} ms   (goal < 100 ms; < 300 ms at 25,000 days)",
        ms(status)
    );

    write_source(&root.join("data/src.parquet"), n + 1)?;
    let inc = run(root, &["build", "-q", "-j", "2"])?;
    println!(
        "one-new-day incremental:   {:>10.1} ms   = 1/{:.0} of the full build",
        ms(inc),
        full.as_secs_f64() / inc.as_secs_f64()
    );

    // Hashing throughput: 4 files of 256 MiB.
    let hdir = tempfile::tempdir()?;
    let mut files = Vec::new();
    let mut block = vec![0u8; 1 << 20];
    for (i, b) in block.iter_mut().enumerate() {
        *b = (i.wrapping_mul(2654435761) >> 13) as u8;
    }
    for f in 0..4 {
        let p = hdir.path().join(format!("f{f}.bin"));
        let mut data = Vec::with_capacity(256 << 20);
        for k in 0..256 {
            block[0] = k as u8;
            block[1] = f as u8;
            data.extend_from_slice(&block);
        }
        std::fs::write(&p, &data)?;
        files.push(p);
    }
    let total = (4u64 * 256) << 20;
    // Warm the page cache, then time.
    for p in &files {
        hash_file(p)?;
    }
    let t = Instant::now();
    for p in &files {
        hash_file(p)?;
    }
    let ours = t.elapsed();
    println!(
        "blake3 hashing (lakebuild): {:>9.2} GB/s",
        total as f64 / ours.as_secs_f64() / 1e9
    );
    match Command::new("b3sum").arg("--version").output() {
        Ok(o) if o.status.success() => {
            let t = Instant::now();
            let out = Command::new("b3sum").args(&files).output()?;
            let theirs = t.elapsed();
            if out.status.success() {
                println!(
                    "blake3 hashing (b3sum):     {:>9.2} GB/s   (same files, same run)",
                    total as f64 / theirs.as_secs_f64() / 1e9
                );
            }
        }
        _ => println!("b3sum not on PATH (cargo install b3sum) — baseline skipped"),
    }
    Ok(())
}
