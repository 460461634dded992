//! Model benchmarks (issues 5 and 13). Run with:
//!
//!     cargo bench --bench model
//!
//! Builds the repository's market, features and labels at the default size (300 stocks
//! from `LAKEBUILD_BENCH_START`, default the rules' 2023-01-04, to `LAKEBUILD_BENCH_NOW`,
//! default 2026-10-30; `LAKEBUILD_BENCH_DIR` keeps the lake) and, with the training
//! config of `rules/trained_model.toml`, prints:
//! - training throughput (stock-days/s, forward + backward + AdamW) and inference time per
//!   day at the default size and at full scale (4,000 stocks, a synthetic day batch);
//! - the day graph's recovery of the synthetic market's planted lead-lag links (recall,
//!   precision, in-degree) for the same-day graph and the graph with lead-lag partners;
//! - walk-forward validation RankIC per horizon of the model, of two ridge baselines on
//!   the same folds (the last day's inputs; the last day's and the window's mean), each
//!   with its λ chosen by an inner walk-forward split of the fold's training days, and the
//!   oracle IC of the planted component on the same days; every mean with its Newey–West
//!   standard error (lags: the plug-in rule, at least horizon − 1 days);
//! - the ablation of MODEL.md on the same folds and seed: without the graph block, the
//!   GATv2 layers without the linear graph path, the same-day graph only, the graph on the
//!   true links (the upper bound of the graph block), without the temporal block, without
//!   FAN, without the skip path; and the paired differences that the goals are stated in.
//!
//! `LAKEBUILD_BENCH_THROUGHPUT=0` skips the throughput part, `LAKEBUILD_BENCH_ABLATION=0`
//! the ablation; `LAKEBUILD_BENCH_ONLY=graph` prints the graph's link recovery over a grid
//! of lead-lag settings and stops; `LAKEBUILD_BENCH_PARAMS` (a JSON object) overrides the
//! rule's params, for experiments.

mod common;
use chrono::NaiveDate;
use common::bench_root;
use lakebuild::jp_equity::features::manifest::Manifest;
use lakebuild::jp_equity::model::dataset::Panel;
use lakebuild::jp_equity::model::graph::{GraphConfig, LinkRecovery, build_graph, link_recovery};
use lakebuild::jp_equity::model::loss::{LossConfig, loss_and_grad};
use lakebuild::jp_equity::model::metrics::{newey_west_lags, newey_west_se, pearson};
use lakebuild::jp_equity::model::network::{DayInput, ModelConfig, Network};
use lakebuild::jp_equity::model::optim::{AdamW, AdamWConfig};
use lakebuild::jp_equity::model::ridge::{DayRows, day_rank_ic, fit_walk_forward};
use lakebuild::jp_equity::model::train::{Checkpoints, TrainConfig, Trained, train};
use lakebuild::jp_equity::model::walk_forward::WalkForward;
use lakebuild::jp_equity::ops::train::{model_columns, model_config, train_config};
use lakebuild::lake::Lake;
use polars::prelude::*;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap};
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

/// A daily series per horizon: date → that day's RankIC (or IC), in date order.
type Daily = Vec<BTreeMap<NaiveDate, f64>>;

/// The model's validation RankIC per day and horizon, over all folds.
fn model_daily(t: &Trained, horizons: &[String]) -> Daily {
    horizons
        .iter()
        .map(|h| {
            t.folds
                .iter()
                .flat_map(|f| f.days.iter().filter(|d| &d.horizon == h))
                .map(|d| (d.date, d.rank_ic))
                .collect()
        })
        .collect()
}

/// Mean and Newey–West standard error of a daily series (horizon `h_days` days).
fn mean_se(x: &BTreeMap<NaiveDate, f64>, h_days: usize) -> (f64, f64) {
    let v: Vec<f64> = x.values().copied().collect();
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    let lags = newey_west_lags(v.len(), h_days.saturating_sub(1));
    (mean, newey_west_se(&v, lags))
}

/// `a − b` on the days both have.
fn paired(a: &BTreeMap<NaiveDate, f64>, b: &BTreeMap<NaiveDate, f64>) -> BTreeMap<NaiveDate, f64> {
    a.iter()
        .filter_map(|(d, x)| b.get(d).map(|y| (*d, x - y)))
        .collect()
}

/// The trading days of a horizon column `fwd_ret_<h>d`.
/// Ridge inputs of every sample day (with its date): the last day's features and masks,
/// and with `window_mean` also their means over the window (plus an intercept).
fn ridge_rows(
    panel: &Panel,
    cfg: &ModelConfig,
    window_mean: bool,
) -> (BTreeMap<usize, (NaiveDate, DayRows)>, usize) {
    let (t, nf, nm) = (cfg.t, cfg.features, cfg.masks);
    let width = (nf + nm) * if window_mean { 2 } else { 1 } + 1;
    // The graph is not used: the cheapest one.
    let graph = GraphConfig {
        k: 0,
        sector_cap: 0,
        lag_k: 0,
        ..GraphConfig::default()
    };
    let rows = (0..panel.dates.len())
        .into_par_iter()
        .filter(|&d| d + 1 >= t && panel.labelled(d))
        .filter_map(|d| {
            let s = panel.sample(d, t, &graph)?;
            let mut x = Vec::with_capacity(s.input.n * width);
            for i in 0..s.input.n {
                let last = i * t + t - 1;
                x.extend(
                    s.input.x[last * nf..(last + 1) * nf]
                        .iter()
                        .map(|v| *v as f64),
                );
                x.extend(
                    s.input.mask[last * nm..(last + 1) * nm]
                        .iter()
                        .map(|v| *v as f64),
                );
                if window_mean {
                    for j in 0..nf {
                        x.push(
                            (0..t)
                                .map(|e| s.input.x[(i * t + e) * nf + j] as f64)
                                .sum::<f64>()
                                / t as f64,
                        );
                    }
                    for j in 0..nm {
                        x.push(
                            (0..t)
                                .map(|e| s.input.mask[(i * t + e) * nm + j] as f64)
                                .sum::<f64>()
                                / t as f64,
                        );
                    }
                }
                x.push(1.0);
            }
            let rows = DayRows {
                n: s.input.n,
                x,
                y: s.y,
                valid: s.valid,
                raw_y: s.raw_y,
            };
            Some((d, (panel.dates[d], rows)))
        })
        .collect();
    (rows, width)
}

/// Ridge on the model's folds, λ per fold and horizon chosen from `ridge::LAMBDAS` by an
/// inner walk-forward split of the fold's training days (`ridge::fit_walk_forward`, the
/// same fit that starts the model's linear paths). Returns the daily RankIC and the
/// chosen λs.
fn ridge(
    panel: &Panel,
    cfg: &ModelConfig,
    tc: &TrainConfig,
    window_mean: bool,
) -> (Daily, Vec<Vec<f64>>) {
    let hz = panel.horizons.len();
    let (rows, k) = ridge_rows(panel, cfg, window_mean);
    let base = cfg.t - 1;
    let last = rows.keys().next_back().copied().unwrap_or(0);
    let wf = WalkForward {
        folds: tc.folds,
        embargo: tc.embargo,
        min_train: tc.min_train_days,
    };
    let mut daily: Daily = vec![BTreeMap::new(); hz];
    let mut chosen = vec![Vec::new(); hz];
    let Ok(folds) = wf.split(last + 1 - base) else {
        return (daily, chosen);
    };
    for f in folds {
        let train: Vec<usize> = f.train.clone().map(|d| d + base).collect();
        let fit = fit_walk_forward(&train, tc.embargo, k, hz, |d| {
            rows.get(&d).map(|r| r.1.clone())
        });
        for h in 0..hz {
            chosen[h].push(fit.lambdas[h]);
            daily[h].extend(f.valid.clone().filter_map(|d| {
                let (date, r) = rows.get(&(d + base))?;
                Some((*date, day_rank_ic(r, &fit.weights[h], h, hz)?))
            }));
        }
    }
    (daily, chosen)
}

/// The oracle IC per day and horizon on the model's validation days.
fn oracle(root: &Path, t: &Trained, horizons: &[String]) -> anyhow::Result<Daily> {
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
    let valid_day = |day: NaiveDate| {
        t.folds
            .iter()
            .any(|f| day >= f.valid_first && day <= f.valid_last)
    };
    let mut out = Vec::new();
    for h in horizons {
        let y: Vec<f64> = joined
            .column(h)?
            .cast(&DataType::Float64)?
            .f64()?
            .iter()
            .map(|v| v.unwrap_or(f64::NAN))
            .collect();
        let mut by_day: BTreeMap<NaiveDate, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
        for i in 0..dates.len() {
            let Ok(day) = NaiveDate::parse_from_str(&dates[i], "%Y-%m-%d") else {
                continue;
            };
            if planted[i].is_finite() && y[i].is_finite() && valid_day(day) {
                let e = by_day.entry(day).or_default();
                e.0.push(planted[i]);
                e.1.push(y[i]);
            }
        }
        out.push(
            by_day
                .into_iter()
                .filter(|(_, (a, _))| a.len() >= 20)
                .filter_map(|(d, (a, b))| pearson(&a, &b).map(|ic| (d, ic)))
                .collect(),
        );
    }
    Ok(out)
}

/// The planted leader of each follower, by code.
fn true_leaders(root: &Path) -> anyhow::Result<HashMap<String, String>> {
    let df = frame(root, "synthetic_truth")?
        .lazy()
        .select([col("Code"), col("leader")])
        .filter(col("leader").is_not_null())
        .unique(None, UniqueKeepStrategy::First)
        .collect()?;
    let codes = df.column("Code")?.cast(&DataType::String)?;
    let leaders = df.column("leader")?.cast(&DataType::String)?;
    Ok(codes
        .str()?
        .iter()
        .zip(leaders.str()?.iter())
        .filter_map(|(c, l)| Some((c?.to_string(), l?.to_string())))
        .collect())
}

/// Link recovery of `graph` over `days`, and how many of the found links are lead-lag
/// partner edges, with the number of partner edges.
fn recovery(
    panel: &Panel,
    t: usize,
    graph: &GraphConfig,
    days: &[usize],
) -> (LinkRecovery, usize, usize) {
    let parts: Vec<(LinkRecovery, usize, usize)> = days
        .par_iter()
        .filter_map(|&d| {
            let s = panel.sample(d, t, graph)?;
            let truth = s.true_leaders.as_ref()?;
            let g = &s.input.graph;
            let rec = link_recovery(g, truth);
            let (mut found, mut edges) = (0, 0);
            if g.edge_dim == 4 {
                for (i, &leader) in truth.iter().enumerate().take(g.n) {
                    for e in g.offsets[i]..g.offsets[i + 1] {
                        if g.edge_feat[4 * e + 3] == 1.0 {
                            edges += 1;
                            found += usize::from(leader == Some(g.src[e]));
                        }
                    }
                }
            }
            Some((rec, found, edges))
        })
        .collect();
    let mut total = (LinkRecovery::default(), 0, 0);
    for (r, f, e) in parts {
        total.0.add(&r);
        total.1 += f;
        total.2 += e;
    }
    total
}

fn recovery_row(name: &str, (r, found, edges): &(LinkRecovery, usize, usize)) -> String {
    let partner = if *edges > 0 {
        format!(
            "{:.3} | {:.3}",
            *found as f64 / r.links.max(1) as f64,
            *found as f64 / *edges as f64
        )
    } else {
        "– | –".into()
    };
    format!(
        "| {name} | {:.1} | {:.3} | {:.3} | {:.4} | {partner} |",
        r.mean_in_degree(),
        r.recall(),
        r.random_recall(),
        r.precision(),
    )
}

const RECOVERY_HEADER: &str = "| graph | in-edges per node | recall of true links | recall of a random graph of that degree | precision (a follower's in-edges from its leader) | recall by partner edges | precision of partner edges |\n| --- | --- | --- | --- | --- | --- | --- |";

fn main() -> anyhow::Result<()> {
    let now = std::env::var("LAKEBUILD_BENCH_NOW").unwrap_or_else(|_| "2026-10-30".into());
    let start = std::env::var("LAKEBUILD_BENCH_START").unwrap_or_else(|_| "2023-01-04".into());
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
            let text = std::fs::read_to_string(&p)?;
            std::fs::write(
                root.join("rules").join(name),
                text.replace("2023-01-04", &start),
            )?;
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
    let mut panel = Panel::from_frames(&fdf, Some(&labels), &features, &masks, &horizons)?
        .with_true_leaders(&true_leaders(&root)?);
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
        "config (rules/trained_model.toml): hidden {}, window {}, graph lead-lag partners {} over {} days, {} folds, up to {} epochs of {:?} days",
        cfg.hidden,
        cfg.t,
        cfg.graph_lag_k,
        cfg.graph_lag_lookback,
        tc.folds,
        tc.epochs,
        tc.days_per_epoch
    );

    // The graph's recovery of the planted links, every 5th sample day.
    let sample_days: Vec<usize> = (0..panel.dates.len())
        .filter(|&d| d + 1 >= cfg.t && panel.labelled(d))
        .step_by(5)
        .collect();
    let same_day = cfg.graph().same_day_only();
    if std::env::var("LAKEBUILD_BENCH_ONLY").as_deref() == Ok("graph") {
        println!("\nlink recovery over {} days (grid):", sample_days.len());
        println!("{RECOVERY_HEADER}");
        println!(
            "{}",
            recovery_row(
                "same-day correlation and sector",
                &recovery(&panel, cfg.t, &same_day, &sample_days)
            )
        );
        for lookback in [60, 120, 250, 500] {
            for lag_k in [1, 3, 5, 10] {
                let g = GraphConfig {
                    lag_k,
                    lag_lookback: lookback,
                    ..same_day
                };
                let name = format!("+ {lag_k} lead-lag partners over {lookback} days");
                println!(
                    "{}",
                    recovery_row(&name, &recovery(&panel, cfg.t, &g, &sample_days))
                );
            }
        }
        return Ok(());
    }
    println!(
        "\nlink recovery of the planted lead-lag links ({} days, every 5th sample day):",
        sample_days.len()
    );
    println!("{RECOVERY_HEADER}");
    println!(
        "{}",
        recovery_row(
            "same-day correlation and sector (before)",
            &recovery(&panel, cfg.t, &same_day, &sample_days)
        )
    );
    println!(
        "{}",
        recovery_row(
            &format!(
                "+ {} lead-lag partners over {} days (the model's)",
                cfg.graph_lag_k, cfg.graph_lag_lookback
            ),
            &recovery(&panel, cfg.t, &cfg.graph(), &sample_days)
        )
    );

    // Throughput on 24 real days, at the rule's width and at MODEL.md's H = 64.
    if std::env::var("LAKEBUILD_BENCH_THROUGHPUT").as_deref() != Ok("0") {
        let days: Vec<_> = (panel.dates.len().saturating_sub(60)..panel.dates.len())
            .step_by(2)
            .filter_map(|d| panel.sample(d, cfg.t, &cfg.graph()))
            .take(24)
            .collect();
        let n_avg = days.iter().map(|s| s.input.n).sum::<usize>() as f64 / days.len().max(1) as f64;
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

    // Quality: the rule's training, the ridge baselines and the oracle on the same folds.
    let t = Instant::now();
    let trained = train(
        &cfg,
        &tc,
        &panel,
        &Checkpoints { file: None },
        &mut lakebuild::jp_equity::model::train::ignore,
    )
    .map_err(anyhow::Error::msg)?;
    let secs = t.elapsed().as_secs_f64();
    let model = model_daily(&trained, &horizons);
    let (ridge_last, lambdas_last) = ridge(&panel, &cfg, &tc, false);
    let (ridge_mean, lambdas_mean) = ridge(&panel, &cfg, &tc, true);
    let oracle_ic = oracle(&root, &trained, &horizons)?;
    let hdays = panel.horizon_days();
    let cell = |x: &BTreeMap<NaiveDate, f64>, h: usize| {
        let (m, se) = mean_se(x, hdays[h]);
        format!("{m:+.4} ± {se:.4}")
    };
    let row = |name: &str, d: &Daily| {
        let cells: Vec<String> = (0..horizons.len()).map(|h| cell(&d[h], h)).collect();
        format!("| {name} | {} |", cells.join(" | "))
    };
    println!(
        "\nvalidation RankIC per horizon, mean ± Newey–West SE ({} folds, {} validation days; training {secs:.0} s):",
        trained.folds.len(),
        trained.folds.iter().map(|f| f.valid_days).sum::<usize>()
    );
    println!("| | {} |", horizons.join(" | "));
    println!("| --- |{}", " --- |".repeat(horizons.len()));
    println!("{}", row("ATFT-GAT-FAN", &model));
    println!("{}", row("ridge, last day's inputs", &ridge_last));
    println!(
        "{}",
        row(
            "ridge, last day's inputs and the window's mean",
            &ridge_mean
        )
    );
    println!(
        "{}",
        row("oracle IC (Pearson of the planted component)", &oracle_ic)
    );
    let ratio: Vec<String> = (0..horizons.len())
        .map(|h| {
            let m = mean_se(&model[h], 1).0;
            let o = mean_se(&oracle_ic[h], 1).0;
            format!("{:.2}", m / o)
        })
        .collect();
    println!("| model / oracle | {} |", ratio.join(" | "));
    println!(
        "ridge λ per fold (inner walk-forward choice): last day {lambdas_last:?}; with the window's mean {lambdas_mean:?}"
    );
    if trained.folds.iter().any(|f| !f.fallback.is_empty()) {
        println!(
            "\nhorizon blend per fold, validation RankIC trained / start / the blend the fold reports, its weight on the trained network (chosen by the earlier folds) in brackets; then the ridge baseline (last day's inputs) on the same days, and the start's design (skip, or skip + graph path) and λ:"
        );
        println!("| fold | {} |", horizons.join(" | "));
        println!("| --- |{}", " --- |".repeat(horizons.len()));
        for f in &trained.folds {
            let cells: Vec<String> = horizons
                .iter()
                .map(|h| match f.fallback.iter().find(|c| &c.horizon == h) {
                    Some(c) => {
                        let w = c.weight.unwrap_or(if c.from_start { 0.0 } else { 1.0 });
                        let reported = c
                            .blends
                            .iter()
                            .find(|b| b.weight == w)
                            .map_or(f64::NAN, |b| b.rank_ic);
                        let hi = horizons.iter().position(|x| x == h).unwrap_or(0);
                        let on_fold: Vec<f64> = ridge_last[hi]
                            .range(f.valid_first..=f.valid_last)
                            .map(|(_, v)| *v)
                            .collect();
                        let base = on_fold.iter().sum::<f64>() / on_fold.len().max(1) as f64;
                        let design = c.start_fit.map_or("–".to_string(), |s| {
                            format!(
                                "{}{} λ {:.0e}",
                                if s.graph_path { "skip+graph" } else { "skip" },
                                if s.by_folds { " (by folds)" } else { "" },
                                s.lambda
                            )
                        });
                        format!(
                            "{:+.4} / {:+.4} / {:+.4} ({w:.2}); ridge {base:+.4}; {design}",
                            c.trained_rank_ic, c.start_rank_ic, reported
                        )
                    }
                    None => "–".into(),
                })
                .collect();
            println!("| {} | {} |", f.fold + 1, cells.join(" | "));
        }
        println!(
            "stored model, per horizon the trained network's weight in the blend with its start: {:?}",
            trained.weights
        );
    }
    println!("\npaired differences on the same days, mean ± Newey–West SE (t):");
    println!("| | {} |", horizons.join(" | "));
    println!("| --- |{}", " --- |".repeat(horizons.len()));
    let diff_row = |name: &str, a: &Daily, b: &Daily| {
        let cells: Vec<String> = (0..horizons.len())
            .map(|h| {
                let (m, se) = mean_se(&paired(&a[h], &b[h]), hdays[h]);
                format!("{m:+.4} ± {se:.4} ({:+.1})", m / se)
            })
            .collect();
        format!("| {name} | {} |", cells.join(" | "))
    };
    println!(
        "{}",
        diff_row("model − ridge (last day)", &model, &ridge_last)
    );
    println!(
        "{}",
        diff_row("model − ridge (last day and mean)", &model, &ridge_mean)
    );

    if std::env::var("LAKEBUILD_BENCH_ABLATION").as_deref() != Ok("0") {
        println!("\nablation (same config, folds and seed), mean ± Newey–West SE:");
        println!("| variant | {} | mean | training s |", horizons.join(" | "));
        println!("| --- |{} --- | --- |", " --- |".repeat(horizons.len()));
        let mean_of = |d: &Daily| d.iter().map(|x| mean_se(x, 1).0).sum::<f64>() / d.len() as f64;
        println!(
            "{} {:+.4} | {secs:.0} |",
            row("full model", &model),
            mean_of(&model)
        );
        let mut variants: Vec<(&str, Daily)> = Vec::new();
        let runs: [(&str, ModelConfig, bool); 7] = [
            (
                "without the graph block (no GATv2 layers, no graph path)",
                ModelConfig {
                    use_gat: false,
                    ..cfg.clone()
                },
                false,
            ),
            (
                "GATv2 layers only (no linear graph path)",
                ModelConfig {
                    use_graph_skip: false,
                    ..cfg.clone()
                },
                false,
            ),
            (
                "the same-day graph only (no lead-lag partners)",
                ModelConfig {
                    graph_lag_k: 0,
                    ..cfg.clone()
                },
                false,
            ),
            (
                "the graph on the true links (upper bound)",
                cfg.clone(),
                true,
            ),
            (
                "without the temporal block",
                ModelConfig {
                    use_temporal: false,
                    ..cfg.clone()
                },
                false,
            ),
            (
                "without FAN",
                ModelConfig {
                    use_fan: false,
                    ..cfg.clone()
                },
                false,
            ),
            (
                "without the skip path",
                ModelConfig {
                    use_skip: false,
                    ..cfg.clone()
                },
                false,
            ),
        ];
        for (name, c, truth) in runs {
            panel.graph_on_true_links = truth;
            let t = Instant::now();
            let tr = train(
                &c,
                &tc,
                &panel,
                &Checkpoints { file: None },
                &mut lakebuild::jp_equity::model::train::ignore,
            )
            .map_err(anyhow::Error::msg)?;
            panel.graph_on_true_links = false;
            let d = model_daily(&tr, &horizons);
            println!(
                "{} {:+.4} | {:.0} |",
                row(name, &d),
                mean_of(&d),
                t.elapsed().as_secs_f64()
            );
            variants.push((name, d));
        }
        println!(
            "\npaired differences of the full model over each variant, mean ± Newey–West SE (t):"
        );
        println!("| | {} |", horizons.join(" | "));
        println!("| --- |{}", " --- |".repeat(horizons.len()));
        for (name, d) in &variants {
            println!("{}", diff_row(&format!("full − {name}"), &model, d));
        }
    }
    Ok(())
}
