//! kernels/network.cu: the day graph on the device, the gated fusion and the two linear
//! paths, mirroring the functions of the same names in `network.rs`.

use super::{Arg, BLOCK, Gpu, Launch, Result, Tensor, View, elementwise, int};
use crate::jp_equity::model::graph::Graph;

/// The day graph in device memory: CSR by destination (`offsets`, `src`, i32), each
/// edge's destination (`dst`), the reverse CSR by source (`out_offsets`, `out_edges`:
/// each node's out-edges in increasing edge order, for gradients that flow back to the
/// sources without atomics) and the edge features (f32, `edge_dim` per edge) — generic in
/// the features' width and in the edges' direction, as on the CPU.
pub struct DeviceGraph {
    pub n: usize,
    pub n_edges: usize,
    pub edge_dim: usize,
    pub offsets: Tensor,
    pub src: Tensor,
    pub dst: Tensor,
    pub out_offsets: Tensor,
    pub out_edges: Tensor,
    pub edge_feat: Tensor,
}

impl DeviceGraph {
    pub fn upload(g: &Gpu, graph: &Graph) -> Result<DeviceGraph> {
        let ints = |v: &[usize]| -> Result<Vec<i32>> {
            v.iter()
                .map(|x| {
                    i32::try_from(*x).map_err(|_| {
                        lakebuild_kernels::Error(format!("graph index {x} exceeds i32"))
                    })
                })
                .collect()
        };
        let feat: Vec<f32> = graph.edge_feat.iter().map(|v| *v as f32).collect();
        let n_edges = graph.src.len();
        let mut dst = Vec::with_capacity(n_edges);
        for (i, w) in graph.offsets.windows(2).enumerate() {
            dst.extend(std::iter::repeat_n(i, w[1].saturating_sub(w[0])));
        }
        // Counting sort by source; edges stay in increasing order within a source.
        let mut out_offsets = vec![0usize; graph.n + 1];
        for &j in &graph.src {
            out_offsets[j + 1] += 1;
        }
        for i in 0..graph.n {
            out_offsets[i + 1] += out_offsets[i];
        }
        let mut next = out_offsets.clone();
        let mut out_edges = vec![0usize; n_edges];
        for (e, &j) in graph.src.iter().enumerate() {
            out_edges[next[j]] = e;
            next[j] += 1;
        }
        Ok(DeviceGraph {
            n: graph.n,
            n_edges,
            edge_dim: graph.edge_dim,
            offsets: Tensor::from_i32(g.dev, &ints(&graph.offsets)?)?,
            src: Tensor::from_i32(g.dev, &ints(&graph.src)?)?,
            dst: Tensor::from_i32(g.dev, &ints(&dst)?)?,
            out_offsets: Tensor::from_i32(g.dev, &ints(&out_offsets)?)?,
            out_edges: Tensor::from_i32(g.dev, &ints(&out_edges)?)?,
            edge_feat: g.upload_f32(&feat)?,
        })
    }
}

/// Each stock's last-day features then masks, `[n × (features + masks)]`
/// (`network::last_day_inputs`); `x` is `[n × t × features]`, `mask` `[n × t × masks]`.
pub fn last_day_inputs(
    g: &Gpu,
    x: View,
    mask: View,
    n: usize,
    t: usize,
    features: usize,
    masks: usize,
) -> Result<Tensor> {
    let out = g.zeros(n * (features + masks))?;
    g.launch(
        "last_day_inputs",
        elementwise(n * (features + masks)),
        &[
            x.arg(),
            mask.arg(),
            out.arg(),
            int(n),
            int(t),
            int(features),
            int(masks),
        ],
    )?;
    Ok(out)
}

/// The graph path's inputs `[n × edge_dim × width]` (`network::neighbour_inputs`).
pub fn neighbour_inputs(g: &Gpu, graph: &DeviceGraph, x: View, width: usize) -> Result<Tensor> {
    let len = graph.n * graph.edge_dim * width;
    let out = g.zeros(len)?;
    g.launch(
        "neighbour_inputs",
        elementwise(len),
        &[
            graph.offsets.arg(),
            graph.src.arg(),
            graph.edge_feat.arg(),
            x.arg(),
            out.arg(),
            int(graph.n),
            int(graph.edge_dim),
            int(width),
        ],
    )?;
    Ok(out)
}

/// Every quantile of `q` (`[n × horizons × 5]`, in place) moves by `κ·w_h·x_i`
/// (`network::linear_path_forward`; `w` is `[horizons × width]`).
#[allow(clippy::too_many_arguments)]
pub fn linear_path_forward(
    g: &Gpu,
    q: &Tensor,
    x: View,
    w: View,
    n: usize,
    horizons: usize,
    width: usize,
    kappa: f64,
) -> Result<()> {
    g.launch(
        "linear_path_forward",
        elementwise(n * horizons),
        &[
            q.arg(),
            x.arg(),
            w.arg(),
            int(n),
            int(horizons),
            int(width),
            Arg::F32(kappa as f32),
        ],
    )
}

/// The gradient of [`linear_path_forward`] in `w`, added into `grads`
/// (`network::linear_path_backward`).
#[allow(clippy::too_many_arguments)]
pub fn linear_path_backward(
    g: &Gpu,
    dq: &Tensor,
    x: View,
    n: usize,
    horizons: usize,
    width: usize,
    kappa: f64,
    grads: View,
) -> Result<()> {
    g.launch(
        "linear_path_backward",
        elementwise(horizons * width),
        &[
            dq.arg(),
            x.arg(),
            grads.arg(),
            int(n),
            int(horizons),
            int(width),
            Arg::F32(kappa as f32),
        ],
    )
}

/// The gated fusion `z = h + σ(gate)·g2` (`gate` is the one-logit parameter).
pub fn fusion_forward(g: &Gpu, h: View, g2: View, gate: View, len: usize) -> Result<Tensor> {
    let z = g.zeros(len)?;
    g.launch(
        "fusion_forward",
        elementwise(len),
        &[h.arg(), g2.arg(), gate.arg(), z.arg(), int(len)],
    )?;
    Ok(z)
}

/// Backward of [`fusion_forward`]: adds the gate logit's gradient into `dgate` and
/// returns `dg2 = σ(gate)·dz` (the gradient into `h` is `dz` itself).
pub fn fusion_backward(
    g: &Gpu,
    dz: &Tensor,
    g2: View,
    gate: View,
    dgate: View,
    len: usize,
) -> Result<Tensor> {
    let dg2 = g.zeros_f32(len)?;
    g.launch(
        "fusion_backward_input",
        elementwise(len),
        &[dz.arg(), gate.arg(), dg2.arg(), int(len)],
    )?;
    g.launch(
        "fusion_backward_gate",
        Launch::linear(1, BLOCK),
        &[dz.arg(), g2.arg(), gate.arg(), dgate.arg(), int(len)],
    )?;
    Ok(dg2)
}

#[cfg(test)]
mod tests {
    use super::super::check::{assert_matches, both, values};
    use super::*;
    use crate::jp_equity::model::graph::{GraphConfig, build_graph};
    use crate::jp_equity::model::layers::sigmoid;
    use crate::jp_equity::model::network::{
        DayInput, ModelConfig, last_day_inputs as cpu_last, linear_path_backward as cpu_lpb,
        linear_path_forward as cpu_lpf, neighbour_inputs as cpu_neighbours,
    };

    /// A day of 30 stocks whose graph has correlation, sector and lead-lag edges, and
    /// one isolated node (its own sector, a constant return series).
    fn day() -> (ModelConfig, DayInput<f32>) {
        let (n, t) = (30, 20);
        let mut cfg = ModelConfig::new(t, 6, 2, 4);
        cfg.graph_lag_lookback = 30;
        let mut ret = values(n * 30, 61, 1.0);
        let common = values(30, 62, 1.0);
        for i in 0..n {
            for s in 0..30 {
                ret[i * 30 + s] += if i < 10 { common[s] } else { 0.0 };
                if i == n - 1 {
                    ret[i * 30 + s] = 0.0;
                }
            }
        }
        let sector: Vec<u32> = (0..n as u32)
            .map(|i| if i == n as u32 - 1 { 99 } else { i % 3 })
            .collect();
        let graph = build_graph(
            &ret.iter().map(|v| *v as f64).collect::<Vec<_>>(),
            &sector,
            &GraphConfig {
                lag_lookback: 30,
                ..cfg.graph()
            },
        );
        let x = values(n * t * cfg.features, 63, 1.0);
        let mask: Vec<f32> = values(n * t * cfg.masks, 64, 1.0)
            .iter()
            .map(|v| if *v > 0.0 { 1.0 } else { 0.0 })
            .collect();
        (cfg, DayInput { n, x, mask, graph })
    }

    #[test]
    fn the_linear_paths_match_the_cpu_reference() {
        let (cfg, day) = day();
        assert!(
            (0..day.n).any(|i| day.graph.offsets[i + 1] == day.graph.offsets[i])
                || (0..day.n).any(|i| (day.graph.offsets[i]..day.graph.offsets[i + 1])
                    .all(|e| day.graph.src[e] == i)),
            "the test day needs a node without neighbours"
        );
        let (n, hz, sw) = (day.n, cfg.horizons, cfg.skip_width());
        let dim = day.graph.edge_dim;
        let kappa = 1.5;
        let cpu_x = cpu_last(&day, &cfg);
        let cpu_m = cpu_neighbours(&day.graph, &cpu_x, sw);
        let w_skip = values(hz * sw, 65, 0.5);
        let w_graph = values(hz * dim * sw, 66, 0.5);
        let q0 = values(n * hz * 5, 67, 1.0);
        let dq = values(n * hz * 5, 68, 1.0);
        let mut cpu_q = q0.clone();
        cpu_lpf(&mut cpu_q, &cpu_x, &w_skip, hz, kappa as f32);
        cpu_lpf(&mut cpu_q, &cpu_m, &w_graph, hz, kappa as f32);
        let (mut cpu_gs, mut cpu_gg) = (vec![0f32; w_skip.len()], vec![0f32; w_graph.len()]);
        cpu_lpb(&dq, &cpu_x, hz, kappa as f32, &mut cpu_gs);
        cpu_lpb(&dq, &cpu_m, hz, kappa as f32, &mut cpu_gg);
        both(|g| {
            let run = || -> Result<_> {
                let (tx, tmask) = (g.upload(&day.x)?, g.upload(&day.mask)?);
                let graph = DeviceGraph::upload(&g, &day.graph)?;
                let x = last_day_inputs(
                    &g,
                    (&tx).into(),
                    (&tmask).into(),
                    n,
                    cfg.t,
                    cfg.features,
                    cfg.masks,
                )?;
                let m = neighbour_inputs(&g, &graph, (&x).into(), sw)?;
                let q = g.upload(&q0)?;
                let (ws, wg) = (g.upload(&w_skip)?, g.upload(&w_graph)?);
                linear_path_forward(&g, &q, (&x).into(), (&ws).into(), n, hz, sw, kappa)?;
                linear_path_forward(&g, &q, (&m).into(), (&wg).into(), n, hz, dim * sw, kappa)?;
                let tdq = g.upload_f32(&dq)?;
                let (gs, gg) = (g.zeros_f32(w_skip.len())?, g.zeros_f32(w_graph.len())?);
                linear_path_backward(&g, &tdq, (&x).into(), n, hz, sw, kappa, (&gs).into())?;
                linear_path_backward(&g, &tdq, (&m).into(), n, hz, dim * sw, kappa, (&gg).into())?;
                Ok((
                    g.download(&x)?,
                    g.download(&m)?,
                    g.download(&q)?,
                    g.download(&gs)?,
                    g.download(&gg)?,
                ))
            };
            let (x, m, q, gs, gg) = run().expect("the shim runs the kernels");
            let p = g.precision;
            assert_matches("last-day inputs", p, &x, &cpu_x);
            assert_matches("neighbour inputs", p, &m, &cpu_m);
            assert_matches("q after both linear paths", p, &q, &cpu_q);
            assert_matches("skip path gradient", p, &gs, &cpu_gs);
            assert_matches("graph path gradient", p, &gg, &cpu_gg);
        });
    }

    #[test]
    fn the_gated_fusion_matches_the_cpu_reference() {
        let len = 30 * 16;
        let h = values(len, 71, 1.0);
        let g2 = values(len, 72, 1.0);
        let dz = values(len, 73, 1.0);
        let gate = [0.3f32];
        let s = sigmoid(gate[0]);
        let cpu_z: Vec<f32> = h.iter().zip(&g2).map(|(a, b)| a + s * b).collect();
        let cpu_dg2: Vec<f32> = dz.iter().map(|d| s * d).collect();
        let cpu_dgate = dz.iter().zip(&g2).map(|(a, b)| a * b).sum::<f32>() * s * (1.0 - s);
        both(|g| {
            let run = || -> Result<_> {
                let (th, tg2, tgate) = (g.upload(&h)?, g.upload(&g2)?, g.upload(&gate)?);
                let z = fusion_forward(&g, (&th).into(), (&tg2).into(), (&tgate).into(), len)?;
                let dgate = g.zeros_f32(1)?;
                let dg2 = fusion_backward(
                    &g,
                    &g.upload_f32(&dz)?,
                    (&tg2).into(),
                    (&tgate).into(),
                    (&dgate).into(),
                    len,
                )?;
                Ok((g.download(&z)?, g.download(&dg2)?, g.download(&dgate)?))
            };
            let (z, dg2, dgate) = run().expect("the shim runs the kernels");
            let p = g.precision;
            assert_matches("fusion z", p, &z, &cpu_z);
            assert_matches("fusion dg2", p, &dg2, &cpu_dg2);
            assert_matches("fusion dgate", p, &dgate, &[cpu_dgate]);
        });
    }
}
