//! The day's stock graph (MODEL.md block 4): input preprocessing for the GAT layers,
//! built once per day from the stocks' own input windows and never differentiated.
//!
//! # Definition (deterministic, exact)
//!
//! For `n` stocks with return series `r_i ∈ ℝ^t` and sector ids `sector[i]`:
//!
//! 1. **Correlation.** Each series is standardised to `z_i = (r_i − r̄_i) / ‖r_i − r̄_i‖₂`
//!    (`r̄_i` the mean over the `t` steps, summed in time order), and `ρ = Z·Zᵀ` is one
//!    matrix product ([`linalg::matmul`]). A series with zero variance (all `t` values
//!    equal, `t = 0`) or with a non-finite value gets `z_i = 0`, so its `ρ` with every
//!    other stock is exactly 0, never NaN. `ρ` is clamped to `[−1, 1]` and made exactly
//!    symmetric by copying the upper triangle (`ρ_ji := ρ_ij` for `i < j`).
//! 2. **Candidates of node i.** Order the other stocks `j ≠ i` by `|ρ_ij|` descending, ties
//!    to the lower index `j`. The candidates are (a) the first `k` of those with
//!    `|ρ_ij| ≥ min_abs_rho`, and (b) the first `sector_cap` of those with
//!    `sector[j] = sector[i]`, whatever their `|ρ|`.
//! 3. **Symmetric union.** `{i, j}` is an edge when `j` is a candidate of `i` or `i` is a
//!    candidate of `j`; it gives the two directed edges `j → i` and `i → j`, both with
//!    features `[ρ_ij, same_sector]` (`same_sector = 1` when the sector ids are equal,
//!    else 0). Every node also gets a self-loop `i → i` with features `[1, 1]`.
//!    There are no duplicate edges.
//! 4. **Layout.** Edges are grouped by destination in node order (CSR): node `i`'s
//!    in-edges are `offsets[i]..offsets[i+1]`, sorted by source index (the self-loop sits
//!    at its source position `i`).
//!
//! A node therefore has at least its self-loop; a stock with a constant series has only
//! its self-loop and same-sector edges (for the default `min_abs_rho > 0`).
//!
//! Memory is `O(n²)` for `ρ` (fine for `n ≤ 5000`); the candidate selection runs in
//! parallel over nodes, each node writing its own list, so the graph does not depend on
//! the thread count.

use super::linalg;
use rayon::prelude::*;
use std::cmp::Ordering;

/// How the day's graph is built. Defaults (MODEL.md): `k = 15`, `min_abs_rho = 0.3`,
/// `sector_cap = 10`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GraphConfig {
    /// Most correlation neighbours chosen by each node (before symmetrisation).
    pub k: usize,
    /// A correlation neighbour needs `|ρ| ≥ min_abs_rho`.
    pub min_abs_rho: f64,
    /// Most same-sector neighbours chosen by each node (before symmetrisation), the most
    /// correlated by `|ρ|`, regardless of `min_abs_rho`.
    pub sector_cap: usize,
}

impl Default for GraphConfig {
    fn default() -> Self {
        GraphConfig {
            k: 15,
            min_abs_rho: 0.3,
            sector_cap: 10,
        }
    }
}

/// Number of edge features: `[ρ, same_sector]`.
pub const EDGE_DIM: usize = 2;

/// A directed graph with in-edges grouped by destination (CSR).
///
/// Node `i`'s in-edges are `offsets[i]..offsets[i+1]` (`offsets` has `n + 1` entries,
/// `offsets[0] = 0`, `offsets[n] = n_edges`); edge `e` comes from node `src[e]` and has
/// the features `edge_feat[2e..2e+2] = [ρ, same_sector (0/1)]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    /// Number of nodes (stocks).
    pub n: usize,
    /// CSR offsets by destination, `n + 1` entries.
    pub offsets: Vec<usize>,
    /// Source node of each edge.
    pub src: Vec<usize>,
    /// `[n_edges × 2]` edge features `[ρ, same_sector]`.
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
}

/// Standardised series `[n × t]`: `(r − r̄)/‖r − r̄‖₂`, or all zeros for a series that is
/// constant or holds a non-finite value.
fn standardise(returns: &[f64], n: usize, t: usize) -> Vec<f64> {
    let mut z = vec![0.0; n * t];
    if t == 0 {
        return z;
    }
    for (zi, ri) in z.chunks_mut(t).zip(returns.chunks(t)) {
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

/// The symmetric `[n × n]` correlation matrix of the rows of `returns` (`[n × t]`).
fn correlations(returns: &[f64], n: usize, t: usize) -> Vec<f64> {
    let z = standardise(returns, n, t);
    let mut zt = vec![0.0; t * n];
    for i in 0..n {
        for s in 0..t {
            zt[s * n + i] = z[i * t + s];
        }
    }
    let mut rho = linalg::matmul(&z, &zt, n, t, n);
    for i in 0..n {
        for j in i..n {
            let v = rho[i * n + j];
            let v = if v.is_nan() { 0.0 } else { v.clamp(-1.0, 1.0) };
            rho[i * n + j] = v;
            rho[j * n + i] = v;
        }
    }
    rho
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

/// Builds the day's graph (see the module docs for the exact rules).
///
/// `returns` is `[n × t]`, each stock's past-`t`-day return series from its own input
/// window, and `sector` is `[n]` (the 33-sector id); `n = sector.len()`.
pub fn build_graph(returns: &[f64], sector: &[u32], cfg: &GraphConfig) -> Graph {
    let n = sector.len();
    if n == 0 {
        assert!(
            returns.is_empty(),
            "build_graph: returns given for 0 stocks"
        );
        return Graph {
            n: 0,
            offsets: vec![0],
            src: Vec::new(),
            edge_feat: Vec::new(),
        };
    }
    assert_eq!(
        returns.len() % n,
        0,
        "build_graph: {} returns are not a whole series for each of {n} stocks",
        returns.len()
    );
    let t = returns.len() / n;
    let rho = correlations(returns, n, t);

    // Candidate lists, one per node, in parallel (each node writes its own list).
    let cands: Vec<Vec<usize>> = (0..n)
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
            corr
        })
        .collect();

    // Symmetric union plus self-loops, sources sorted, no duplicates.
    let mut adj: Vec<Vec<usize>> = (0..n).map(|i| vec![i]).collect();
    for (i, c) in cands.iter().enumerate() {
        for &j in c {
            adj[i].push(j);
            adj[j].push(i);
        }
    }
    let mut offsets = Vec::with_capacity(n + 1);
    offsets.push(0);
    let mut src = Vec::new();
    let mut edge_feat = Vec::new();
    for (i, a) in adj.iter_mut().enumerate() {
        a.sort_unstable();
        a.dedup();
        for &j in a.iter() {
            src.push(j);
            if j == i {
                edge_feat.extend_from_slice(&[1.0, 1.0]);
            } else {
                let same = if sector[i] == sector[j] { 1.0 } else { 0.0 };
                edge_feat.extend_from_slice(&[rho[i * n + j], same]);
            }
        }
        offsets.push(src.len());
    }
    Graph {
        n,
        offsets,
        src,
        edge_feat,
    }
}

#[cfg(test)]
mod tests {
    use super::super::gradcheck::{on_threads, rand_vec};
    use super::*;

    fn edge(g: &Graph, from: usize, to: usize) -> Option<[f64; 2]> {
        (g.offsets[to]..g.offsets[to + 1])
            .find(|&e| g.src[e] == from)
            .map(|e| [g.edge_feat[2 * e], g.edge_feat[2 * e + 1]])
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
        assert_eq!(g.edge_feat.len(), 2 * g.n_edges());
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
        };
        let g = build_graph(&returns, &sector, &cfg);
        check_invariants(&g, &returns, &sector, &cfg);
        for i in 0..n {
            for e in g.offsets[i]..g.offsets[i + 1] {
                let j = g.src[e];
                if j != i {
                    assert!(i < 12 && j < 12, "k = 0: only sector edges");
                    assert_eq!(g.edge_feat[2 * e + 1], 1.0);
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
                    assert_eq!(g.edge_feat[2 * e], 0.0);
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
        assert!((0..g.n_edges()).all(|e| g.edge_feat[2 * e + 1] == 1.0));
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
        assert_eq!(g.edge_feat, vec![1.0, 1.0]);
    }
}
