//! kernels/gat.cu: a GATv2 layer over the day's edge list, mirroring `gat::gat_forward`
//! and `gat::gat_backward` (the products and LayerNorm are layers.cu's).

use super::layers::{
    LayerNormCache, columns_launch, layer_norm, layer_norm_backward, linear, linear_backward,
};
use super::network::DeviceGraph;
use super::{BLOCK, Gpu, Launch, Result, Tensor, View, int};
use crate::jp_equity::model::gat::GatShape;

/// Where each parameter piece starts in the layer's range (`GatShape`'s order).
struct Offsets {
    w_l: usize,
    b_l: usize,
    w_r: usize,
    b_r: usize,
    w_e: usize,
    att: usize,
    bias: usize,
    ln_g: usize,
    ln_b: usize,
}

impl Offsets {
    fn of(s: &GatShape) -> Offsets {
        let (h, hd, hw) = (s.h, s.hd(), s.hw());
        let w_l = 0;
        let b_l = w_l + h * hw;
        let w_r = b_l + hw;
        let b_r = w_r + h * hw;
        let w_e = b_r + hw;
        let att = w_e + s.edge_dim * hw;
        let bias = att + s.heads * hd;
        let ln_g = bias + h;
        let ln_b = ln_g + h;
        debug_assert_eq!(ln_b + h, s.n_params());
        Offsets {
            w_l,
            b_l,
            w_r,
            b_r,
            w_e,
            att,
            bias,
            ln_g,
            ln_b,
        }
    }
}

/// What [`gat_backward`] needs from [`gat_forward`] (as `gat::GatCache`, plus the
/// LayerNorm's input; the layer's input stays the caller's and is passed to the backward).
pub struct GatCache {
    pub xl: Tensor,
    /// `[E × hw]`, storage precision.
    pub u: Tensor,
    /// `[E × heads]`, f32: for every node and head they sum to 1 over its in-edges.
    pub alpha: Tensor,
    /// `x + out + bias`, the LayerNorm's input.
    pub pre: Tensor,
    pub ln: LayerNormCache,
}

fn check(s: &GatShape, graph: &DeviceGraph) -> Result<()> {
    if s.h == 0 || s.heads == 0 || (s.concat && !s.h.is_multiple_of(s.heads)) {
        return Err(lakebuild_kernels::Error(format!(
            "gat: invalid shape {s:?}"
        )));
    }
    if s.edge_dim != graph.edge_dim {
        return Err(lakebuild_kernels::Error(format!(
            "gat: the layer reads {} edge features, the graph has {}",
            s.edge_dim, graph.edge_dim
        )));
    }
    Ok(())
}

/// `x` `[n × h]` (storage precision) → `y = LayerNorm(x + out + bias)`.
pub fn gat_forward(
    g: &Gpu,
    s: &GatShape,
    p: View,
    x: &Tensor,
    graph: &DeviceGraph,
) -> Result<(Tensor, GatCache)> {
    check(s, graph)?;
    let o = Offsets::of(s);
    let (n, h, heads, hd, hw, ne) = (graph.n, s.h, s.heads, s.hd(), s.hw(), graph.n_edges);
    let xl = linear(
        g,
        x.into(),
        p.offset(o.w_l),
        Some(p.offset(o.b_l)),
        n,
        h,
        hw,
    )?;
    let xr = linear(
        g,
        x.into(),
        p.offset(o.w_r),
        Some(p.offset(o.b_r)),
        n,
        h,
        hw,
    )?;
    let u = g.zeros(ne * hw)?;
    let alpha = g.zeros_f32(ne * heads)?;
    g.launch(
        "gat_edge_scores",
        Launch::cover(ne * heads, BLOCK),
        &[
            graph.dst.arg(),
            graph.src.arg(),
            graph.edge_feat.arg(),
            xl.arg(),
            xr.arg(),
            p.offset(o.w_e).arg(),
            p.offset(o.att).arg(),
            u.arg(),
            alpha.arg(),
            int(ne),
            int(heads),
            int(hd),
            int(s.edge_dim),
        ],
    )?;
    g.launch_f32(
        "gat_softmax",
        Launch::cover(n * heads, BLOCK),
        &[graph.offsets.arg(), alpha.arg(), int(n), int(heads)],
    )?;
    let pre = g.zeros(n * h)?;
    g.launch(
        "gat_aggregate",
        Launch::cover(n * h, BLOCK),
        &[
            graph.offsets.arg(),
            graph.src.arg(),
            alpha.arg(),
            xl.arg(),
            x.arg(),
            p.offset(o.bias).arg(),
            pre.arg(),
            int(n),
            int(h),
            int(heads),
            int(hd),
            int(s.concat as usize),
        ],
    )?;
    let (y, ln) = layer_norm(g, &pre, p.offset(o.ln_g), p.offset(o.ln_b), n, h)?;
    let cache = GatCache {
        xl,
        u,
        alpha,
        pre,
        ln,
    };
    Ok((y, cache))
}

/// Adds the parameter gradients into `grads` (the layer's range of the f32 gradient) and
/// returns `∂L/∂x` (f32), given the forward's input `x` and `dy = ∂L/∂y` (f32), as
/// `gat::gat_backward`.
#[allow(clippy::too_many_arguments)]
pub fn gat_backward(
    g: &Gpu,
    s: &GatShape,
    p: View,
    x: &Tensor,
    cache: &GatCache,
    graph: &DeviceGraph,
    dy: &Tensor,
    grads: View,
) -> Result<Tensor> {
    check(s, graph)?;
    let o = Offsets::of(s);
    let (n, h, heads, hd, hw, ne) = (graph.n, s.h, s.heads, s.hd(), s.hw(), graph.n_edges);
    let dpre = layer_norm_backward(
        g,
        dy,
        &cache.pre,
        p.offset(o.ln_g),
        &cache.ln,
        grads.offset(o.ln_g),
        grads.offset(o.ln_b),
        n,
        h,
    )?;
    g.launch_f32(
        "column_sum",
        columns_launch(h),
        &[dpre.arg(), grads.offset(o.bias).arg(), int(n), int(h)],
    )?;
    let ds = g.zeros_f32(ne * heads)?;
    let du = g.zeros_f32(ne * hw)?;
    let concat = int(s.concat as usize);
    g.launch(
        "gat_backward_scores",
        Launch::cover(n * heads, BLOCK),
        &[
            graph.offsets.arg(),
            graph.src.arg(),
            cache.alpha.arg(),
            cache.xl.arg(),
            cache.u.arg(),
            p.offset(o.att).arg(),
            dpre.arg(),
            ds.arg(),
            du.arg(),
            int(n),
            int(h),
            int(heads),
            int(hd),
            concat,
        ],
    )?;
    let dxr = g.zeros_f32(n * hw)?;
    g.launch_f32(
        "gat_backward_dxr",
        Launch::cover(n * hw, BLOCK),
        &[graph.offsets.arg(), du.arg(), dxr.arg(), int(n), int(hw)],
    )?;
    let dxl = g.zeros_f32(n * hw)?;
    g.launch_f32(
        "gat_backward_dxl",
        Launch::cover(n * hw, BLOCK),
        &[
            graph.out_offsets.arg(),
            graph.out_edges.arg(),
            graph.dst.arg(),
            cache.alpha.arg(),
            du.arg(),
            dpre.arg(),
            dxl.arg(),
            int(n),
            int(h),
            int(heads),
            int(hd),
            concat,
        ],
    )?;
    g.launch(
        "gat_backward_att",
        Launch::linear(hw, BLOCK),
        &[
            ds.arg(),
            cache.u.arg(),
            grads.offset(o.att).arg(),
            int(ne),
            int(heads),
            int(hd),
        ],
    )?;
    g.launch_f32(
        "gat_backward_edge_weights",
        Launch::linear(s.edge_dim * hw, BLOCK),
        &[
            graph.edge_feat.arg(),
            du.arg(),
            grads.offset(o.w_e).arg(),
            int(ne),
            int(s.edge_dim),
            int(hw),
        ],
    )?;
    // ∂x = ∂pre + ∂xl·w_lᵀ + ∂xr·w_rᵀ, accumulated into ∂pre.
    for (dproj, w, b, dw) in [(&dxl, o.w_l, o.b_l, o.w_l), (&dxr, o.w_r, o.b_r, o.w_r)] {
        linear_backward(
            g,
            x.into(),
            p.offset(w),
            dproj.into(),
            n,
            h,
            hw,
            grads.offset(dw),
            Some(grads.offset(b)),
            Some((&dpre).into()),
        )?;
    }
    Ok(dpre)
}

#[cfg(test)]
mod tests {
    use super::super::check::{assert_matches, both, values};
    use super::*;
    use crate::jp_equity::model::gat as cpu;
    use crate::jp_equity::model::graph::Graph;

    /// 30 nodes, directed edges: node 0 has no in-edge at all, node 1 only its self-loop,
    /// the others a self-loop and 1–6 in-edges from pseudo-random sources (some of them
    /// also sources of nothing); 4 edge features.
    fn graph() -> Graph {
        let n = 30;
        let feats = values(n * 8 * 4, 81, 1.0);
        let mut offsets = vec![0];
        let mut src = Vec::new();
        let mut edge_feat = Vec::new();
        for i in 0..n {
            let mut ins: Vec<usize> = match i {
                0 => vec![],
                1 => vec![1],
                _ => {
                    let mut v = vec![i];
                    v.extend((0..1 + (i * 7) % 6).map(|k| (i * 13 + k * 5 + 3) % 20));
                    v
                }
            };
            ins.dedup();
            for j in ins {
                let e = src.len();
                src.push(j);
                edge_feat.extend(feats[e * 4..e * 4 + 4].iter().map(|v| *v as f64));
            }
            offsets.push(src.len());
        }
        Graph {
            n,
            offsets,
            src,
            edge_dim: 4,
            edge_feat,
        }
    }

    fn compare(concat: bool) {
        let graph = graph();
        let s = GatShape {
            h: 12,
            heads: 3,
            concat,
            edge_dim: 4,
        };
        let n = graph.n;
        // Parameters at the scale of training (LayerNorm's γ near 1, the rest small).
        let mut p = values(s.n_params(), 82, 0.4);
        let o = Offsets::of(&s);
        for v in &mut p[o.ln_g..o.ln_g + s.h] {
            *v += 1.0;
        }
        let x = values(n * s.h, 83, 1.0);
        let dy = values(n * s.h, 84, 1.0);
        let (cpu_y, cache) = cpu::gat_forward(&s, &p, &x, &graph);
        let mut cpu_g = vec![0f32; s.n_params()];
        let cpu_dx = cpu::gat_backward(&s, &p, &cache, &graph, &dy, &mut cpu_g);
        let mode = if concat { "concat" } else { "mean" };
        both(|g| {
            let run = || -> Result<_> {
                let dgraph = DeviceGraph::upload(&g, &graph)?;
                let tp = g.upload(&p)?;
                let tx = g.upload(&x)?;
                let (y, c) = gat_forward(&g, &s, (&tp).into(), &tx, &dgraph)?;
                let grads = g.zeros_f32(s.n_params())?;
                let dx = gat_backward(
                    &g,
                    &s,
                    (&tp).into(),
                    &tx,
                    &c,
                    &dgraph,
                    &g.upload_f32(&dy)?,
                    (&grads).into(),
                )?;
                Ok((
                    g.download(&y)?,
                    g.download(&c.alpha)?,
                    g.download(&dx)?,
                    g.download(&grads)?,
                ))
            };
            let (y, alpha, dx, grads) = run().expect("shim");
            let p = g.precision;
            assert_matches(&format!("gat_forward y ({mode})"), p, &y, &cpu_y);
            assert_matches(&format!("gat_forward α ({mode})"), p, &alpha, &cache.alpha);
            assert_matches(&format!("gat_backward ∂x ({mode})"), p, &dx, &cpu_dx);
            for (name, at, len) in [
                ("w_l", o.w_l, s.h * s.hw()),
                ("b_l", o.b_l, s.hw()),
                ("w_r", o.w_r, s.h * s.hw()),
                ("b_r", o.b_r, s.hw()),
                ("w_e", o.w_e, s.edge_dim * s.hw()),
                ("att", o.att, s.heads * s.hd()),
                ("bias", o.bias, s.h),
                ("ln_g", o.ln_g, s.h),
                ("ln_b", o.ln_b, s.h),
            ] {
                assert_matches(
                    &format!("gat_backward ∂{name} ({mode})"),
                    p,
                    &grads[at..at + len],
                    &cpu_g[at..at + len],
                );
            }
        });
    }

    #[test]
    fn the_gat_layer_with_concatenated_heads_matches_the_cpu_reference() {
        compare(true);
    }

    #[test]
    fn the_gat_layer_with_averaged_heads_matches_the_cpu_reference() {
        compare(false);
    }

    #[test]
    fn the_reverse_csr_lists_each_source_s_out_edges_in_edge_order() {
        let graph = graph();
        both(|g| {
            let d = DeviceGraph::upload(&g, &graph).expect("upload");
            let off = d.out_offsets.to_i32(g.dev).expect("download");
            let edges = d.out_edges.to_i32(g.dev).expect("download");
            let dst = d.dst.to_i32(g.dev).expect("download");
            for j in 0..graph.n {
                let mine: Vec<i32> = (0..graph.src.len())
                    .filter(|e| graph.src[*e] == j)
                    .map(|e| e as i32)
                    .collect();
                assert_eq!(&edges[off[j] as usize..off[j + 1] as usize], &mine[..]);
            }
            for i in 0..graph.n {
                let range = graph.offsets[i]..graph.offsets[i + 1];
                assert!(dst[range].iter().all(|d| *d == i as i32), "node {i}");
            }
        });
    }
}
