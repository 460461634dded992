//! The day's stock graph (MODEL.md block 4): input preprocessing for the GAT layers,
//! built once per day from data up to that day and never differentiated.
//!
//! # Definition (deterministic, exact)
//!
//! For `n` stocks with window return series `r_i ∈ ℝ^t` (the input window's own
//! `ret_1d_cs_z`), a longer history `u_i ∈ ℝ^l` of the same returns ending on the same day
//! (`l = lag_lookback + 1` days, fewer at the start of the data) and sector ids
//! `sector[i]`:
//!
//! 1. **Correlation.** Each series is standardised to `z_i = (r_i − r̄_i) / ‖r_i − r̄_i‖₂`
//!    (`r̄_i` the mean over the `t` steps, summed in time order), and `ρ = Z·Zᵀ` is one
//!    matrix product ([`linalg::matmul`]). A series with zero variance (all `t` values
//!    equal, `t = 0`) or with a non-finite value gets `z_i = 0`, so its `ρ` with every
//!    other stock is exactly 0, never NaN. `ρ` is clamped to `[−1, 1]` and made exactly
//!    symmetric by copying the upper triangle (`ρ_ji := ρ_ij` for `i < j`).
//! 2. **Lagged correlation** (only when `lag_k > 0`). `λ_ij` is the correlation of stock
//!    `i`'s return on day `s` with stock `j`'s return on day `s − 1` over the history:
//!    the follower series `f_i = u_i[1..l]` and the leader series `g_j = u_j[0..l−1]` are
//!    standardised as in 1 and `λ = Z_f·Z_gᵀ` (clamped to `[−1, 1]`, not symmetric;
//!    `λ_ii` is stock `i`'s lag-1 autocorrelation). With `l < 3` every `λ` is 0.
//! 3. **Candidates of node i.** Order the other stocks `j ≠ i` by `|ρ_ij|` descending, ties
//!    to the lower index `j`. The candidates are (a) the first `k` of those with
//!    `|ρ_ij| ≥ min_abs_rho`, and (b) the first `sector_cap` of those with
//!    `sector[j] = sector[i]`, whatever their `|ρ|`.
//! 4. **Symmetric union.** `{i, j}` is an edge when `j` is a candidate of `i` or `i` is a
//!    candidate of `j`; it gives the two directed edges `j → i` and `i → j`. Every node
//!    also gets a self-loop `i → i`.
//! 5. **Lead-lag partners** (only when `lag_k > 0`). Node `i`'s partners are the first
//!    `lag_k` stocks `j ≠ i` by `|λ_ij|` descending (ties to the lower `j`) with
//!    `λ_ij ≠ 0`; each gives the **directed** edge `j → i` (leader to follower), added to
//!    the edges of 4 unless already there. (The evaluation-only true-links graph replaces
//!    these partners by the market's planted leader of `i`, nothing else changes.)
//! 6. **Edge features.** Without lag partners (`lag_k = 0`, the layout of models stored
//!    before them): `[ρ_ij, same_sector]` (`same_sector = 1` when the sector ids are
//!    equal, else 0), `[1, 1]` on a self-loop. With them: `[ρ_ij, same_sector, λ_ij,
//!    partner]` (`partner = 1` when `j` is a lead-lag partner of `i`), `[1, 1, λ_ii, 0]`
//!    on a self-loop. [`GraphConfig::edge_dim`] gives the width.
//! 7. **Layout.** Edges are grouped by destination in node order (CSR): node `i`'s
//!    in-edges are `offsets[i]..offsets[i+1]`, sorted by source index (the self-loop sits
//!    at its source position `i`). There are no duplicate edges.
//!
//! A node therefore has at least its self-loop; a stock with a constant series has only
//! its self-loop, same-sector edges (for the default `min_abs_rho > 0`) and lead-lag
//! partners.
//!
//! Window purity: the graph of day `d` reads only returns of days up to `d` (the window
//! and the history both end on `d`), like every other input of the day.
//!
//! Memory is `O(n²)` for `ρ` and `λ` (fine for `n ≤ 5000`); the candidate selection runs in
//! parallel over nodes, each node writing its own list, so the graph does not depend on
//! the thread count.

use super::linalg;
use rayon::prelude::*;
use std::cmp::Ordering;

/// How the day's graph is built. Defaults (MODEL.md): `k = 15`, `min_abs_rho = 0.3`,
/// `sector_cap = 10`, `lag_k = 2`, `lag_lookback = 250`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GraphConfig {
    /// Most correlation neighbours chosen by each node (before symmetrisation).
    pub k: usize,
    /// A correlation neighbour needs `|ρ| ≥ min_abs_rho`.
    pub min_abs_rho: f64,
    /// Most same-sector neighbours chosen by each node (before symmetrisation), the most
    /// correlated by `|ρ|`, regardless of `min_abs_rho`.
    pub sector_cap: usize,
    /// Lead-lag partners (directed in-edges) of each node; 0 turns them off.
    pub lag_k: usize,
    /// Days of lagged return pairs the lead-lag correlation is measured over.
    pub lag_lookback: usize,
}

impl Default for GraphConfig {
    fn default() -> Self {
        GraphConfig {
            k: 15,
            min_abs_rho: 0.3,
            sector_cap: 10,
            lag_k: 2,
            lag_lookback: 250,
        }
    }
}

impl GraphConfig {
    /// The graph without lead-lag partners (the layout before them).
    pub fn same_day_only(self) -> Self {
        GraphConfig { lag_k: 0, ..self }
    }

    /// Width of each edge's features: `[ρ, same_sector]`, plus `[λ, partner]` with lead-lag
    /// partners.
    pub fn edge_dim(&self) -> usize {
        if self.lag_k > 0 { 4 } else { 2 }
    }

    /// Days of history (the window's last day included) the lead-lag correlation reads.
    pub fn history_days(&self) -> usize {
        if self.lag_k > 0 {
            self.lag_lookback + 1
        } else {
            0
        }
    }
}

/// A directed graph with in-edges grouped by destination (CSR).
///
/// Node `i`'s in-edges are `offsets[i]..offsets[i+1]` (`offsets` has `n + 1` entries,
/// `offsets[0] = 0`, `offsets[n] = n_edges`); edge `e` comes from node `src[e]` and has
/// the features `edge_feat[e·edge_dim..(e+1)·edge_dim]` (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    /// Number of nodes (stocks).
    pub n: usize,
    /// CSR offsets by destination, `n + 1` entries.
    pub offsets: Vec<usize>,
    /// Source node of each edge.
    pub src: Vec<usize>,
    /// Features per edge.
    pub edge_dim: usize,
    /// `[n_edges × edge_dim]` edge features.
    pub edge_feat: Vec<f64>,
}

impl Graph {
    /// Total number of directed edges (self-loops included).
    pub fn n_edges(&self) -> usize {
        self.src.len()
    }

    /// Number of in-edges of node `i` (self-loop included).
    pub fn in_degree(&self, i: usize) -> usize {
        self.offsets[i + 1] - self.offsets[i]
    }

    /// Whether `j → i` is an edge.
    pub fn has_edge(&self, j: usize, i: usize) -> bool {
        self.src[self.offsets[i]..self.offsets[i + 1]]
            .binary_search(&j)
            .is_ok()
    }
}

/// How well a graph holds a set of known leader → follower links (evaluation only).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LinkRecovery {
    /// Followers whose leader is in the same batch.
    pub links: usize,
    /// Of those, links present as an edge `leader → follower`.
    pub found: usize,
    /// In-edges of the followers other than their self-loops.
    pub follower_in_edges: usize,
    /// In-edges of all nodes other than self-loops.
    pub in_edges: usize,
    pub nodes: usize,
    /// Possible in-edges other than self-loops, `n·(n − 1)` per graph.
    pub pairs: usize,
}

impl LinkRecovery {
    /// Share of the true links that are edges.
    pub fn recall(&self) -> f64 {
        self.found as f64 / self.links.max(1) as f64
    }

    /// Share of a follower's in-edges that come from its leader.
    pub fn precision(&self) -> f64 {
        self.found as f64 / self.follower_in_edges.max(1) as f64
    }

    /// Mean number of in-edges per node, self-loop excluded.
    pub fn mean_in_degree(&self) -> f64 {
        self.in_edges as f64 / self.nodes.max(1) as f64
    }

    /// The recall a graph of the same in-degree with random sources would have.
    pub fn random_recall(&self) -> f64 {
        self.in_edges as f64 / self.pairs.max(1) as f64
    }

    pub fn add(&mut self, o: &LinkRecovery) {
        self.links += o.links;
        self.found += o.found;
        self.follower_in_edges += o.follower_in_edges;
        self.in_edges += o.in_edges;
        self.nodes += o.nodes;
        self.pairs += o.pairs;
    }
}

/// The recovery of `leader_of` (node `i`'s leader, batch indices) by `g`.
pub fn link_recovery(g: &Graph, leader_of: &[Option<usize>]) -> LinkRecovery {
    let mut r = LinkRecovery {
        nodes: g.n,
        pairs: g.n * g.n.saturating_sub(1),
        ..LinkRecovery::default()
    };
    for i in 0..g.n {
        let others = g.in_degree(i) - 1;
        r.in_edges += others;
        if let Some(j) = leader_of.get(i).copied().flatten().filter(|&j| j != i) {
            r.links += 1;
            r.follower_in_edges += others;
            if g.has_edge(j, i) {
                r.found += 1;
            }
        }
    }
    r
}

/// Standardised series `[n × t]`: `(r − r̄)/‖r − r̄‖₂`, or all zeros for a series that is
/// constant or holds a non-finite value. `row(i)` gives stock `i`'s series.
fn standardise<'a>(n: usize, t: usize, row: impl Fn(usize) -> &'a [f64]) -> Vec<f64> {
    let mut z = vec![0.0; n * t];
    if t == 0 {
        return z;
    }
    for (i, zi) in z.chunks_mut(t).enumerate() {
        let ri = row(i);
        if ri.iter().any(|v| !v.is_finite()) || ri.iter().all(|v| *v == ri[0]) {
            continue;
        }
        let mean = ri.iter().sum::<f64>() / t as f64;
        let ss: f64 = ri.iter().map(|v| (v - mean) * (v - mean)).sum();
        if !(ss > 0.0 && ss.is_finite()) {
            continue;
        }
        let inv = 1.0 / ss.sqrt();
        for (o, v) in zi.iter_mut().zip(ri) {
            *o = (v - mean) * inv;
        }
    }
    z
}

/// `[n × n]` `a·bᵀ` of two `[n × t]` matrices, NaN → 0, clamped to `[−1, 1]`.
fn cross(a: &[f64], b: &[f64], n: usize, t: usize) -> Vec<f64> {
    let mut bt = vec![0.0; t * n];
    for i in 0..n {
        for s in 0..t {
            bt[s * n + i] = b[i * t + s];
        }
    }
    let mut c = linalg::matmul(a, &bt, n, t, n);
    for v in &mut c {
        *v = if v.is_nan() { 0.0 } else { v.clamp(-1.0, 1.0) };
    }
    c
}

/// The symmetric `[n × n]` correlation matrix of the rows of `returns` (`[n × t]`).
fn correlations(returns: &[f64], n: usize, t: usize) -> Vec<f64> {
    let z = standardise(n, t, |i| &returns[i * t..(i + 1) * t]);
    let mut rho = cross(&z, &z, n, t);
    for i in 0..n {
        for j in i + 1..n {
            rho[j * n + i] = rho[i * n + j];
        }
    }
    rho
}

/// `λ[i][j]` = corr(`u_i[s]`, `u_j[s − 1]`) over the rows of `history` (`[n × l]`).
fn lagged_correlations(history: &[f64], n: usize, l: usize) -> Vec<f64> {
    if l < 3 {
        return vec![0.0; n * n];
    }
    let m = l - 1;
    let follower = standardise(n, m, |i| &history[i * l + 1..(i + 1) * l]);
    let leader = standardise(n, m, |i| &history[i * l..(i + 1) * l - 1]);
    cross(&follower, &leader, n, m)
}

/// Keeps the first `k` of `cand` under the total order `cmp` (unordered).
fn keep_first(cand: &mut Vec<usize>, k: usize, cmp: impl Fn(&usize, &usize) -> Ordering) {
    if k == 0 {
        cand.clear();
    } else if cand.len() > k {
        cand.select_nth_unstable_by(k - 1, cmp);
        cand.truncate(k);
    }
}

/// The day's returns a graph is built from.
#[derive(Debug, Clone, Copy)]
pub struct GraphInputs<'a> {
    /// `[n × t]`, each stock's return series over the input window.
    pub window: &'a [f64],
    /// `[n × l]`, each stock's returns over the longer history ending on the same day
    /// (empty without lead-lag partners).
    pub history: &'a [f64],
    /// `[n]`, the 33-sector id; `n = sector.len()`.
    pub sector: &'a [u32],
    /// Evaluation only: the planted leader of each node, used as its lead-lag partner
    /// instead of the measured ones (the true-links upper bound). Never set by an op.
    pub true_leaders: Option<&'a [Option<usize>]>,
}

/// Builds the day's graph without a longer history (the lead-lag features are then 0 and
/// there are no partners; see the module docs for the rules).
pub fn build_graph(returns: &[f64], sector: &[u32], cfg: &GraphConfig) -> Graph {
    build(
        &GraphInputs {
            window: returns,
            history: &[],
            sector,
            true_leaders: None,
        },
        cfg,
    )
}

/// Builds the day's graph (see the module docs for the exact rules).
pub fn build(inputs: &GraphInputs, cfg: &GraphConfig) -> Graph {
    let GraphInputs {
        window: returns,
        history,
        sector,
        true_leaders,
    } = *inputs;
    let n = sector.len();
    let dim = cfg.edge_dim();
    if n == 0 {
        assert!(
            returns.is_empty() && history.is_empty(),
            "build_graph: returns given for 0 stocks"
        );
        return Graph {
            n: 0,
            offsets: vec![0],
            src: Vec::new(),
            edge_dim: dim,
            edge_feat: Vec::new(),
        };
    }
    assert!(
        returns.len() % n == 0 && history.len() % n == 0,
        "build_graph: {} returns / {} history values are not a whole series for each of {n} stocks",
        returns.len(),
        history.len()
    );
    let t = returns.len() / n;
    let rho = correlations(returns, n, t);
    let lagged = cfg.lag_k > 0;
    let lam = if lagged {
        lagged_correlations(history, n, history.len() / n)
    } else {
        Vec::new()
    };

    // Candidate lists and lead-lag partners, one per node, in parallel (each node writes
    // its own lists).
    let picks: Vec<(Vec<usize>, Vec<usize>)> = (0..n)
        .into_par_iter()
        .map(|i| {
            let row = &rho[i * n..(i + 1) * n];
            let order =
                |a: &usize, b: &usize| row[*b].abs().total_cmp(&row[*a].abs()).then(a.cmp(b));
            let mut corr: Vec<usize> = (0..n)
                .filter(|&j| j != i && row[j].abs() >= cfg.min_abs_rho)
                .collect();
            keep_first(&mut corr, cfg.k, order);
            let mut same: Vec<usize> = (0..n)
                .filter(|&j| j != i && sector[j] == sector[i])
                .collect();
            keep_first(&mut same, cfg.sector_cap, order);
            corr.extend(same);
            let mut partners: Vec<usize> = if !lagged {
                Vec::new()
            } else if let Some(truth) = true_leaders {
                truth
                    .get(i)
                    .copied()
                    .flatten()
                    .filter(|&j| j != i && j < n)
                    .into_iter()
                    .collect()
            } else {
                let lrow = &lam[i * n..(i + 1) * n];
                let mut p: Vec<usize> = (0..n).filter(|&j| j != i && lrow[j] != 0.0).collect();
                keep_first(&mut p, cfg.lag_k, |a, b| {
                    lrow[*b].abs().total_cmp(&lrow[*a].abs()).then(a.cmp(b))
                });
                p
            };
            partners.sort_unstable();
            (corr, partners)
        })
        .collect();

    // Symmetric union plus self-loops plus directed partners, sources sorted, no
    // duplicates.
    let mut adj: Vec<Vec<usize>> = (0..n).map(|i| vec![i]).collect();
    for (i, (c, p)) in picks.iter().enumerate() {
        for &j in c {
            adj[i].push(j);
            adj[j].push(i);
        }
        adj[i].extend_from_slice(p);
    }
    let mut offsets = Vec::with_capacity(n + 1);
    offsets.push(0);
    let mut src = Vec::new();
    let mut edge_feat = Vec::new();
    for (i, a) in adj.iter_mut().enumerate() {
        a.sort_unstable();
        a.dedup();
        let partners = &picks[i].1;
        for &j in a.iter() {
            src.push(j);
            if j == i {
                edge_feat.extend_from_slice(&[1.0, 1.0]);
            } else {
                let same = if sector[i] == sector[j] { 1.0 } else { 0.0 };
                edge_feat.extend_from_slice(&[rho[i * n + j], same]);
            }
            if lagged {
                let partner = if partners.binary_search(&j).is_ok() {
                    1.0
                } else {
                    0.0
                };
                edge_feat.extend_from_slice(&[lam[i * n + j], partner]);
            }
        }
        offsets.push(src.len());
    }
    Graph {
        n,
        offsets,
        src,
        edge_dim: dim,
        edge_feat,
    }
}

#[cfg(test)]
mod tests {
    use super::super::gradcheck::{on_threads, rand_vec};
    use super::*;

    /// The first two features `[ρ, same_sector]` of the edge `from → to`.
    fn edge(g: &Graph, from: usize, to: usize) -> Option<[f64; 2]> {
        let d = g.edge_dim;
        (g.offsets[to]..g.offsets[to + 1])
            .find(|&e| g.src[e] == from)
            .map(|e| [g.edge_feat[d * e], g.edge_feat[d * e + 1]])
    }

    /// Textbook Pearson correlation (0 on zero variance), independent of the code above.
    fn pearson(a: &[f64], b: &[f64]) -> f64 {
        let t = a.len() as f64;
        let ma = a.iter().sum::<f64>() / t;
        let mb = b.iter().sum::<f64>() / t;
        let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
        let va: f64 = a.iter().map(|x| (x - ma) * (x - ma)).sum();
        let vb: f64 = b.iter().map(|y| (y - mb) * (y - mb)).sum();
        if va == 0.0 || vb == 0.0 {
            0.0
        } else {
            cov / (va * vb).sqrt()
        }
    }

    /// Returns with a common factor per group of stocks plus noise, `[n × t]`.
    fn factor_returns(n: usize, t: usize, groups: usize, noise: f64, seed: u64) -> Vec<f64> {
        let f = rand_vec(groups * t, seed, 1.0);
        let e = rand_vec(n * t, seed + 1, noise);
        let mut r = vec![0.0; n * t];
        for i in 0..n {
            for s in 0..t {
                r[i * t + s] = f[(i % groups) * t + s] + e[i * t + s];
            }
        }
        r
    }

    /// The expected neighbour set by brute force, from the definition.
    fn expected(returns: &[f64], sector: &[u32], cfg: &GraphConfig) -> Vec<Vec<usize>> {
        let n = sector.len();
        let t = returns.len() / n;
        let rho = |i: usize, j: usize| {
            pearson(&returns[i * t..(i + 1) * t], &returns[j * t..(j + 1) * t])
        };
        let mut adj: Vec<Vec<usize>> = (0..n).map(|i| vec![i]).collect();
        for i in 0..n {
            let mut others: Vec<usize> = (0..n).filter(|&j| j != i).collect();
            others.sort_by(|&a, &b| {
                rho(i, b)
                    .abs()
                    .partial_cmp(&rho(i, a).abs())
                    .unwrap()
                    .then(a.cmp(&b))
            });
            let corr = others
                .iter()
                .filter(|&&j| rho(i, j).abs() >= cfg.min_abs_rho)
                .take(cfg.k);
            let same = others
                .iter()
                .filter(|&&j| sector[j] == sector[i])
                .take(cfg.sector_cap);
            for &j in corr.chain(same) {
                adj[i].push(j);
                adj[j].push(i);
            }
        }
        for a in &mut adj {
            a.sort();
            a.dedup();
        }
        adj
    }

    fn check_invariants(g: &Graph, returns: &[f64], sector: &[u32], cfg: &GraphConfig) {
        let n = g.n;
        let t = returns.len() / n;
        assert_eq!(g.offsets.len(), n + 1);
        assert_eq!(g.offsets[n], g.n_edges());
        assert_eq!(g.edge_dim, cfg.edge_dim());
        assert_eq!(g.edge_feat.len(), g.edge_dim * g.n_edges());
        assert!(g.edge_feat.iter().all(|v| v.is_finite()));
        for i in 0..n {
            let srcs = &g.src[g.offsets[i]..g.offsets[i + 1]];
            assert!(
                srcs.windows(2).all(|w| w[0] < w[1]),
                "node {i}: sources not sorted/unique"
            );
            assert_eq!(edge(g, i, i), Some([1.0, 1.0]), "node {i}: self-loop");
            for &j in srcs {
                let f = edge(g, j, i).unwrap();
                assert_eq!(edge(g, i, j), Some(f), "edge {j}->{i} not mirrored");
                if j == i {
                    continue;
                }
                let same = sector[i] == sector[j];
                assert_eq!(
                    f[1],
                    if same { 1.0 } else { 0.0 },
                    "same_sector flag {j}->{i}"
                );
                let r = pearson(&returns[i * t..(i + 1) * t], &returns[j * t..(j + 1) * t]);
                assert!((f[0] - r).abs() < 1e-12, "rho {j}->{i}: {} vs {r}", f[0]);
                if !same {
                    assert!(
                        f[0].abs() >= cfg.min_abs_rho,
                        "edge {j}->{i} below the threshold"
                    );
                }
            }
        }
    }

    #[test]
    fn matches_the_definition_on_random_data() {
        let (n, t) = (60, 20);
        let returns = factor_returns(n, t, 4, 1.5, 11);
        let sector: Vec<u32> = (0..n as u32).map(|i| (i * 7) % 5).collect();
        for cfg in [
            GraphConfig::default(),
            GraphConfig {
                k: 3,
                min_abs_rho: 0.2,
                sector_cap: 2,
                lag_k: 0,
                lag_lookback: 0,
            },
        ] {
            let g = build_graph(&returns, &sector, &cfg);
            check_invariants(&g, &returns, &sector, &cfg);
            let exp = expected(&returns, &sector, &cfg);
            for (i, e) in exp.iter().enumerate() {
                assert_eq!(&g.src[g.offsets[i]..g.offsets[i + 1]], &e[..], "node {i}");
            }
        }
    }

    #[test]
    fn symmetric_with_self_loops_and_threshold() {
        let (n, t) = (40, 20);
        let returns = rand_vec(n * t, 3, 1.0);
        let sector: Vec<u32> = (0..n as u32).map(|i| i % 6).collect();
        let cfg = GraphConfig::default();
        let g = build_graph(&returns, &sector, &cfg);
        check_invariants(&g, &returns, &sector, &cfg);
        // Pure noise: some pairs fall below the threshold and are not joined.
        let below = (0..n)
            .flat_map(|i| (0..n).map(move |j| (i, j)))
            .any(|(i, j)| {
                sector[i] != sector[j]
                    && pearson(&returns[i * t..(i + 1) * t], &returns[j * t..(j + 1) * t]).abs()
                        < 0.3
                    && edge(&g, j, i).is_none()
            });
        assert!(below);
    }

    #[test]
    fn k_caps_the_correlation_neighbours() {
        // All stocks share one factor (every |ρ| ≫ 0.3), all in different sectors.
        let (n, t, k) = (30, 20, 4);
        let returns = factor_returns(n, t, 1, 0.5, 5);
        let sector: Vec<u32> = (0..n as u32).collect();
        let cfg = GraphConfig {
            k,
            min_abs_rho: 0.3,
            sector_cap: 10,
            ..GraphConfig::default()
        };
        let g = build_graph(&returns, &sector, &cfg);
        check_invariants(&g, &returns, &sector, &cfg);
        let rho = |i: usize, j: usize| {
            pearson(&returns[i * t..(i + 1) * t], &returns[j * t..(j + 1) * t])
        };
        let top = |i: usize| {
            let mut o: Vec<usize> = (0..n).filter(|&j| j != i).collect();
            o.sort_by(|&a, &b| rho(i, b).abs().partial_cmp(&rho(i, a).abs()).unwrap());
            o.truncate(k);
            o
        };
        let tops: Vec<Vec<usize>> = (0..n).map(top).collect();
        let mut undirected = 0;
        for i in 0..n {
            // Each node keeps its own top k, and every other edge is someone else's choice.
            for &j in &tops[i] {
                assert!(edge(&g, j, i).is_some(), "{j} is in {i}'s top {k}");
            }
            for e in g.offsets[i]..g.offsets[i + 1] {
                let j = g.src[e];
                if j != i {
                    assert!(
                        tops[i].contains(&j) || tops[j].contains(&i),
                        "edge {j}->{i} chosen by neither"
                    );
                    undirected += 1;
                }
            }
        }
        assert!(undirected / 2 <= n * k);
        assert!(
            undirected / 2 < n * (n - 1) / 2,
            "the cap must leave pairs out"
        );
    }

    #[test]
    fn sector_cap_and_flag() {
        // Uncorrelated-looking noise, one sector of 12 and the rest alone.
        let (n, t) = (20, 20);
        let returns = rand_vec(n * t, 9, 1.0);
        let sector: Vec<u32> = (0..n as u32)
            .map(|i| if i < 12 { 7 } else { 100 + i })
            .collect();
        let cfg = GraphConfig {
            k: 0,
            min_abs_rho: 0.3,
            sector_cap: 3,
            lag_k: 0,
            lag_lookback: 0,
        };
        let g = build_graph(&returns, &sector, &cfg);
        check_invariants(&g, &returns, &sector, &cfg);
        for i in 0..n {
            for e in g.offsets[i]..g.offsets[i + 1] {
                let j = g.src[e];
                if j != i {
                    assert!(i < 12 && j < 12, "k = 0: only sector edges");
                    assert_eq!(g.edge_feat[g.edge_dim * e + 1], 1.0);
                }
            }
            if i < 12 {
                assert!(g.in_degree(i) > 3, "each sector member picks 3 peers");
            } else {
                assert_eq!(g.in_degree(i), 1);
            }
        }
        let exp = expected(&returns, &sector, &cfg);
        for (i, e) in exp.iter().enumerate() {
            assert_eq!(&g.src[g.offsets[i]..g.offsets[i + 1]], &e[..], "node {i}");
        }
    }

    #[test]
    fn constant_series_has_no_nan_and_only_sector_edges() {
        let (n, t) = (24, 20);
        let mut returns = factor_returns(n, t, 1, 0.3, 2);
        for s in 0..t {
            returns[3 * t + s] = 0.1; // constant, not exactly representable
            returns[4 * t + s] = 0.0;
        }
        let sector: Vec<u32> = (0..n as u32).map(|i| i % 3).collect();
        let cfg = GraphConfig::default();
        let g = build_graph(&returns, &sector, &cfg);
        check_invariants(&g, &returns, &sector, &cfg);
        for i in [3usize, 4] {
            for e in g.offsets[i]..g.offsets[i + 1] {
                let j = g.src[e];
                if j != i {
                    assert_eq!(
                        sector[j], sector[i],
                        "constant stock {i} joined to {j} by correlation"
                    );
                    assert_eq!(g.edge_feat[g.edge_dim * e], 0.0);
                }
            }
            assert_eq!(
                g.in_degree(i),
                1 + 7,
                "self + the 7 other members of its sector"
            );
        }
        // Nothing at all varies: only self and sector edges, ρ = 0.
        let flat = vec![0.25; n * t];
        let g = build_graph(&flat, &sector, &cfg);
        assert!(g.edge_feat.iter().all(|v| v.is_finite()));
        assert!((0..g.n_edges()).all(|e| g.edge_feat[g.edge_dim * e + 1] == 1.0));
    }

    #[test]
    fn deterministic_at_any_thread_count() {
        let (n, t) = (300, 20);
        let returns = factor_returns(n, t, 10, 1.0, 21);
        let sector: Vec<u32> = (0..n as u32).map(|i| (i * 13) % 33).collect();
        let cfg = GraphConfig::default();
        let run = |threads| on_threads(threads, || build_graph(&returns, &sector, &cfg));
        let a = run(1);
        assert_eq!(a, run(2));
        assert_eq!(a, build_graph(&returns, &sector, &cfg));
        check_invariants(&a, &returns, &sector, &cfg);
    }

    #[test]
    fn empty_day_and_single_stock() {
        let g = build_graph(&[], &[], &GraphConfig::default());
        assert_eq!((g.n, g.n_edges(), g.offsets.clone()), (0, 0, vec![0]));
        let g = build_graph(&[0.1, 0.2, 0.3], &[4], &GraphConfig::default());
        assert_eq!(g.src, vec![0]);
        assert_eq!(g.edge_feat, vec![1.0, 1.0, 0.0, 0.0]);
        let g = build_graph(
            &[0.1, 0.2, 0.3],
            &[4],
            &GraphConfig::default().same_day_only(),
        );
        assert_eq!(g.edge_feat, vec![1.0, 1.0]);
    }

    /// Histories `[n × l]` where stock `f` follows `leader[f]` with a one-day lag.
    fn lead_lag_history(n: usize, l: usize, leader: &[Option<usize>], seed: u64) -> Vec<f64> {
        let noise = rand_vec(n * l, seed, 1.0);
        let mut u = noise.clone();
        for s in 1..l {
            for i in 0..n {
                if let Some(j) = leader[i] {
                    u[i * l + s] = 0.6 * noise[j * l + s - 1] + noise[i * l + s];
                }
            }
        }
        u
    }

    fn lagged_pearson(u: &[f64], l: usize, i: usize, j: usize) -> f64 {
        pearson(&u[i * l + 1..(i + 1) * l], &u[j * l..(j + 1) * l - 1])
    }

    #[test]
    fn lead_lag_partners_match_the_definition() {
        let (n, t, l) = (50, 20, 120);
        let leader: Vec<Option<usize>> = (0..n)
            .map(|i| (i % 3 == 0).then_some((i * 7 + 5) % n).filter(|&j| j != i))
            .collect();
        let history = lead_lag_history(n, l, &leader, 31);
        let window: Vec<f64> = (0..n)
            .flat_map(|i| history[i * l + l - t..(i + 1) * l].to_vec())
            .collect();
        let sector: Vec<u32> = (0..n as u32).map(|i| i % 11).collect();
        let cfg = GraphConfig {
            lag_k: 3,
            lag_lookback: l - 1,
            ..GraphConfig::default()
        };
        let inputs = GraphInputs {
            window: &window,
            history: &history,
            sector: &sector,
            true_leaders: None,
        };
        let g = build(&inputs, &cfg);
        check_invariants_directed(&g, &window, &sector, &cfg);
        let base = build_graph(&window, &sector, &cfg.same_day_only());
        for (i, planted) in leader.iter().enumerate() {
            // Brute force: the top 3 by |λ|, ties to the lower index.
            let mut others: Vec<usize> = (0..n).filter(|&j| j != i).collect();
            others.sort_by(|&a, &b| {
                lagged_pearson(&history, l, i, b)
                    .abs()
                    .partial_cmp(&lagged_pearson(&history, l, i, a).abs())
                    .unwrap()
                    .then(a.cmp(&b))
            });
            let partners: Vec<usize> = others[..3].to_vec();
            if let Some(j) = *planted {
                assert!(
                    partners.contains(&j),
                    "node {i} misses its planted leader {j}"
                );
            }
            // Edges: the same-day graph's plus the partners, nothing else.
            let mut expect: Vec<usize> = base.src[base.offsets[i]..base.offsets[i + 1]].to_vec();
            expect.extend(&partners);
            expect.sort();
            expect.dedup();
            assert_eq!(
                &g.src[g.offsets[i]..g.offsets[i + 1]],
                &expect[..],
                "node {i}"
            );
            for e in g.offsets[i]..g.offsets[i + 1] {
                let j = g.src[e];
                let f = &g.edge_feat[4 * e..4 * e + 4];
                let lam = lagged_pearson(&history, l, i, j);
                assert!((f[2] - lam).abs() < 1e-12, "λ {j}->{i}: {} vs {lam}", f[2]);
                let partner = if partners.contains(&j) { 1.0 } else { 0.0 };
                assert_eq!(f[3], partner, "partner flag {j}->{i}");
            }
        }
        // The planted links are recovered; a partner edge is directed.
        let rec = link_recovery(&g, &leader);
        assert_eq!(rec.links, leader.iter().flatten().count());
        assert_eq!(rec.found, rec.links);
        let directed =
            (0..n).any(|i| leader[i].is_some_and(|j| g.has_edge(j, i) && !g.has_edge(i, j)));
        assert!(directed, "lead-lag partner edges are one-way");

        // True links replace the measured partners and nothing else.
        let truth = GraphInputs {
            true_leaders: Some(&leader),
            ..inputs
        };
        let gt = build(&truth, &cfg);
        check_invariants_directed(&gt, &window, &sector, &cfg);
        for (i, planted) in leader.iter().enumerate() {
            let mut expect: Vec<usize> = base.src[base.offsets[i]..base.offsets[i + 1]].to_vec();
            expect.extend(*planted);
            expect.sort();
            expect.dedup();
            assert_eq!(
                &gt.src[gt.offsets[i]..gt.offsets[i + 1]],
                &expect[..],
                "node {i}"
            );
        }
        assert_eq!(link_recovery(&gt, &leader).recall(), 1.0);
        // Deterministic at any thread count.
        assert_eq!(
            on_threads(1, || build(&inputs, &cfg)),
            on_threads(2, || build(&inputs, &cfg))
        );
    }

    /// The same-day invariants for a graph that may also hold directed partner edges.
    fn check_invariants_directed(g: &Graph, returns: &[f64], sector: &[u32], cfg: &GraphConfig) {
        let n = g.n;
        let t = returns.len() / n;
        let d = g.edge_dim;
        assert_eq!(d, cfg.edge_dim());
        assert_eq!(g.offsets[n], g.n_edges());
        assert_eq!(g.edge_feat.len(), d * g.n_edges());
        assert!(g.edge_feat.iter().all(|v| v.is_finite() && v.abs() <= 1.0));
        for i in 0..n {
            let srcs = &g.src[g.offsets[i]..g.offsets[i + 1]];
            assert!(srcs.windows(2).all(|w| w[0] < w[1]));
            assert!(g.has_edge(i, i));
            for e in g.offsets[i]..g.offsets[i + 1] {
                let j = g.src[e];
                let f = &g.edge_feat[d * e..d * (e + 1)];
                if j == i {
                    assert_eq!((f[0], f[1], f[3]), (1.0, 1.0, 0.0));
                    continue;
                }
                let r = pearson(&returns[i * t..(i + 1) * t], &returns[j * t..(j + 1) * t]);
                assert!((f[0] - r).abs() < 1e-12);
                assert_eq!(f[1], if sector[i] == sector[j] { 1.0 } else { 0.0 });
                // An edge that is not mirrored must be a lead-lag partner.
                if !g.has_edge(i, j) {
                    assert_eq!(f[3], 1.0, "one-way edge {j}->{i} is not a partner");
                }
            }
        }
    }

    #[test]
    fn short_history_gives_zero_lag_features_and_no_partners() {
        let (n, t) = (30, 10);
        let window = rand_vec(n * t, 4, 1.0);
        let sector: Vec<u32> = (0..n as u32).map(|i| i % 4).collect();
        let cfg = GraphConfig::default();
        let base = build_graph(&window, &sector, &cfg.same_day_only());
        for l in [0usize, 1, 2] {
            let history = rand_vec(n * l, 5, 1.0);
            let g = build(
                &GraphInputs {
                    window: &window,
                    history: &history,
                    sector: &sector,
                    true_leaders: None,
                },
                &cfg,
            );
            assert_eq!(g.src, base.src, "history of {l} days");
            assert!(
                (0..g.n_edges())
                    .all(|e| g.edge_feat[4 * e + 2] == 0.0 && g.edge_feat[4 * e + 3] == 0.0)
            );
        }
    }

    #[test]
    fn link_recovery_counts() {
        // 0 → 1 and 2 → 3 planted; the graph holds 0 → 1 only, plus 3 → 2.
        let g = Graph {
            n: 4,
            offsets: vec![0, 1, 3, 5, 6],
            src: vec![0, 0, 1, 2, 3, 3],
            edge_dim: 2,
            edge_feat: vec![0.0; 12],
        };
        let r = link_recovery(&g, &[None, Some(0), None, Some(2)]);
        assert_eq!(
            (r.links, r.found, r.follower_in_edges, r.in_edges, r.nodes),
            (2, 1, 1, 2, 4)
        );
        assert_eq!(r.recall(), 0.5);
        assert_eq!(r.precision(), 1.0);
        assert_eq!(r.mean_in_degree(), 0.5);
        assert_eq!(r.random_recall(), 2.0 / 12.0);
    }
}
