//! Model benchmarks (issue 5). Run with:
//!
//!     cargo bench --bench model
//!
//! Builds the repository's market, features and labels at the default size (300 stocks
//! from 2023-01-04 to `LAKEBUILD_BENCH_NOW`, default 2026-10-30; `LAKEBUILD_BENCH_DIR`
//! keeps the lake) and, with the training config of `rules/trained_model.toml`, prints:
//! - training throughput (stock-days/s, forward + backward + AdamW) and inference time per
//!   day at the default size and at full scale (4,000 stocks, a synthetic day batch);
//! - walk-forward validation RankIC per horizon of the model, of a ridge regression on the
//!   same features and folds, and the oracle IC of the planted component on the same days;
//! - the ablation of MODEL.md: the same training without GAT, without the temporal block,
//!   without FAN (`LAKEBUILD_BENCH_ABLATION=0` skips it).
//!
//! `LAKEBUILD_BENCH_THROUGHPUT=0` skips the throughput part; `LAKEBUILD_BENCH_PARAMS` (a
//! JSON object) overrides the rule's params, for experiments.

mod common;
use common::bench_root;
use lakebuild::jp_equity::features::manifest::Manifest;
use lakebuild::jp_equity::model::dataset::Panel;
use lakebuild::jp_equity::model::graph::build_graph;
use lakebuild::jp_equity::model::loss::{LossConfig, loss_and_grad};
use lakebuild::jp_equity::model::metrics::{day_metrics, pearson, summarize};
use lakebuild::jp_equity::model::network::{DayInput, ModelConfig, Network};
use lakebuild::jp_equity::model::optim::{AdamW, AdamWConfig};
use lakebuild::jp_equity::model::train::{Checkpoints, TrainConfig, Trained, train};
use lakebuild::jp_equity::model::walk_forward::WalkForward;
use lakebuild::jp_equity::ops::train::{model_columns, model_config, train_config};
use lakebuild::lake::Lake;
use polars::prelude::*;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn frame(root: &Path, asset: &str) -> anyhow::Result<DataFrame> {
    let table = Lake::new(root.join("lake")).table(asset);
    let files: Vec<_> = lakebuild::lake::log::load(&table)?
        .active_files
        .keys()
        .map(|f| table.join(f))
        .collect();
    Ok(lakebuild::lake::parquet::scan_files(&files)?.collect()?)
}

/// Training throughput: `steps` forward + backward + AdamW steps on `days`.
fn throughput(net: &Network, days: &[DayInput<f32>], ys: &[(Vec<f32>, Vec<bool>)]) -> (f64, f64) {
    let mut p: Vec<f32> = net.init(1);
    let mut opt = AdamW::new(p.len());
    let cfg = AdamWConfig {
        total_steps: 1000,
        warmup_steps: 10,
        ..AdamWConfig::default()
    };
    let t = Instant::now();
    let mut stock_days = 0;
    for (d, (y, v)) in days.iter().zip(ys) {
        let drop = net.dropout::<f32>(d.n, 1, opt.step);
        let (q, cache) = net.forward(&p, d, drop.as_ref());
        let (_, dq) = loss_and_grad(&LossConfig::default(), &q, y, v, d.n, net.cfg.horizons);
        let mut g = vec![0f32; p.len()];
        net.backward(&p, &cache, d, &dq, &mut g);
        opt.step(&cfg, &mut p, &mut g, None);
        stock_days += d.n;
    }
    let train = stock_days as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for d in days {
        let _ = net.forward(&p, d, None);
    }
    (
        train,
        t.elapsed().as_secs_f64() * 1000.0 / days.len() as f64,
    )
}

fn synthetic_day(cfg: &ModelConfig, n: usize, seed: u64) -> (DayInput<f32>, (Vec<f32>, Vec<bool>)) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let x: Vec<f32> = (0..n * cfg.t * cfg.features)
        .map(|_| rng.random_range(-2.0..2.0))
        .collect();
    let mask = vec![1f32; n * cfg.t * cfg.masks];
    let ret: Vec<f64> = (0..n * cfg.t)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let sector: Vec<u32> = (0..n as u32).map(|i| i % 33).collect();
    let graph = build_graph(&ret, &sector, &cfg.graph());
    let y: Vec<f32> = (0..n * cfg.horizons)
        .map(|_| rng.random_range(-2.0..2.0))
        .collect();
    (
        DayInput { n, x, mask, graph },
        (y, vec![true; n * cfg.horizons]),
    )
}

fn mean_by_horizon(t: &Trained, horizons: &[String]) -> Vec<f64> {
    horizons
        .iter()
        .map(|h| {
            let v: Vec<f64> = t
                .folds
                .iter()
                .flat_map(|f| {
                    f.horizons
                        .iter()
                        .filter(|x| &x.horizon == h)
                        .map(|x| x.rank_ic)
                })
                .collect();
            v.iter().sum::<f64>() / v.len().max(1) as f64
        })
        .collect()
}

/// Ridge regression of each horizon's day-z-scored label on the last day's inputs, fitted
/// on each fold's training days and scored on its validation days (the model's folds).
fn ridge(panel: &Panel, cfg: &ModelConfig, tc: &TrainConfig, lambda: f64) -> Vec<f64> {
    let hz = panel.horizons.len();
    let width = cfg.features + cfg.masks;
    let labelled: Vec<usize> = (0..panel.dates.len())
        .filter(|&d| d + 1 >= cfg.t && panel.labelled(d))
        .collect();
    let last = *labelled.last().unwrap_or(&0);
    let base = cfg.t - 1;
    let wf = WalkForward {
        folds: tc.folds,
        embargo: tc.embargo,
        min_train: tc.min_train_days,
    };
    let Ok(folds) = wf.split(last + 1 - base) else {
        return vec![f64::NAN; hz];
    };
    let graph = cfg.graph();
    let row = |s: &lakebuild::jp_equity::model::dataset::Sample, i: usize| -> Vec<f64> {
        let t = cfg.t;
        let mut r: Vec<f64> = s.input.x[(i * t + t - 1) * cfg.features..(i * t + t) * cfg.features]
            .iter()
            .map(|v| *v as f64)
            .collect();
        r.extend(
            s.input.mask[(i * t + t - 1) * cfg.masks..(i * t + t) * cfg.masks]
                .iter()
                .map(|v| *v as f64),
        );
        r.push(1.0);
        r
    };
    let mut per: Vec<Vec<lakebuild::jp_equity::model::metrics::DayMetrics>> = vec![Vec::new(); hz];
    for f in folds {
        for (h, per_h) in per.iter_mut().enumerate() {
            let k = width + 1;
            let mut xtx = vec![0f64; k * k];
            let mut xty = vec![0f64; k];
            for d in f.train.clone().map(|d| d + base) {
                let Some(s) = panel.sample(d, cfg.t, &graph) else {
                    continue;
                };
                for i in 0..s.input.n {
                    if !s.valid[i * hz + h] {
                        continue;
                    }
                    let r = row(&s, i);
                    for a in 0..k {
                        xty[a] += r[a] * s.y[i * hz + h] as f64;
                        for b in 0..k {
                            xtx[a * k + b] += r[a] * r[b];
                        }
                    }
                }
            }
            for a in 0..k - 1 {
                xtx[a * k + a] += lambda;
            }
            let w = solve(xtx, xty, k);
            for d in f.valid.clone().map(|d| d + base) {
                let Some(s) = panel.sample(d, cfg.t, &graph) else {
                    continue;
                };
                let (a, b): (Vec<f64>, Vec<f64>) = (0..s.input.n)
                    .filter(|i| s.raw_y[i * hz + h].is_finite())
                    .map(|i| {
                        (
                            row(&s, i).iter().zip(&w).map(|(x, w)| x * w).sum::<f64>(),
                            s.raw_y[i * hz + h],
                        )
                    })
                    .unzip();
                per_h.extend(day_metrics(&a, &b));
            }
        }
    }
    per.iter().map(|d| summarize(d).rank_ic).collect()
}

/// Gaussian elimination with partial pivoting (k ≈ 45).
fn solve(mut a: Vec<f64>, mut b: Vec<f64>, k: usize) -> Vec<f64> {
    for c in 0..k {
        let p = (c..k)
            .max_by(|&i, &j| a[i * k + c].abs().total_cmp(&a[j * k + c].abs()))
            .unwrap_or(c);
        for j in 0..k {
            a.swap(c * k + j, p * k + j);
        }
        b.swap(c, p);
        let piv = a[c * k + c];
        if piv.abs() < 1e-12 {
            continue;
        }
        for i in c + 1..k {
            let f = a[i * k + c] / piv;
            for j in c..k {
                a[i * k + j] -= f * a[c * k + j];
            }
            b[i] -= f * b[c];
        }
    }
    let mut x = vec![0f64; k];
    for c in (0..k).rev() {
        let s: f64 = (c + 1..k).map(|j| a[c * k + j] * x[j]).sum();
        x[c] = if a[c * k + c].abs() < 1e-12 {
            0.0
        } else {
            (b[c] - s) / a[c * k + c]
        };
    }
    x
}

/// Oracle IC per horizon on the validation days of the folds.
fn oracle(root: &Path, t: &Trained, horizons: &[String]) -> anyhow::Result<Vec<f64>> {
    let joined = frame(root, "synthetic_truth")?
        .lazy()
        .join(
            frame(root, "labels")?.lazy(),
            [col("Code"), col("Date")],
            [col("Code"), col("Date")],
            JoinArgs::new(JoinType::Inner),
        )
        .collect()?;
    let dates = joined.column("Date")?.cast(&DataType::String)?;
    let dates: Vec<String> = dates
        .str()?
        .iter()
        .map(|d| d.unwrap_or("").to_string())
        .collect();
    let planted: Vec<f64> = joined
        .column("planted_next")?
        .cast(&DataType::Float64)?
        .f64()?
        .iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect();
    let mut out = Vec::new();
    for h in horizons {
        let y: Vec<f64> = joined
            .column(h)?
            .cast(&DataType::Float64)?
            .f64()?
            .iter()
            .map(|v| v.unwrap_or(f64::NAN))
            .collect();
        let mut by_day: HashMap<&str, (Vec<f64>, Vec<f64>)> = HashMap::new();
        for i in 0..dates.len() {
            if planted[i].is_finite() && y[i].is_finite() {
                let e = by_day.entry(dates[i].as_str()).or_default();
                e.0.push(planted[i]);
                e.1.push(y[i]);
            }
        }
        let mut ics = Vec::new();
        for f in &t.folds {
            for (d, (a, b)) in &by_day {
                let Ok(day) = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d") else {
                    continue;
                };
                if day >= f.valid_first && day <= f.valid_last && a.len() >= 20 {
                    ics.extend(pearson(a, b));
                }
            }
        }
        out.push(ics.iter().sum::<f64>() / ics.len().max(1) as f64);
    }
    Ok(out)
}

fn main() -> anyhow::Result<()> {
    let now = std::env::var("LAKEBUILD_BENCH_NOW").unwrap_or_else(|_| "2026-10-30".into());
    let (_tmp, root) = bench_root()?;
    std::fs::create_dir_all(root.join("rules"))?;
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    for entry in std::fs::read_dir(&rules)? {
        let p = entry?.path();
        // The asset rules only (not rules/jobs/).
        if !p.is_file() {
            continue;
        }
        if let Some(name) = p.file_name() {
            std::fs::copy(&p, root.join("rules").join(name))?;
        }
    }
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_lakebuild"))
        .current_dir(&root)
        .args([
            "build",
            "-q",
            "processed_features",
            "labels",
            "synthetic_truth",
        ])
        .env("LAKEBUILD_NOW", &now)
        .output()?;
    if !out.status.success() {
        anyhow::bail!(
            "building the inputs failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    println!(
        "model benchmark: default market (300 stocks) to {now}, inputs built in {:.1} s, lake in {}",
        t.elapsed().as_secs_f64(),
        root.display()
    );

    let manifest = Manifest::read(&Lake::new(root.join("lake")).table("processed_features"))?;
    let (features, masks) = model_columns(&manifest);
    let labels = frame(&root, "labels")?;
    let horizons: Vec<String> = labels
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .filter(|c| c.starts_with("fwd_ret_"))
        .collect();
    let mut cols = vec![col("Code"), col("Date"), col("S33")];
    cols.extend(features.iter().chain(&masks).map(|c| col(c.as_str())));
    let fdf = frame(&root, "processed_features")?
        .lazy()
        .select(cols)
        .collect()?;
    let panel = Panel::from_frames(&fdf, Some(&labels), &features, &masks, &horizons)?;
    let rule: toml::Value =
        toml::from_str(&std::fs::read_to_string(rules.join("trained_model.toml"))?)?;
    let mut params: serde_json::Value = serde_json::to_value(
        rule.get("params")
            .cloned()
            .unwrap_or(toml::Value::Table(Default::default())),
    )?;
    // LAKEBUILD_BENCH_PARAMS='{"lr": 0.002}' overrides params of the rule (experiments).
    if let Ok(extra) = std::env::var("LAKEBUILD_BENCH_PARAMS") {
        let extra: serde_json::Value = serde_json::from_str(&extra)?;
        if let (Some(p), Some(e)) = (params.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                p.insert(k.clone(), v.clone());
            }
        }
        println!("params overridden: {extra}");
    }
    let cfg = model_config(&params, features.len(), masks.len(), horizons.len())
        .map_err(anyhow::Error::msg)?;
    let tc = train_config(&params).map_err(anyhow::Error::msg)?;
    println!(
        "config (rules/trained_model.toml): hidden {}, window {}, {} folds, up to {} epochs of {:?} days",
        cfg.hidden, cfg.t, tc.folds, tc.epochs, tc.days_per_epoch
    );

    // Throughput on 24 real days, at the rule's width and at MODEL.md's H = 64.
    let days: Vec<_> = (panel.dates.len().saturating_sub(60)..panel.dates.len())
        .step_by(2)
        .filter_map(|d| panel.sample(d, cfg.t, &cfg.graph()))
        .take(24)
        .collect();
    let n_avg = days.iter().map(|s| s.input.n).sum::<usize>() as f64 / days.len().max(1) as f64;
    if std::env::var("LAKEBUILD_BENCH_THROUGHPUT").as_deref() != Ok("0") {
        println!("\nthroughput (threads: {}):", rayon::current_num_threads());
        println!("| size | H | train stock-days/s | train ms/day | inference ms/day |");
        println!("| --- | --- | --- | --- | --- |");
        for h in [cfg.hidden, 64] {
            let c = ModelConfig {
                hidden: h,
                ..cfg.clone()
            };
            let net = Network::new(c).map_err(anyhow::Error::msg)?;
            let inputs: Vec<DayInput<f32>> = days.iter().map(|s| s.input.clone()).collect();
            let ys: Vec<(Vec<f32>, Vec<bool>)> = days
                .iter()
                .map(|s| (s.y.clone(), s.valid.clone()))
                .collect();
            let (sd, inf) = throughput(&net, &inputs, &ys);
            println!(
                "| default ({n_avg:.0} stocks/day) | {h} | {sd:.0} | {:.0} | {inf:.1} |",
                n_avg * 1000.0 / sd
            );
        }
        for h in [cfg.hidden, 64] {
            let c = ModelConfig {
                hidden: h,
                ..cfg.clone()
            };
            let net = Network::new(c.clone()).map_err(anyhow::Error::msg)?;
            let (inputs, ys): (Vec<_>, Vec<_>) = (0..3).map(|i| synthetic_day(&c, 4000, i)).unzip();
            let (sd, inf) = throughput(&net, &inputs, &ys);
            println!(
                "| full scale (4000 stocks/day) | {h} | {sd:.0} | {:.0} | {inf:.1} |",
                4000.0 * 1000.0 / sd
            );
        }
    }

    // Quality: the rule's training, the ridge baseline and the oracle on the same folds.
    let t = Instant::now();
    let trained = train(&cfg, &tc, &panel, &Checkpoints { file: None }, &mut |_| {})
        .map_err(anyhow::Error::msg)?;
    let secs = t.elapsed().as_secs_f64();
    let model = mean_by_horizon(&trained, &horizons);
    let ridge_ic = ridge(&panel, &cfg, &tc, 100.0);
    let oracle_ic = oracle(&root, &trained, &horizons)?;
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:+.4}"))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    println!(
        "\nvalidation RankIC per horizon ({} folds, {} validation days; training {secs:.0} s):",
        trained.folds.len(),
        trained.folds.iter().map(|f| f.valid_days).sum::<usize>()
    );
    println!("| | {} |", horizons.join(" | "));
    println!("| --- |{}", " --- |".repeat(horizons.len()));
    println!("| ATFT-GAT-FAN | {} |", fmt(&model));
    println!("| ridge (λ = 100) | {} |", fmt(&ridge_ic));
    println!(
        "| oracle IC (Pearson of the planted component) | {} |",
        fmt(&oracle_ic)
    );
    println!(
        "| model / oracle | {} |",
        fmt(&model
            .iter()
            .zip(&oracle_ic)
            .map(|(m, o)| m / o)
            .collect::<Vec<_>>())
    );

    if std::env::var("LAKEBUILD_BENCH_ABLATION").as_deref() != Ok("0") {
        println!("\nablation (same config and folds):");
        println!("| variant | {} | mean | training s |", horizons.join(" | "));
        println!("| --- |{} --- | --- |", " --- |".repeat(horizons.len()));
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        println!(
            "| full model | {} | {:+.4} | {secs:.0} |",
            fmt(&model),
            mean(&model)
        );
        for (name, c) in [
            (
                "without GAT",
                ModelConfig {
                    use_gat: false,
                    ..cfg.clone()
                },
            ),
            (
                "without the temporal block",
                ModelConfig {
                    use_temporal: false,
                    ..cfg.clone()
                },
            ),
            (
                "without FAN",
                ModelConfig {
                    use_fan: false,
                    ..cfg.clone()
                },
            ),
        ] {
            let t = Instant::now();
            let tr = train(&c, &tc, &panel, &Checkpoints { file: None }, &mut |_| {})
                .map_err(anyhow::Error::msg)?;
            let v = mean_by_horizon(&tr, &horizons);
            println!(
                "| {name} | {} | {:+.4} | {:.0} |",
                fmt(&v),
                mean(&v),
                t.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}
