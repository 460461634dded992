//! The whole network on a device: `Network::forward` and `Network::backward` composed
//! from the blocks' kernels, in the CPU reference's order (FAN → selection input →
//! variable selection → LSTM → attention → post GRN → two GATv2 layers → gated fusion →
//! heads → linear paths), so one training step (forward, loss, backward, AdamW) can be
//! checked against the CPU reference's step.

use super::attention::{AttnCache, attention_backward, attention_forward};
use super::fan::{FanCache, fan_backward, fan_forward};
use super::gat::{GatCache, gat_backward, gat_forward};
use super::grn::{GrnCache, VsnCache, grn_backward, grn_forward, vsn_backward, vsn_forward};
use super::heads::{HeadsCache, copy_rows, heads_backward, heads_forward};
use super::lstm::{LstmCache, lstm_backward, lstm_forward};
use super::network::{
    DeviceGraph, fusion_backward, fusion_forward, last_day_inputs, linear_path_backward,
    linear_path_forward, neighbour_inputs,
};
use super::{BLOCK, Gpu, Launch, Result, Tensor, View, int};
use crate::jp_equity::model::network::{DayInput, Dropout, Network};

/// One day's inputs in device memory.
pub struct DeviceDay {
    pub n: usize,
    pub x: Tensor,
    pub mask: Tensor,
    pub graph: DeviceGraph,
}

impl DeviceDay {
    pub fn upload(g: &Gpu, day: &DayInput<f32>) -> Result<DeviceDay> {
        Ok(DeviceDay {
            n: day.n,
            x: g.upload(&day.x)?,
            mask: g.upload(&day.mask)?,
            graph: DeviceGraph::upload(g, &day.graph)?,
        })
    }
}

/// A step's dropout masks in device memory (storage precision).
pub struct DeviceDropout {
    pub selection: Tensor,
    pub post: Tensor,
    pub heads: Tensor,
}

impl DeviceDropout {
    pub fn upload(g: &Gpu, d: &Dropout<f32>) -> Result<DeviceDropout> {
        Ok(DeviceDropout {
            selection: g.upload(&d.selection)?,
            post: g.upload(&d.post)?,
            heads: g.upload(&d.heads)?,
        })
    }
}

struct Temporal {
    lstm: LstmCache,
    hs: Tensor,
    attn: AttnCache,
    last: Tensor,
    post: GrnCache,
}

struct Graph {
    c1: GatCache,
    g1: Tensor,
    c2: GatCache,
    g2: Tensor,
}

/// What [`backward`] needs from [`forward`].
pub struct DeviceNetCache {
    fan: Option<FanCache>,
    u: Tensor,
    v: Tensor,
    vsn: VsnCache,
    hvec: Tensor,
    temporal: Option<Temporal>,
    graph: Option<Graph>,
    z: Tensor,
    heads: HeadsCache,
    skip: Option<Tensor>,
    neighbours: Option<Tensor>,
}

/// Forward pass of one day: quantiles `[n × horizons × 5]` (storage precision) and the
/// cache, as `Network::forward`. `p` is the flat parameter buffer in the storage
/// precision (`AdamW::copy`).
pub fn forward(
    g: &Gpu,
    net: &Network,
    p: &Tensor,
    day: &DeviceDay,
    drop: Option<&DeviceDropout>,
) -> Result<(Tensor, DeviceNetCache)> {
    let c = &net.cfg;
    let r = &net.ranges;
    let at = |range: &std::ops::Range<usize>| View {
        t: p,
        at: range.start,
    };
    let (n, t, f, h) = (day.n, c.t, c.features, c.hidden);

    // 1. FAN, then the selection input.
    let (xf, amp, fan) = if c.use_fan {
        let (y, amp, cache) = fan_forward(g, &net.fan, at(&r.fan), &day.x, n)?;
        (Some(y), Some(amp), Some(cache))
    } else {
        (None, None, None)
    };
    let width = c.selection_width();
    let k = if c.use_fan { c.frequencies } else { 0 };
    let u = g.zeros(n * t * width)?;
    g.launch(
        "selection_input",
        Launch::cover(n * t * width, BLOCK),
        &[
            xf.as_ref().unwrap_or(&day.x).arg(),
            amp.as_ref().map_or(super::Arg::Null, |a| a.arg()),
            day.mask.arg(),
            u.arg(),
            int(n),
            int(t),
            int(f),
            int(k),
            int(c.masks),
        ],
    )?;

    // 2. Variable selection per step.
    let (v, vsn) = vsn_forward(
        g,
        &net.vsn,
        at(&r.vsn),
        &u,
        n * t,
        drop.map(|d| &d.selection),
    )?;

    // Each stock's last step of `[n × t × h]` (network.rs `last_steps`).
    let last_steps = |a: &Tensor| -> Result<Tensor> {
        let last = g.zeros(n * h)?;
        copy_rows(
            g,
            false,
            View {
                t: a,
                at: (t - 1) * h,
            },
            t * h,
            (&last).into(),
            h,
            n,
            h,
        )?;
        Ok(last)
    };

    // 3. LSTM, causal attention, the post GRN at the last step.
    let (hvec, temporal) = if c.use_temporal {
        let (hs, lstm) = lstm_forward(g, &net.lstm, at(&r.lstm), &v, n, t)?;
        let (a, attn) = attention_forward(g, &net.attn, at(&r.attn), &hs, n, t)?;
        let last = last_steps(&a)?;
        let (hv, post) = grn_forward(g, &net.post, at(&r.post), &last, n, drop.map(|d| &d.post))?;
        (
            hv,
            Some(Temporal {
                lstm,
                hs,
                attn,
                last,
                post,
            }),
        )
    } else {
        let last = last_steps(&v)?;
        (last, None)
    };

    // 4. Two GATv2 layers and z = h + σ(gate)·gat(h).
    let (z, graph) = if c.use_gat {
        let (g1, c1) = gat_forward(g, &net.gat1, at(&r.gat1), &hvec, &day.graph)?;
        let (g2, c2) = gat_forward(g, &net.gat2, at(&r.gat2), &g1, &day.graph)?;
        let z = fusion_forward(g, (&hvec).into(), (&g2).into(), at(&r.gate), n * h)?;
        (z, Some(Graph { c1, g1, c2, g2 }))
    } else {
        let z = g.zeros(n * h)?;
        copy_rows(g, false, (&hvec).into(), h, (&z).into(), h, n, h)?;
        (z, None)
    };

    // 5. Heads and the linear paths.
    let (q, heads) = heads_forward(
        g,
        &net.heads,
        at(&r.heads),
        (&z).into(),
        n,
        drop.map(|d| (&d.heads).into()),
    )?;
    let graph_path = c.use_gat && c.use_graph_skip;
    let sw = c.skip_width();
    let (mut skip, mut neighbours) = (None, None);
    if c.use_skip || graph_path {
        let x = last_day_inputs(g, (&day.x).into(), (&day.mask).into(), n, t, f, c.masks)?;
        if c.use_skip {
            linear_path_forward(
                g,
                &q,
                (&x).into(),
                at(&r.skip),
                n,
                c.horizons,
                sw,
                c.linear_scale,
            )?;
        }
        if graph_path {
            let m = neighbour_inputs(g, &day.graph, (&x).into(), sw)?;
            let gw = day.graph.edge_dim * sw;
            linear_path_forward(
                g,
                &q,
                (&m).into(),
                at(&r.graph_skip),
                n,
                c.horizons,
                gw,
                c.linear_scale,
            )?;
            neighbours = Some(m);
        }
        skip = c.use_skip.then_some(x);
    }
    Ok((
        q,
        DeviceNetCache {
            fan,
            u,
            v,
            vsn,
            hvec,
            temporal,
            graph,
            z,
            heads,
            skip,
            neighbours,
        },
    ))
}

/// Backward pass: adds every parameter's gradient into `grads` (f32, the layout of the
/// parameters), as `Network::backward`, given `dq` (f32).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    g: &Gpu,
    net: &Network,
    p: &Tensor,
    cache: &DeviceNetCache,
    day: &DeviceDay,
    drop: Option<&DeviceDropout>,
    dq: &Tensor,
    grads: &Tensor,
) -> Result<()> {
    let c = &net.cfg;
    let r = &net.ranges;
    let at = |range: &std::ops::Range<usize>| View {
        t: p,
        at: range.start,
    };
    let gat = |range: &std::ops::Range<usize>| View {
        t: grads,
        at: range.start,
    };
    let (n, t, f, h) = (day.n, c.t, c.features, c.hidden);
    let sw = c.skip_width();
    if let Some(x) = &cache.skip {
        linear_path_backward(
            g,
            dq,
            x.into(),
            n,
            c.horizons,
            sw,
            c.linear_scale,
            gat(&r.skip),
        )?;
    }
    if let Some(m) = &cache.neighbours {
        let gw = day.graph.edge_dim * sw;
        linear_path_backward(
            g,
            dq,
            m.into(),
            n,
            c.horizons,
            gw,
            c.linear_scale,
            gat(&r.graph_skip),
        )?;
    }
    let dz = heads_backward(
        g,
        &net.heads,
        at(&r.heads),
        &cache.heads,
        (&cache.z).into(),
        dq,
        gat(&r.heads),
        drop.map(|d| (&d.heads).into()),
    )?;
    // dh = dz (the fusion's identity path) + the graph block's gradient.
    if let Some(gr) = &cache.graph {
        let dg2 = fusion_backward(g, &dz, (&gr.g2).into(), at(&r.gate), gat(&r.gate), n * h)?;
        let dg1 = gat_backward(
            g,
            &net.gat2,
            at(&r.gat2),
            &gr.g1,
            &gr.c2,
            &day.graph,
            &dg2,
            gat(&r.gat2),
        )?;
        let dhv = gat_backward(
            g,
            &net.gat1,
            at(&r.gat1),
            &cache.hvec,
            &gr.c1,
            &day.graph,
            &dg1,
            gat(&r.gat1),
        )?;
        g.launch_f32(
            "accumulate",
            Launch::cover(n * h, BLOCK),
            &[dz.arg(), dhv.arg(), int(n * h)],
        )?;
    }
    let dh = dz;
    // Back to every step: zero except the last.
    let scatter = |d: &Tensor| -> Result<Tensor> {
        let out = g.zeros_f32(n * t * h)?;
        copy_rows(
            g,
            true,
            d.into(),
            h,
            View {
                t: &out,
                at: (t - 1) * h,
            },
            t * h,
            n,
            h,
        )?;
        Ok(out)
    };
    let dv = if let Some(tm) = &cache.temporal {
        let dlast = grn_backward(
            g,
            &net.post,
            at(&r.post),
            &tm.last,
            &tm.post,
            drop.map(|d| &d.post),
            &dh,
            gat(&r.post),
        )?;
        let da = scatter(&dlast)?;
        let dhs = attention_backward(
            g,
            &net.attn,
            at(&r.attn),
            &tm.hs,
            &tm.attn,
            &da,
            gat(&r.attn),
        )?;
        lstm_backward(
            g,
            &net.lstm,
            at(&r.lstm),
            &cache.v,
            &tm.lstm,
            &dhs,
            gat(&r.lstm),
        )?
    } else {
        scatter(&dh)?
    };
    let du = vsn_backward(
        g,
        &net.vsn,
        at(&r.vsn),
        &cache.u,
        &cache.vsn,
        drop.map(|d| &d.selection),
        &dv,
        gat(&r.vsn),
    )?;
    if let Some(fc) = &cache.fan {
        let k = c.frequencies;
        let (dxf, damp) = (g.zeros_f32(n * t * f)?, g.zeros_f32(n * f * k)?);
        g.launch_f32(
            "selection_input_backward",
            Launch::cover(n * t * f + n * f * k, BLOCK),
            &[
                du.arg(),
                dxf.arg(),
                damp.arg(),
                int(n),
                int(t),
                int(f),
                int(k),
                int(c.masks),
            ],
        )?;
        fan_backward(g, &net.fan, at(&r.fan), fc, &dxf, &damp, gat(&r.fan))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::check::{assert_matches, both};
    use super::super::loss::loss_and_grad as gpu_loss;
    use super::super::optim::AdamW as GpuAdamW;
    use super::*;
    use crate::jp_equity::model::gradcheck::rand_f32;
    use crate::jp_equity::model::graph::{GraphInputs, build};
    use crate::jp_equity::model::loss::{LossConfig, loss_and_grad};
    use crate::jp_equity::model::network::ModelConfig;
    use crate::jp_equity::model::optim::{AdamW, AdamWConfig};

    /// A day of 30 stocks (T = 20, H = 16, 2 heads) with the rule's graph: same-day
    /// correlation and sector edges, lead-lag partners, and stock 29 isolated.
    fn day(c: &ModelConfig) -> (DayInput<f32>, Vec<f32>, Vec<bool>) {
        let n = 30;
        let x = rand_f32(n * c.t * c.features, 131, 1.0);
        let mask: Vec<f32> = rand_f32(n * c.t * c.masks, 132, 1.0)
            .iter()
            .map(|v| if *v > -0.6 { 1.0 } else { 0.0 })
            .collect();
        let l = c.graph().history_days();
        let common = rand_f32(l, 133, 1.0);
        let mut history: Vec<f64> = rand_f32(n * l, 134, 1.0)
            .iter()
            .map(|v| *v as f64)
            .collect();
        for i in 0..n {
            for d in 0..l {
                if i < 12 {
                    history[i * l + d] += common[d] as f64;
                }
                if i == n - 1 {
                    history[i * l + d] = 0.0;
                }
            }
        }
        let window: Vec<f64> = (0..n)
            .flat_map(|i| history[i * l + l - c.t..(i + 1) * l].to_vec())
            .collect();
        let sector: Vec<u32> = (0..n as u32)
            .map(|i| if i == n as u32 - 1 { 99 } else { i % 4 })
            .collect();
        let graph = build(
            &GraphInputs {
                window: &window,
                history: &history,
                sector: &sector,
                true_leaders: None,
            },
            &c.graph(),
        );
        assert_eq!(
            graph.in_degree(n - 1),
            1,
            "stock 29 must be isolated (its self-loop only)"
        );
        let y = rand_f32(n * c.horizons, 135, 1.0);
        let mut valid = vec![true; n * c.horizons];
        valid[7] = false;
        (DayInput { n, x, mask, graph }, y, valid)
    }

    #[test]
    fn one_training_step_of_the_whole_network_matches_the_cpu_reference() {
        let mut c = ModelConfig::new(20, 5, 2, 4);
        c.hidden = 16;
        c.heads = 2;
        c.graph_lag_k = 2;
        c.graph_lag_lookback = 60;
        c.dropout = 0.1;
        let net = Network::new(c.clone()).expect("config");
        let (d, y, valid) = day(&c);
        let p0: Vec<f32> = net.init(7);
        let drop = net.dropout::<f32>(d.n, 3, 1).expect("dropout is on");
        let lc = LossConfig::default();
        let oc = AdamWConfig {
            lr: 1e-3,
            warmup_steps: 0,
            total_steps: 10,
            ..AdamWConfig::default()
        };
        let decay = net.decay_mask();
        both(|g| {
            // The CPU reference's step, on the inputs as the device stores them (FAN's
            // top-k selection is a discontinuous choice: both make it on the same numbers).
            let stored =
                |v: &[f32]| -> Vec<f32> { v.iter().map(|x| g.precision.stored(*x)).collect() };
            let d_stored = DayInput {
                x: stored(&d.x),
                ..d.clone()
            };
            let (cpu_q, cache) = net.forward(&p0, &d_stored, Some(&drop));
            let (cpu_parts, cpu_dq) = loss_and_grad(&lc, &cpu_q, &y, &valid, d.n, c.horizons);
            let mut cpu_g = vec![0f32; p0.len()];
            net.backward(&p0, &cache, &d_stored, &cpu_dq, &mut cpu_g);
            // The optimiser as after a few steps (moments of the gradient's scale), so that
            // the update depends smoothly on the gradient; the first step of Adam is ±lr per
            // parameter whatever the gradient's size, so parameters whose gradient is
            // rounding noise (attention's bk) would flip at random.
            let rms = (cpu_g.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / cpu_g.len() as f64)
                .sqrt() as f32;
            let m0: Vec<f32> = rand_f32(p0.len(), 136, 1.0)
                .iter()
                .map(|v| v * rms)
                .collect();
            let v0: Vec<f32> = rand_f32(p0.len(), 137, 1.0)
                .iter()
                .map(|v| (v * v + 0.5) * rms * rms)
                .collect();
            let mut cpu_p = p0.clone();
            let mut cpu_opt = AdamW {
                m: m0.clone(),
                v: v0.clone(),
                step: 5,
            };
            cpu_opt.step(&oc, &mut cpu_p, &mut cpu_g.clone(), Some(&decay));
            let run = || -> Result<_> {
                let dd = DeviceDay::upload(&g, &d)?;
                let ddrop = DeviceDropout::upload(&g, &drop)?;
                let mut opt = GpuAdamW::new(&g, &p0)?;
                opt.m = g.upload_f32(&m0)?;
                opt.v = g.upload_f32(&v0)?;
                opt.step = 5;
                let (q, cache) = forward(&g, &net, &opt.copy, &dd, Some(&ddrop))?;
                let valid_u8: Vec<u8> = valid.iter().map(|v| *v as u8).collect();
                let (parts, dq) = gpu_loss(
                    &g,
                    &lc,
                    &q,
                    &g.upload_f32(&y)?,
                    &lakebuild_kernels::Tensor::from_u8(g.dev, &valid_u8)?,
                    d.n,
                    c.horizons,
                )?;
                let grads = g.zeros_f32(p0.len())?;
                backward(&g, &net, &opt.copy, &cache, &dd, Some(&ddrop), &dq, &grads)?;
                let gr = g.download(&grads)?;
                let decay_u8: Vec<u8> = decay.iter().map(|v| *v as u8).collect();
                let tdecay = lakebuild_kernels::Tensor::from_u8(g.dev, &decay_u8)?;
                opt.step(&g, &oc, &grads, Some(&tdecay))?;
                Ok((g.download(&q)?, parts, gr, g.download(&opt.params)?))
            };
            let (q, parts, grads, p1) = run().expect("shim");
            let pr = g.precision;
            assert_matches("network forward q", pr, &q, &cpu_q);
            let tol = if pr == lakebuild_kernels::Precision::F32 {
                1e-5
            } else {
                1e-2
            };
            let rel = (parts.total - cpu_parts.total).abs() / cpu_parts.total.abs();
            assert!(
                rel < tol,
                "loss ({pr:?}): {} vs {} (relative {rel:.2e})",
                parts.total,
                cpu_parts.total
            );
            for (name, range) in net.ranges.named() {
                if range.is_empty() {
                    continue;
                }
                assert_matches(
                    &format!("network backward ∂{name}"),
                    pr,
                    &grads[range.clone()],
                    &cpu_g[range],
                );
            }
            // The update: the change of every parameter, as on the CPU.
            let step: Vec<f32> = p1.iter().zip(&p0).map(|(a, b)| a - b).collect();
            let cpu_step: Vec<f32> = cpu_p.iter().zip(&p0).map(|(a, b)| a - b).collect();
            assert_matches(
                "AdamW step after the network's backward",
                pr,
                &step,
                &cpu_step,
            );
        });
    }
}
