//! A GATv2 layer with edge features, residual and LayerNorm (MODEL.md block 4).
//!
//! # Definition
//!
//! With `x ∈ ℝ^{n×h}`, `heads` heads of width `hd` (`hd = h/heads` when concatenating,
//! `hd = h` when averaging) and `hw = heads·hd`:
//!
//! ```text
//! xl = x·w_l + b_l,  xr = x·w_r + b_r                       [n × hw], one product each
//! ee_e = e_e·w_e                                            [E × hw], e_e = edge features
//! for an edge e = j → i and head c (slice c·hd..(c+1)·hd of hw):
//!     u_e^c = (xl_j^c + xr_i^c) + ee_e^c
//!     s_e^c = Σ_d att[c,d] · LeakyReLU_0.2(u_e^c[d])
//!     α_e^c = softmax of s^c over the in-edges of i (max-shifted)
//!     o_i^c = Σ_{e→i} α_e^c · xl_j^c                        (in-edge order)
//! out_i = concat_c o_i^c                (concat)   or   (Σ_c o_i^c) · (1/heads)   (mean)
//! y_i   = LayerNorm(x_i + (out_i + bias))
//! ```
//!
//! A node with no in-edge (impossible for a [`Graph`] from `build_graph`, which always has
//! self-loops) gets `out_i = 0`. The edge features are constants: their gradient is not
//! computed. Per-destination work runs in parallel over nodes (each node writes only its
//! own rows and its own in-edges); every gradient that reduces over nodes or edges
//! (`w_e`, `att`, and `∂xl`, which scatters to sources) is accumulated sequentially in
//! edge order, so results are bit-identical at any thread count.

use super::graph::Graph;
use super::layers::{LayerNormCache, layer_norm, layer_norm_backward, leaky_relu, leaky_relu_grad};
use super::linalg;
use super::params::{Carve, CarveMut, fill, glorot};
use super::real::Real;
use rayon::prelude::*;

/// LeakyReLU's negative slope in the attention score.
pub const NEG_SLOPE: f64 = 0.2;

/// Shape of a GATv2 layer.
///
/// Parameters, in order (`hd` = [`GatShape::hd`], `hw` = [`GatShape::hw`]):
/// `w_l [h × hw]`, `b_l [hw]`, `w_r [h × hw]`, `b_r [hw]`, `w_e [edge_dim × hw]`,
/// `att [heads × hd]`, `bias [h]`, `ln_g [h]` (init 1), `ln_b [h]` (init 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatShape {
    /// Hidden width (input and output).
    pub h: usize,
    /// Number of attention heads.
    pub heads: usize,
    /// Concatenate the heads (`hd = h/heads`) or average them (`hd = h`).
    pub concat: bool,
    /// Edge features per edge (2 for the day's graph: `[ρ, same_sector]`).
    pub edge_dim: usize,
}

impl GatShape {
    /// Head width: `h / heads` when concatenating, `h` when averaging.
    pub fn hd(&self) -> usize {
        if self.concat {
            self.h / self.heads
        } else {
            self.h
        }
    }

    /// Width of all heads together: `heads · hd`.
    pub fn hw(&self) -> usize {
        self.heads * self.hd()
    }

    fn check(&self) {
        assert!(
            self.h > 0 && self.heads > 0,
            "gat: h and heads must be positive: {self:?}"
        );
        assert!(
            !self.concat || self.h.is_multiple_of(self.heads),
            "gat: concatenated heads need h divisible by heads: {self:?}"
        );
    }

    /// Length of the parameter range.
    pub fn n_params(&self) -> usize {
        let (h, hd, hw) = (self.h, self.hd(), self.hw());
        2 * (h * hw + hw) + self.edge_dim * hw + self.heads * hd + 3 * h
    }

    /// Initialises the parameters: `w_l`, `w_r` Glorot over `(h, hw)`, `w_e` Glorot over
    /// `(edge_dim, hw)`, `att` Glorot over `(heads, hd)`, biases 0, `ln_g` 1, `ln_b` 0.
    pub fn init<T: Real>(&self, p: &mut [T], rng: &mut impl rand::Rng) {
        self.check();
        assert_eq!(
            p.len(),
            self.n_params(),
            "gat: parameter range has the wrong length"
        );
        let (h, hd, hw) = (self.h, self.hd(), self.hw());
        let mut c = CarveMut::new(p);
        glorot(c.take(h * hw), h, hw, rng);
        fill(c.take(hw), 0.0);
        glorot(c.take(h * hw), h, hw, rng);
        fill(c.take(hw), 0.0);
        glorot(c.take(self.edge_dim * hw), self.edge_dim, hw, rng);
        glorot(c.take(self.heads * hd), self.heads, hd, rng);
        fill(c.take(h), 0.0);
        fill(c.take(h), 1.0);
        fill(c.take(h), 0.0);
        c.done();
    }
}

/// The named parameter pieces.
struct Params<'a, T> {
    w_l: &'a [T],
    b_l: &'a [T],
    w_r: &'a [T],
    b_r: &'a [T],
    w_e: &'a [T],
    att: &'a [T],
    bias: &'a [T],
    ln_g: &'a [T],
    ln_b: &'a [T],
}

impl<'a, T> Params<'a, T> {
    fn carve(s: &GatShape, p: &'a [T]) -> Self {
        assert_eq!(
            p.len(),
            s.n_params(),
            "gat: parameter range has the wrong length"
        );
        let (h, hd, hw) = (s.h, s.hd(), s.hw());
        let mut c = Carve::new(p);
        let r = Params {
            w_l: c.take(h * hw),
            b_l: c.take(hw),
            w_r: c.take(h * hw),
            b_r: c.take(hw),
            w_e: c.take(s.edge_dim * hw),
            att: c.take(s.heads * hd),
            bias: c.take(h),
            ln_g: c.take(h),
            ln_b: c.take(h),
        };
        c.done();
        r
    }
}

/// What [`gat_backward`] needs from [`gat_forward`].
#[derive(Debug, Clone)]
pub struct GatCache<T> {
    /// The input `x` `[n × h]`.
    pub x: Vec<T>,
    /// `xl = x·w_l + b_l` `[n × hw]`.
    pub xl: Vec<T>,
    /// Pre-activation `u` per edge `[E × hw]` (edge-major, then head, then `hd`).
    pub u: Vec<T>,
    /// Attention weights `α` per edge and head `[E × heads]`: for every node and head they
    /// sum to 1 over the node's in-edges. Kept for interpretability.
    pub alpha: Vec<T>,
    /// LayerNorm of `x + out + bias`.
    pub ln: LayerNormCache<T>,
}

/// Checks the graph's layout against the layer and the input (programming errors).
fn check_graph(s: &GatShape, graph: &Graph) {
    let n = graph.n;
    assert_eq!(
        graph.offsets.len(),
        n + 1,
        "gat: graph offsets need n + 1 entries"
    );
    assert_eq!(graph.offsets[0], 0, "gat: graph offsets must start at 0");
    assert!(
        graph.offsets.windows(2).all(|w| w[0] <= w[1]),
        "gat: graph offsets must not decrease"
    );
    assert_eq!(
        graph.offsets[n],
        graph.src.len(),
        "gat: graph offsets do not end at n_edges"
    );
    assert_eq!(
        graph.edge_feat.len(),
        graph.src.len() * s.edge_dim,
        "gat: graph edge features are not n_edges × edge_dim = {}",
        s.edge_dim
    );
    assert!(
        graph.src.iter().all(|&j| j < n),
        "gat: an edge source is not a node"
    );
}

/// Splits `buf` into one mutable segment per node: `(offsets[i+1] − offsets[i])·width`.
fn segments<'a, T>(mut buf: &'a mut [T], offsets: &[usize], width: usize) -> Vec<&'a mut [T]> {
    let mut segs = Vec::with_capacity(offsets.len().saturating_sub(1));
    for w in offsets.windows(2) {
        let (a, b) = std::mem::take(&mut buf).split_at_mut((w[1] - w[0]) * width);
        segs.push(a);
        buf = b;
    }
    segs
}

/// The gradient reaching head `c`'s output `o_i^c[d]` from `dout_i`: `dout_i[c·hd + d]`
/// (concat) or `dout_i[d] · (1/heads)` (mean).
#[inline]
fn head_grad<T: Real>(s: &GatShape, dout_i: &[T], c: usize, d: usize, inv_heads: T) -> T {
    if s.concat {
        dout_i[c * s.hd() + d]
    } else {
        dout_i[d] * inv_heads
    }
}

/// Forward pass: `x` `[n × h]` → `y = LayerNorm(x + out + bias)` `[n × h]` (module docs).
pub fn gat_forward<T: Real>(
    s: &GatShape,
    p: &[T],
    x: &[T],
    graph: &Graph,
) -> (Vec<T>, GatCache<T>) {
    s.check();
    check_graph(s, graph);
    let pp = Params::carve(s, p);
    let (n, h, heads, hd, hw) = (graph.n, s.h, s.heads, s.hd(), s.hw());
    assert_eq!(x.len(), n * h, "gat: x is not {n}×{h}");
    let ne = graph.n_edges();

    let xl = linalg::linear(x, pp.w_l, pp.b_l, n, h, hw);
    let xr = linalg::linear(x, pp.w_r, pp.b_r, n, h, hw);
    let ef: Vec<T> = graph.edge_feat.iter().map(|v| T::c(*v)).collect();
    let ee = linalg::matmul(&ef, pp.w_e, ne, s.edge_dim, hw);

    let mut u = vec![T::zero(); ne * hw];
    let mut alpha = vec![T::zero(); ne * heads];
    let mut out = vec![T::zero(); n * h];
    let slope = T::c(NEG_SLOPE);
    let inv_heads = T::one() / T::c(heads as f64);
    let u_segs = segments(&mut u, &graph.offsets, hw);
    let a_segs = segments(&mut alpha, &graph.offsets, heads);
    out.par_chunks_mut(h)
        .zip(u_segs)
        .zip(a_segs)
        .enumerate()
        .for_each(|(i, ((out_i, u_i), a_i))| {
            let e0 = graph.offsets[i];
            let deg = graph.offsets[i + 1] - e0;
            let xr_i = &xr[i * hw..(i + 1) * hw];
            for k in 0..deg {
                let e = e0 + k;
                let j = graph.src[e];
                let xl_j = &xl[j * hw..(j + 1) * hw];
                let ee_e = &ee[e * hw..(e + 1) * hw];
                let u_e = &mut u_i[k * hw..(k + 1) * hw];
                for q in 0..hw {
                    u_e[q] = (xl_j[q] + xr_i[q]) + ee_e[q];
                }
                for c in 0..heads {
                    let mut sc = T::zero();
                    for d in 0..hd {
                        sc += pp.att[c * hd + d] * leaky_relu(u_e[c * hd + d], slope);
                    }
                    a_i[k * heads + c] = sc;
                }
            }
            if deg > 0 {
                for c in 0..heads {
                    let mut max = T::neg_infinity();
                    for k in 0..deg {
                        max = max.max(a_i[k * heads + c]);
                    }
                    let mut sum = T::zero();
                    for k in 0..deg {
                        let v = (a_i[k * heads + c] - max).exp();
                        a_i[k * heads + c] = v;
                        sum += v;
                    }
                    for k in 0..deg {
                        a_i[k * heads + c] /= sum;
                    }
                }
            }
            for c in 0..heads {
                let o = if s.concat {
                    &mut out_i[c * hd..(c + 1) * hd]
                } else {
                    &mut out_i[..]
                };
                for k in 0..deg {
                    let j = graph.src[e0 + k];
                    let a = a_i[k * heads + c];
                    let xl_jc = &xl[j * hw + c * hd..j * hw + (c + 1) * hd];
                    for d in 0..hd {
                        o[d] += a * xl_jc[d];
                    }
                }
            }
            if !s.concat {
                for v in out_i.iter_mut() {
                    *v *= inv_heads;
                }
            }
            for (v, b) in out_i.iter_mut().zip(pp.bias) {
                *v += *b;
            }
        });

    let pre: Vec<T> = x.iter().zip(&out).map(|(a, b)| *a + *b).collect();
    let (y, ln) = layer_norm(&pre, pp.ln_g, pp.ln_b, h);
    (
        y,
        GatCache {
            x: x.to_vec(),
            xl,
            u,
            alpha,
            ln,
        },
    )
}

/// Backward pass: adds the parameter gradients into `g` (same layout as `p`) and returns
/// `∂L/∂x` `[n × h]`, given `dy = ∂L/∂y` `[n × h]`.
///
/// With `dpre` from LayerNorm's backward: `∂bias = Σ_i dpre_i`, `∂x = dpre + ∂xl·w_lᵀ +
/// ∂xr·w_rᵀ`; per edge `e = j → i` and head `c` (`g_i^c` from [`head_grad`]):
/// `∂α_e^c = g_i^c · xl_j^c`, `∂s^c = α^c ⊙ (∂α^c − Σ_e α_e^c ∂α_e^c)` over `i`'s in-edges,
/// `∂u_e^c = ∂s_e^c · att_c ⊙ LeakyReLU'(u_e^c)`, `∂att_c += ∂s_e^c · LeakyReLU(u_e^c)`,
/// `∂xr_i += ∂u_e`, `∂xl_j += ∂u_e + α_e^c g_i^c`, `∂w_e += e_eᵀ ∂u_e`.
pub fn gat_backward<T: Real>(
    s: &GatShape,
    p: &[T],
    cache: &GatCache<T>,
    graph: &Graph,
    dy: &[T],
    g: &mut [T],
) -> Vec<T> {
    s.check();
    check_graph(s, graph);
    let pp = Params::carve(s, p);
    assert_eq!(
        g.len(),
        s.n_params(),
        "gat: gradient range has the wrong length"
    );
    let (n, h, heads, hd, hw) = (graph.n, s.h, s.heads, s.hd(), s.hw());
    let ne = graph.n_edges();
    assert_eq!(dy.len(), n * h, "gat: dy is not {n}×{h}");
    assert_eq!(cache.x.len(), n * h, "gat: cache does not match the graph");
    assert_eq!(
        cache.u.len(),
        ne * hw,
        "gat: cache does not match the graph"
    );
    assert_eq!(
        cache.alpha.len(),
        ne * heads,
        "gat: cache does not match the graph"
    );

    let mut gc = CarveMut::new(g);
    let dw_l = gc.take(h * hw);
    let db_l = gc.take(hw);
    let dw_r = gc.take(h * hw);
    let db_r = gc.take(hw);
    let dw_e = gc.take(s.edge_dim * hw);
    let datt = gc.take(heads * hd);
    let dbias = gc.take(h);
    let dln_g = gc.take(h);
    let dln_b = gc.take(h);
    gc.done();

    let dpre = layer_norm_backward(dy, &cache.ln, pp.ln_g, dln_g, dln_b);
    linalg::col_sum_acc(&dpre, n, h, dbias);
    let mut dx = dpre.clone();

    let slope = T::c(NEG_SLOPE);
    let inv_heads = T::one() / T::c(heads as f64);
    let (xl, u, alpha) = (&cache.xl, &cache.u, &cache.alpha);

    // Per destination, in parallel: ∂s per edge and head, ∂u per edge, ∂xr per node.
    let mut du = vec![T::zero(); ne * hw];
    let mut ds = vec![T::zero(); ne * heads];
    let mut dxr = vec![T::zero(); n * hw];
    let du_segs = segments(&mut du, &graph.offsets, hw);
    let ds_segs = segments(&mut ds, &graph.offsets, heads);
    dxr.par_chunks_mut(hw)
        .zip(du_segs)
        .zip(ds_segs)
        .enumerate()
        .for_each(|(i, ((dxr_i, du_i), ds_i))| {
            let e0 = graph.offsets[i];
            let deg = graph.offsets[i + 1] - e0;
            let dout_i = &dpre[i * h..(i + 1) * h];
            for c in 0..heads {
                // ∂α, kept in ds_i until the softmax backward replaces it by ∂s.
                let mut dot = T::zero();
                for k in 0..deg {
                    let j = graph.src[e0 + k];
                    let xl_jc = &xl[j * hw + c * hd..j * hw + (c + 1) * hd];
                    let mut da = T::zero();
                    for (d, xv) in xl_jc.iter().enumerate() {
                        da += head_grad(s, dout_i, c, d, inv_heads) * *xv;
                    }
                    ds_i[k * heads + c] = da;
                    dot += alpha[(e0 + k) * heads + c] * da;
                }
                for k in 0..deg {
                    let a = alpha[(e0 + k) * heads + c];
                    let dsc = a * (ds_i[k * heads + c] - dot);
                    ds_i[k * heads + c] = dsc;
                    let ue = &u[(e0 + k) * hw + c * hd..(e0 + k) * hw + (c + 1) * hd];
                    let due = &mut du_i[k * hw + c * hd..k * hw + (c + 1) * hd];
                    for d in 0..hd {
                        due[d] = dsc * pp.att[c * hd + d] * leaky_relu_grad(ue[d], slope);
                    }
                }
            }
            for k in 0..deg {
                for (r, v) in dxr_i.iter_mut().zip(&du_i[k * hw..(k + 1) * hw]) {
                    *r += *v;
                }
            }
        });

    // Reductions over edges, sequential in edge order.
    for e in 0..ne {
        for c in 0..heads {
            let dsc = ds[e * heads + c];
            for d in 0..hd {
                datt[c * hd + d] += dsc * leaky_relu(u[e * hw + c * hd + d], slope);
            }
        }
    }
    let mut dxl = vec![T::zero(); n * hw];
    for i in 0..n {
        let dout_i = &dpre[i * h..(i + 1) * h];
        for e in graph.offsets[i]..graph.offsets[i + 1] {
            let j = graph.src[e];
            for c in 0..heads {
                let a = alpha[e * heads + c];
                for d in 0..hd {
                    let q = c * hd + d;
                    dxl[j * hw + q] += du[e * hw + q] + a * head_grad(s, dout_i, c, d, inv_heads);
                }
            }
        }
    }
    let ef: Vec<T> = graph.edge_feat.iter().map(|v| T::c(*v)).collect();
    linalg::matmul_at_acc(&ef, &du, ne, s.edge_dim, hw, dw_e);

    linalg::linear_backward(
        &cache.x,
        pp.w_l,
        &dxl,
        n,
        h,
        hw,
        dw_l,
        Some(db_l),
        Some(&mut dx),
    );
    linalg::linear_backward(
        &cache.x,
        pp.w_r,
        &dxr,
        n,
        h,
        hw,
        dw_r,
        Some(db_r),
        Some(&mut dx),
    );
    dx
}

#[cfg(test)]
mod tests {
    use super::super::gradcheck::{
        assert_close_grads, numeric_grad, on_threads, rand_f32, rand_vec,
    };
    use super::super::graph::{GraphConfig, build_graph};
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// A graph from in-neighbour lists (self-loops as listed) with random ρ features,
    /// mirrored on both directions of an edge; with `edge_dim = 4`, also a random
    /// (directed) λ and a partner flag.
    fn graph_from(lists: &[Vec<usize>], seed: u64, edge_dim: usize) -> Graph {
        let n = lists.len();
        let rho = rand_vec(n * n, seed, 1.0);
        let lam = rand_vec(n * n, seed + 1, 1.0);
        let mut offsets = vec![0];
        let mut src = Vec::new();
        let mut edge_feat = Vec::new();
        for (i, l) in lists.iter().enumerate() {
            for &j in l {
                src.push(j);
                if i == j {
                    edge_feat.extend_from_slice(&[1.0, 1.0]);
                } else {
                    let r = rho[i.min(j) * n + i.max(j)];
                    edge_feat.extend_from_slice(&[r, if (i + j) % 2 == 0 { 1.0 } else { 0.0 }]);
                }
                if edge_dim == 4 {
                    let partner = if i != j && (i * 3 + j) % 4 == 1 {
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
            edge_dim,
            edge_feat,
        }
    }

    /// Node 0 isolated (self-loop only), node 1 with five in-edges, node 4 with a
    /// one-way in-edge from 5.
    fn tiny_graph(edge_dim: usize) -> Graph {
        graph_from(
            &[
                vec![0],
                vec![1, 2, 3, 4, 5],
                vec![1, 2, 3],
                vec![1, 2, 3],
                vec![1, 4, 5],
                vec![1, 5],
            ],
            17,
            edge_dim,
        )
    }

    fn piece_names(s: &GatShape) -> Vec<(&'static str, usize)> {
        let (h, hd, hw) = (s.h, s.hd(), s.hw());
        vec![
            ("w_l", h * hw),
            ("b_l", hw),
            ("w_r", h * hw),
            ("b_r", hw),
            ("w_e", s.edge_dim * hw),
            ("att", s.heads * hd),
            ("bias", h),
            ("ln_g", h),
            ("ln_b", h),
        ]
    }

    fn gradcheck(s: GatShape) {
        let graph = tiny_graph(s.edge_dim);
        let n = graph.n;
        let p = rand_vec(s.n_params(), 1, 0.8);
        let x = rand_vec(n * s.h, 2, 1.0);
        let r = rand_vec(n * s.h, 3, 1.0);
        let loss = |p: &[f64], x: &[f64]| -> f64 {
            let (y, _) = gat_forward(&s, p, x, &graph);
            y.iter().zip(&r).map(|(a, b)| a * b).sum()
        };
        let (_, cache) = gat_forward(&s, &p, &x, &graph);
        let mut g = vec![0.0; s.n_params()];
        let dx = gat_backward(&s, &p, &cache, &graph, &r, &mut g);
        let num = numeric_grad(&p, |p| loss(p, &x));
        let mut at = 0;
        for (name, len) in piece_names(&s) {
            assert_close_grads(name, &g[at..at + len], &num[at..at + len]);
            at += len;
        }
        assert_eq!(at, s.n_params());
        assert_close_grads("x", &dx, &numeric_grad(&x, |x| loss(&p, x)));

        // The backward pass adds into g.
        let mut g2 = g.clone();
        gat_backward(&s, &p, &cache, &graph, &r, &mut g2);
        for (a, b) in g2.iter().zip(&g) {
            assert!((a - 2.0 * b).abs() <= 1e-12 * b.abs().max(1.0));
        }
    }

    #[test]
    fn gradients_concat_heads() {
        gradcheck(GatShape {
            h: 4,
            heads: 2,
            concat: true,
            edge_dim: 2,
        });
    }

    #[test]
    fn gradients_mean_heads() {
        gradcheck(GatShape {
            h: 3,
            heads: 2,
            concat: false,
            edge_dim: 2,
        });
    }

    #[test]
    fn gradients_with_lead_lag_edge_features() {
        for concat in [true, false] {
            gradcheck(GatShape {
                h: 4,
                heads: 2,
                concat,
                edge_dim: 4,
            });
        }
    }

    #[test]
    fn attention_is_a_softmax_and_the_isolated_node_attends_to_itself() {
        let s = GatShape {
            h: 4,
            heads: 2,
            concat: true,
            edge_dim: 2,
        };
        let graph = tiny_graph(2);
        let p = rand_vec(s.n_params(), 4, 0.8);
        let x = rand_vec(graph.n * s.h, 5, 1.0);
        let (y, cache) = gat_forward(&s, &p, &x, &graph);
        assert!(y.iter().all(|v| v.is_finite()));
        for i in 0..graph.n {
            for c in 0..s.heads {
                let sum: f64 = (graph.offsets[i]..graph.offsets[i + 1])
                    .map(|e| cache.alpha[e * s.heads + c])
                    .sum();
                assert!((sum - 1.0).abs() < 1e-12, "node {i} head {c}: Σα = {sum}");
            }
        }
        // Node 1 attends non-uniformly (the scores are not all equal).
        let a1: Vec<f64> = (graph.offsets[1]..graph.offsets[2])
            .map(|e| cache.alpha[e * 2])
            .collect();
        assert!(a1.iter().any(|a| (a - a1[0]).abs() > 1e-3));
        // Node 0: out = xl_0 + bias, so y_0 = LayerNorm(x_0 + xl_0 + bias).
        let pp = Params::carve(&s, &p);
        let pre: Vec<f64> = (0..s.h)
            .map(|q| x[q] + (cache.xl[q] + pp.bias[q]))
            .collect();
        let (y0, _) = layer_norm(&pre, pp.ln_g, pp.ln_b, s.h);
        for q in 0..s.h {
            assert!((y0[q] - y[q]).abs() < 1e-12);
        }
    }

    #[test]
    fn init_gives_an_identity_like_layer_norm() {
        let s = GatShape {
            h: 8,
            heads: 4,
            concat: true,
            edge_dim: 2,
        };
        assert_eq!(s.n_params(), 2 * (64 + 8) + 16 + 8 + 24);
        let mut p = vec![0f32; s.n_params()];
        s.init(&mut p, &mut ChaCha8Rng::seed_from_u64(1));
        let pp = Params::carve(&s, &p);
        assert!(pp.ln_g.iter().all(|v| *v == 1.0) && pp.ln_b.iter().all(|v| *v == 0.0));
        assert!(pp.w_l.iter().any(|v| *v != 0.0) && pp.att.iter().any(|v| *v != 0.0));
        let m = GatShape {
            h: 8,
            heads: 2,
            concat: false,
            edge_dim: 2,
        };
        assert_eq!((m.hd(), m.hw()), (8, 16));
        assert_eq!(m.n_params(), 2 * (128 + 16) + 32 + 16 + 24);
    }

    #[test]
    fn bit_identical_at_any_thread_count() {
        let (n, t, h) = (300, 20, 64);
        let returns = rand_vec(n * t, 7, 1.0);
        let sector: Vec<u32> = (0..n as u32).map(|i| (i * 13) % 33).collect();
        let graph = build_graph(&returns, &sector, &GraphConfig::default());
        let edge_dim = graph.edge_dim;
        assert!(graph.n_edges() > 2 * linalg::CHUNK);
        let x: Vec<f32> = rand_f32(n * h, 8, 1.0);
        let dy: Vec<f32> = rand_f32(n * h, 9, 1.0);
        for s in [
            GatShape {
                h,
                heads: 4,
                concat: true,
                edge_dim,
            },
            GatShape {
                h,
                heads: 2,
                concat: false,
                edge_dim,
            },
        ] {
            let mut p = vec![0f32; s.n_params()];
            s.init(&mut p, &mut ChaCha8Rng::seed_from_u64(3));
            // Non-trivial biases, bias and LayerNorm so every piece is exercised.
            for (v, r) in p.iter_mut().zip(rand_vec(s.n_params(), 10, 0.1)) {
                *v += r as f32;
            }
            let run = |threads| {
                on_threads(threads, || {
                    let (y, cache) = gat_forward(&s, &p, &x, &graph);
                    let mut g = vec![0f32; s.n_params()];
                    let dx = gat_backward(&s, &p, &cache, &graph, &dy, &mut g);
                    (y, cache.alpha, g, dx)
                })
            };
            let one = run(1);
            let two = run(2);
            assert!(
                one.0
                    .iter()
                    .chain(&one.2)
                    .chain(&one.3)
                    .all(|v| v.is_finite())
            );
            assert!(one == two, "{s:?}: results differ between 1 and 2 threads");
        }
    }
}
