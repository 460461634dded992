//! The whole ATFT-GAT-FAN network for one day's batch: the blocks of MODEL.md wired in
//! order, forward and backward, over one flat parameter buffer.
//!
//! Parameter layout (ranges in this order, see [`Network::ranges`]): FAN, variable
//! selection, LSTM, attention, post-attention GRN, GATv2 layer 1 (4 heads, concatenated),
//! GATv2 layer 2 (2 heads, averaged), the fusion gate (one scalar), the quantile heads,
//! the linear skip path (`[horizons × (features + masks)]`, only with `use_skip`), the
//! linear graph path (`[horizons × edge_dim × (features + masks)]`, only with
//! `use_graph_skip`; models stored before these two have neither). Other ablated blocks
//! keep their (unused) ranges, so those variants have the same layout.

use super::attention::{AttnCache, AttnShape, attention_backward, attention_forward};
use super::fan::{FanCache, FanShape, fan_backward, fan_forward};
use super::gat::{GatCache, GatShape, gat_backward, gat_forward};
use super::graph::{Graph, GraphConfig};
use super::grn::{
    GrnCache, GrnShape, VsnCache, VsnShape, grn_backward, grn_forward, vsn_backward, vsn_forward,
};
use super::heads::{HeadsCache, HeadsShape, heads_backward, heads_forward};
use super::layers::sigmoid;
use super::lstm::{LstmCache, LstmShape, lstm_backward, lstm_forward};
use super::real::Real;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// Everything that fixes the network's shape and behaviour (stored with the model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Steps of history per sample (T).
    pub t: usize,
    /// Value features (the `*_cs_z` columns), in the feature list's order.
    pub features: usize,
    /// Mask channels (one 0/1 validity flag per feature family).
    pub masks: usize,
    /// Hidden width (H).
    pub hidden: usize,
    /// Attention heads.
    pub heads: usize,
    /// FAN frequencies removed per series (K).
    pub frequencies: usize,
    /// Label horizons predicted.
    pub horizons: usize,
    /// Dropout rate in training.
    pub dropout: f64,
    /// σ(gate) at initialisation (0.4).
    pub gate_init: f64,
    pub graph_k: usize,
    pub graph_min_abs_rho: f64,
    pub graph_sector_cap: usize,
    /// Lead-lag partners per stock (0: none, the graph of models stored before them).
    #[serde(default)]
    pub graph_lag_k: usize,
    /// Days of lagged return pairs the lead-lag correlation is measured over.
    #[serde(default)]
    pub graph_lag_lookback: usize,
    /// Ablation switches (all on by default).
    pub use_fan: bool,
    pub use_temporal: bool,
    pub use_gat: bool,
    /// The linear skip path from the last day's raw inputs to every quantile (MODEL.md
    /// block 5); off for models stored before it.
    #[serde(default)]
    pub use_skip: bool,
    /// The linear graph path (part of the graph block, off with `use_gat`): every quantile
    /// of horizon h moves by Σ over in-edges j → i (j ≠ i) of `e_ij · U_h · x_last_j`;
    /// off for models stored before it.
    #[serde(default)]
    pub use_graph_skip: bool,
    /// A fixed scale κ on the two linear paths' weights (the output moves by κ·w·x): under
    /// Adam it makes them learn κ× faster than the rest, as a learning-rate multiplier for
    /// a linear head does; 1 for models stored before it.
    #[serde(default = "unit_scale")]
    pub linear_scale: f64,
}

fn unit_scale() -> f64 {
    1.0
}

impl ModelConfig {
    /// MODEL.md's defaults for the given input widths.
    pub fn new(t: usize, features: usize, masks: usize, horizons: usize) -> Self {
        ModelConfig {
            t,
            features,
            masks,
            hidden: 64,
            heads: 4,
            frequencies: 2,
            horizons,
            dropout: 0.1,
            gate_init: 0.4,
            graph_k: 15,
            graph_min_abs_rho: 0.3,
            graph_sector_cap: 10,
            graph_lag_k: GraphConfig::default().lag_k,
            graph_lag_lookback: GraphConfig::default().lag_lookback,
            use_fan: true,
            use_temporal: true,
            use_gat: true,
            use_skip: true,
            use_graph_skip: true,
            linear_scale: 1.0,
        }
    }

    pub fn graph(&self) -> GraphConfig {
        GraphConfig {
            k: self.graph_k,
            min_abs_rho: self.graph_min_abs_rho,
            sector_cap: self.graph_sector_cap,
            lag_k: self.graph_lag_k,
            lag_lookback: self.graph_lag_lookback,
        }
    }

    /// Inputs of the skip path: the last day's features and masks.
    pub fn skip_width(&self) -> usize {
        self.features + self.masks
    }

    /// Channels into variable selection: FAN output, its amplitudes, the masks.
    pub fn selection_width(&self) -> usize {
        let amps = if self.use_fan {
            self.features * self.frequencies
        } else {
            0
        };
        self.features + amps + self.masks
    }

    /// A clear message for a config the network cannot be built from.
    pub fn validate(&self) -> Result<(), String> {
        let h = self.hidden;
        if self.t < 2 || self.features == 0 || self.horizons == 0 {
            return Err(format!(
                "t = {}, features = {}, horizons = {} must be positive (t ≥ 2)",
                self.t, self.features, self.horizons
            ));
        }
        if h < 4 || !h.is_multiple_of(4) || !h.is_multiple_of(self.heads.max(1)) {
            return Err(format!(
                "hidden = {h} must be a positive multiple of 4 and of heads = {}",
                self.heads
            ));
        }
        if self.frequencies > self.t / 2 {
            return Err(format!(
                "frequencies = {} exceeds the t/2 = {} non-DC bins",
                self.frequencies,
                self.t / 2
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout = {} must be in [0, 1)", self.dropout));
        }
        if !(self.gate_init > 0.0 && self.gate_init < 1.0) {
            return Err(format!("gate_init = {} must be in (0, 1)", self.gate_init));
        }
        if !(self.linear_scale.is_finite() && self.linear_scale > 0.0) {
            return Err(format!(
                "linear_scale = {} must be a positive number",
                self.linear_scale
            ));
        }
        Ok(())
    }
}

/// One day's inputs to the network.
#[derive(Debug, Clone)]
pub struct DayInput<T> {
    pub n: usize,
    /// `[n × t × features]`, nulls already 0.
    pub x: Vec<T>,
    /// `[n × t × masks]`, 0/1.
    pub mask: Vec<T>,
    /// The day's stock graph (built from the inputs' own return series).
    pub graph: Graph,
}

/// Dropout masks for one training step (entries 0 or 1/(1−p)).
#[derive(Debug, Clone)]
pub struct Dropout<T> {
    /// Variable selection's GRN hidden layer, `[n·t × H]`.
    pub selection: Vec<T>,
    /// The post-attention GRN's hidden layer, `[n × H]`.
    pub post: Vec<T>,
    /// The heads' hidden layers, `[n × horizons × H/2]`.
    pub heads: Vec<T>,
}

/// The parameter ranges of each block in the flat buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranges {
    pub fan: Range<usize>,
    pub vsn: Range<usize>,
    pub lstm: Range<usize>,
    pub attn: Range<usize>,
    pub post: Range<usize>,
    pub gat1: Range<usize>,
    pub gat2: Range<usize>,
    pub gate: Range<usize>,
    pub heads: Range<usize>,
    pub skip: Range<usize>,
    pub graph_skip: Range<usize>,
}

impl Ranges {
    /// Each block's range with its stored tensor name, in layout order.
    pub fn named(&self) -> [(&'static str, Range<usize>); 11] {
        [
            ("fan", self.fan.clone()),
            ("vsn", self.vsn.clone()),
            ("lstm", self.lstm.clone()),
            ("attention", self.attn.clone()),
            ("post_grn", self.post.clone()),
            ("gat1", self.gat1.clone()),
            ("gat2", self.gat2.clone()),
            ("gate", self.gate.clone()),
            ("heads", self.heads.clone()),
            ("skip", self.skip.clone()),
            ("graph_skip", self.graph_skip.clone()),
        ]
    }
}

/// The network: its config, each block's shape and parameter range.
#[derive(Debug, Clone)]
pub struct Network {
    pub cfg: ModelConfig,
    pub(crate) fan: FanShape,
    pub(crate) vsn: VsnShape,
    pub(crate) lstm: LstmShape,
    pub(crate) attn: AttnShape,
    pub(crate) post: GrnShape,
    pub(crate) gat1: GatShape,
    pub(crate) gat2: GatShape,
    pub(crate) heads: HeadsShape,
    pub ranges: Ranges,
}

/// Everything the backward pass needs from one forward pass.
pub struct NetCache<T> {
    n: usize,
    fan: Option<FanCache<T>>,
    vsn: VsnCache<T>,
    lstm: Option<LstmCache<T>>,
    attn: Option<AttnCache<T>>,
    post: Option<GrnCache<T>>,
    gat: Option<(GatCache<T>, GatCache<T>, Vec<T>)>,
    heads: HeadsCache<T>,
    /// The skip path's inputs `[n × skip_width]` (with `use_skip`).
    skip: Option<Vec<T>>,
    /// The graph path's inputs `[n × edge_dim × skip_width]` (with `use_graph_skip`).
    neighbours: Option<Vec<T>>,
    /// Selection weights per row, `[n·t × selection_width]`.
    pub selection_weights: Vec<T>,
}

impl Network {
    pub fn new(cfg: ModelConfig) -> Result<Self, String> {
        cfg.validate()?;
        let h = cfg.hidden;
        let fan = FanShape {
            t: cfg.t,
            f: cfg.features,
            k: cfg.frequencies,
        };
        let vsn = VsnShape {
            f: cfg.selection_width(),
            h,
        };
        let lstm = LstmShape { din: h, h };
        let attn = AttnShape {
            h,
            heads: cfg.heads,
        };
        let post = GrnShape {
            din: h,
            dh: h,
            dout: h,
        };
        let gat1 = GatShape {
            h,
            heads: 4,
            concat: true,
            edge_dim: cfg.graph().edge_dim(),
        };
        let gat2 = GatShape {
            h,
            heads: 2,
            concat: false,
            edge_dim: cfg.graph().edge_dim(),
        };
        let heads = HeadsShape {
            h,
            horizons: cfg.horizons,
        };
        let mut at = 0;
        let mut next = |len: usize| {
            let r = at..at + len;
            at += len;
            r
        };
        let ranges = Ranges {
            fan: next(fan.n_params()),
            vsn: next(vsn.n_params()),
            lstm: next(lstm.n_params()),
            attn: next(attn.n_params()),
            post: next(post.n_params()),
            gat1: next(gat1.n_params()),
            gat2: next(gat2.n_params()),
            gate: next(1),
            heads: next(heads.n_params()),
            skip: next(if cfg.use_skip {
                cfg.horizons * cfg.skip_width()
            } else {
                0
            }),
            graph_skip: next(if cfg.use_graph_skip {
                cfg.horizons * cfg.graph().edge_dim() * cfg.skip_width()
            } else {
                0
            }),
        };
        Ok(Network {
            cfg,
            fan,
            vsn,
            lstm,
            attn,
            post,
            gat1,
            gat2,
            heads,
            ranges,
        })
    }

    pub fn n_params(&self) -> usize {
        self.ranges.graph_skip.end
    }

    /// Whether the skip path and the linear graph path are active (in the forward pass).
    pub fn linear_paths(&self) -> (bool, bool) {
        let c = &self.cfg;
        (c.use_skip, c.use_gat && c.use_graph_skip)
    }

    /// The parameter ranges of the active linear paths.
    pub fn linear_ranges(&self) -> Vec<Range<usize>> {
        let (skip, graph) = self.linear_paths();
        let r = &self.ranges;
        [(skip, r.skip.clone()), (graph, r.graph_skip.clone())]
            .into_iter()
            .filter_map(|(on, r)| on.then_some(r))
            .collect()
    }

    /// The active linear paths' inputs of one day as one design `[n × width]`: each row
    /// the skip path's inputs, then the graph path's (`edge_dim × skip_width`), so that
    /// the paths' output for horizon h is `κ · row · w_h` with `w_h` the concatenation of
    /// their weights ([`Network::set_linear_weights`]). For fitting them in closed form
    /// ([`super::ridge`]); `None` without an active linear path.
    pub fn linear_inputs(&self, day: &DayInput<f32>) -> Option<(Vec<f64>, usize)> {
        let c = &self.cfg;
        let (skip, graph) = self.linear_paths();
        if !skip && !graph {
            return None;
        }
        let sw = c.skip_width();
        let x = last_day_inputs(day, c);
        let m = graph.then(|| neighbour_inputs(&day.graph, &x, sw));
        let gw = if graph { day.graph.edge_dim * sw } else { 0 };
        let width = if skip { sw } else { 0 } + gw;
        let mut out = Vec::with_capacity(day.n * width);
        for i in 0..day.n {
            if skip {
                out.extend(x[i * sw..(i + 1) * sw].iter().map(|v| *v as f64));
            }
            if let Some(m) = &m {
                out.extend(m[i * gw..(i + 1) * gw].iter().map(|v| *v as f64));
            }
        }
        Some((out, width))
    }

    /// Sets horizon `h`'s weights of the active linear paths so that they add `row · w`
    /// (`w` in the columns of [`Network::linear_inputs`]; the κ scale is divided out).
    pub fn set_linear_weights(&self, p: &mut [f32], h: usize, w: &[f64]) {
        let kappa = self.cfg.linear_scale;
        let mut at = 0;
        for r in self.linear_ranges() {
            let width = r.len() / self.cfg.horizons.max(1);
            let dst = &mut p[r.start + h * width..r.start + (h + 1) * width];
            for (o, v) in dst.iter_mut().zip(&w[at..at + width]) {
                *o = (*v / kappa) as f32;
            }
            at += width;
        }
    }

    /// Zeroes every head's output weights `w2`: the heads then output their biases `b2`,
    /// so the network's prediction is the linear paths plus those biases, and the rest of
    /// the network (still initialised) starts to matter as `w2` learns. The start of a fit
    /// with the horizon fallback ([`super::train::TrainConfig::horizon_fallback`]).
    pub fn zero_head_outputs(&self, p: &mut [f32]) {
        let base = self.ranges.heads.start;
        for k in 0..self.cfg.horizons {
            let r = self.heads.w2_range(k);
            p[base + r.start..base + r.end].fill(0.0);
        }
    }

    /// The parameters that only horizon `h`'s prediction depends on: its head and its
    /// weights in the active linear paths. Two parameter vectors that share everything
    /// else and whose head `h` has `w2 = 0` in both predict the same at `h` when these
    /// ranges are copied from one to the other.
    pub fn horizon_ranges(&self, h: usize) -> Vec<Range<usize>> {
        let base = self.ranges.heads.start;
        let head = self.heads.head_range(h);
        let mut out = Vec::with_capacity(3);
        out.push(base + head.start..base + head.end);
        for r in self.linear_ranges() {
            let width = r.len() / self.cfg.horizons.max(1);
            out.push(r.start + h * width..r.start + (h + 1) * width);
        }
        out
    }

    /// The parameters horizon `h`'s prediction is linear in, given everything else: its
    /// head's output layer (`w2`, `b2`) and its weights in the active linear paths (a
    /// subset of [`Network::horizon_ranges`]).
    pub fn blend_ranges(&self, h: usize) -> Vec<Range<usize>> {
        let base = self.ranges.heads.start;
        let out = self.heads.output_range(h);
        std::iter::once(base + out.start..base + out.end)
            .chain(self.horizon_ranges(h).into_iter().skip(1))
            .collect()
    }

    /// Initial parameters, deterministic from the seed.
    pub fn init<T: Real>(&self, seed: u64) -> Vec<T> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut p = vec![T::zero(); self.n_params()];
        let r = &self.ranges;
        self.fan.init(&mut p[r.fan.clone()], &mut rng);
        self.vsn.init(&mut p[r.vsn.clone()], &mut rng);
        self.lstm.init(&mut p[r.lstm.clone()], &mut rng);
        self.attn.init(&mut p[r.attn.clone()], &mut rng);
        self.post.init(&mut p[r.post.clone()], &mut rng);
        self.gat1.init(&mut p[r.gat1.clone()], &mut rng);
        self.gat2.init(&mut p[r.gat2.clone()], &mut rng);
        let g = self.cfg.gate_init;
        p[r.gate.start] = T::c((g / (1.0 - g)).ln());
        self.heads.init(&mut p[r.heads.clone()], &mut rng);
        // The skip path starts at 0: the initial network is the one without it.
        p
    }

    /// Which parameters take weight decay: matrices, not biases, LayerNorm, FAN's
    /// scale/shift or the gate (the usual AdamW practice).
    pub fn decay_mask(&self) -> Vec<bool> {
        // Each block's pieces in its documented order: (length, is a weight matrix).
        let grn = |g: &GrnShape| {
            vec![
                (g.din * g.dh, true),
                (g.dh, false),
                (g.dh * 2 * g.dout, true),
                (2 * g.dout, false),
                (g.din * g.dout, true),
                (g.dout, false),
                (g.dout, false),
            ]
        };
        let (h, f) = (self.cfg.hidden, self.vsn.f);
        let mut vsn = grn(&self.vsn.grn());
        vsn.extend([(f * h, true), (h, false), (h, false), (h, false)]);
        let lstm = vec![
            (self.lstm.din * 4 * h, true),
            (h * 4 * h, true),
            (4 * h, false),
        ];
        let mut attn = Vec::new();
        for _ in 0..4 {
            attn.extend([(h * h, true), (h, false)]);
        }
        attn.extend([(h, false), (h, false)]);
        let gat = |g: &GatShape| {
            let hw = g.hw();
            vec![
                (g.h * hw, true),
                (hw, false),
                (g.h * hw, true),
                (hw, false),
                (g.edge_dim * hw, true),
                (g.heads * g.hd(), true),
                (g.h, false),
                (g.h, false),
                (g.h, false),
            ]
        };
        let half = self.heads.hidden();
        let mut heads = Vec::new();
        for _ in 0..self.cfg.horizons {
            heads.extend([
                (h * half, true),
                (half, false),
                (half * 5, true),
                (5, false),
            ]);
        }
        let r = &self.ranges;
        let mut mask = vec![false; self.n_params()];
        for (range, pieces) in [
            (&r.vsn, vsn),
            (&r.lstm, lstm),
            (&r.attn, attn),
            (&r.post, grn(&self.post)),
            (&r.gat1, gat(&self.gat1)),
            (&r.gat2, gat(&self.gat2)),
            (&r.heads, heads),
        ] {
            let mut at = range.start;
            for (len, matrix) in pieces {
                mask[at..at + len].fill(matrix);
                at += len;
            }
            assert_eq!(
                at, range.end,
                "decay mask: a block's pieces do not match its layout"
            );
        }
        // The skip path's weights decay (ridge-like shrinkage); FAN's scale/shift and the
        // fusion gate stay undecayed (mask already false).
        mask[r.skip.clone()].fill(true);
        mask[r.graph_skip.clone()].fill(true);
        mask
    }

    /// Fresh dropout masks for one step, deterministic from `(seed, step)`.
    pub fn dropout<T: Real>(&self, n: usize, seed: u64, step: u64) -> Option<Dropout<T>> {
        let p = self.cfg.dropout;
        if p <= 0.0 {
            return None;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_d20f);
        rng.set_stream(step);
        let keep = T::c(1.0 / (1.0 - p));
        let mut draw = |len: usize| -> Vec<T> {
            (0..len)
                .map(|_| {
                    if rng.random::<f64>() < p {
                        T::zero()
                    } else {
                        keep
                    }
                })
                .collect()
        };
        let h = self.cfg.hidden;
        Some(Dropout {
            selection: draw(n * self.cfg.t * h),
            post: draw(n * h),
            heads: draw(n * self.cfg.horizons * (h / 2)),
        })
    }

    /// Forward pass of one day: quantiles `[n × horizons × 5]` and the cache.
    pub fn forward<T: Real>(
        &self,
        p: &[T],
        day: &DayInput<T>,
        drop: Option<&Dropout<T>>,
    ) -> (Vec<T>, NetCache<T>) {
        let c = &self.cfg;
        let r = &self.ranges;
        let (n, t, f, h) = (day.n, c.t, c.features, c.hidden);
        assert_eq!(day.x.len(), n * t * f, "day input x is not n×t×features");
        assert_eq!(day.mask.len(), n * t * c.masks, "day mask is not n×t×masks");
        assert_eq!(day.graph.n, n, "day graph does not have n nodes");

        // 1. FAN, then the selection input [n·t × width]: FAN output, amplitudes, masks.
        let (xf, amp, fan) = if c.use_fan {
            let (y, amp, cache) = fan_forward(&self.fan, &p[r.fan.clone()], &day.x, n);
            (y, amp, Some(cache))
        } else {
            (day.x.clone(), Vec::new(), None)
        };
        let width = c.selection_width();
        let k = if c.use_fan { c.frequencies } else { 0 };
        let mut u = vec![T::zero(); n * t * width];
        for s in 0..n {
            for tau in 0..t {
                let row = &mut u[(s * t + tau) * width..(s * t + tau + 1) * width];
                row[..f].copy_from_slice(&xf[(s * t + tau) * f..(s * t + tau + 1) * f]);
                row[f..f + f * k].copy_from_slice(&amp[s * f * k..(s + 1) * f * k]);
                row[f + f * k..].copy_from_slice(
                    &day.mask[(s * t + tau) * c.masks..(s * t + tau + 1) * c.masks],
                );
            }
        }

        // 2. Variable selection per step.
        let (v, vsn) = vsn_forward(
            &self.vsn,
            &p[r.vsn.clone()],
            &u,
            n * t,
            drop.map(|d| d.selection.as_slice()),
        );
        let selection_weights = vsn.weights.clone();

        // 3. Temporal fusion: LSTM, causal attention, GRN at the last step.
        let (hvec, lstm, attn, post) = if c.use_temporal {
            let (hs, lstm) = lstm_forward(&self.lstm, &p[r.lstm.clone()], &v, n, t);
            let (a, attn) = attention_forward(&self.attn, &p[r.attn.clone()], &hs, n, t);
            let last = last_steps(&a, n, t, h);
            let (hv, post) = grn_forward(
                &self.post,
                &p[r.post.clone()],
                &last,
                n,
                drop.map(|d| d.post.as_slice()),
            );
            (hv, Some(lstm), Some(attn), Some(post))
        } else {
            (last_steps(&v, n, t, h), None, None, None)
        };

        // 4. Two GATv2 layers and the gated fusion z = h + σ(g)·gat(h).
        let (z, gat) = if c.use_gat {
            let (g1, c1) = gat_forward(&self.gat1, &p[r.gat1.clone()], &hvec, &day.graph);
            let (g2, c2) = gat_forward(&self.gat2, &p[r.gat2.clone()], &g1, &day.graph);
            let gate = sigmoid(p[r.gate.start]);
            let z: Vec<T> = hvec.iter().zip(&g2).map(|(a, b)| *a + gate * *b).collect();
            (z, Some((c1, c2, g2)))
        } else {
            (hvec, None)
        };

        // 5. Quantile heads, plus the skip path: every quantile of horizon h moves by
        //    w_h · x_last (the last day's features and masks as given, not FAN's output).
        let (mut q, heads) = heads_forward(
            &self.heads,
            &p[r.heads.clone()],
            &z,
            n,
            drop.map(|d| d.heads.as_slice()),
        );
        let kappa = T::c(c.linear_scale);
        let graph_path = c.use_gat && c.use_graph_skip;
        let last = (c.use_skip || graph_path).then(|| last_day_inputs(day, c));
        let (mut skip, mut neighbours) = (None, None);
        if let Some(x) = last {
            if c.use_skip {
                linear_path_forward(&mut q, &x, &p[r.skip.clone()], c.horizons, kappa);
            }
            if graph_path {
                let m = neighbour_inputs(&day.graph, &x, c.skip_width());
                linear_path_forward(&mut q, &m, &p[r.graph_skip.clone()], c.horizons, kappa);
                neighbours = Some(m);
            }
            skip = c.use_skip.then_some(x);
        }
        (
            q,
            NetCache {
                n,
                fan,
                vsn,
                lstm,
                attn,
                post,
                gat,
                heads,
                skip,
                neighbours,
                selection_weights,
            },
        )
    }

    /// Backward pass: adds every parameter's gradient into `g` (the layout of `p`).
    pub fn backward<T: Real>(
        &self,
        p: &[T],
        cache: &NetCache<T>,
        day: &DayInput<T>,
        dq: &[T],
        g: &mut [T],
    ) {
        let c = &self.cfg;
        let r = &self.ranges;
        let (n, t, f, h) = (cache.n, c.t, c.features, c.hidden);
        // The linear paths: dw_h = κ·Σ_i (Σ_k dq[i, h, k]) · x_i.
        let kappa = T::c(c.linear_scale);
        if let Some(x) = &cache.skip {
            linear_path_backward(dq, x, c.horizons, kappa, &mut g[r.skip.clone()]);
        }
        if let Some(m) = &cache.neighbours {
            linear_path_backward(dq, m, c.horizons, kappa, &mut g[r.graph_skip.clone()]);
        }
        let dz = heads_backward(
            &self.heads,
            &p[r.heads.clone()],
            &cache.heads,
            dq,
            &mut g[r.heads.clone()],
        );

        let dh = match &cache.gat {
            Some((c1, c2, g2)) => {
                let gl = p[r.gate.start];
                let gate = sigmoid(gl);
                let dgate: T = dz.iter().zip(g2).map(|(a, b)| *a * *b).sum();
                g[r.gate.start] += dgate * gate * (T::one() - gate);
                let dg2: Vec<T> = dz.iter().map(|v| *v * gate).collect();
                let dg1 = gat_backward(
                    &self.gat2,
                    &p[r.gat2.clone()],
                    c2,
                    &day.graph,
                    &dg2,
                    &mut g[r.gat2.clone()],
                );
                let dhv = gat_backward(
                    &self.gat1,
                    &p[r.gat1.clone()],
                    c1,
                    &day.graph,
                    &dg1,
                    &mut g[r.gat1.clone()],
                );
                dz.iter().zip(&dhv).map(|(a, b)| *a + *b).collect()
            }
            None => dz,
        };

        let dv = if let (Some(lc), Some(ac), Some(pc)) = (&cache.lstm, &cache.attn, &cache.post) {
            let dlast = grn_backward(
                &self.post,
                &p[r.post.clone()],
                pc,
                &dh,
                &mut g[r.post.clone()],
            );
            let da = scatter_last_steps(&dlast, n, t, h);
            let dhs = attention_backward(
                &self.attn,
                &p[r.attn.clone()],
                ac,
                &da,
                &mut g[r.attn.clone()],
            );
            lstm_backward(
                &self.lstm,
                &p[r.lstm.clone()],
                lc,
                &dhs,
                &mut g[r.lstm.clone()],
            )
        } else {
            scatter_last_steps(&dh, n, t, h)
        };

        let du = vsn_backward(
            &self.vsn,
            &p[r.vsn.clone()],
            &cache.vsn,
            &dv,
            &mut g[r.vsn.clone()],
        );
        if let Some(fc) = &cache.fan {
            let width = c.selection_width();
            let k = c.frequencies;
            let mut dxf = vec![T::zero(); n * t * f];
            let mut damp = vec![T::zero(); n * f * k];
            for s in 0..n {
                for tau in 0..t {
                    let row = &du[(s * t + tau) * width..(s * t + tau + 1) * width];
                    dxf[(s * t + tau) * f..(s * t + tau + 1) * f].copy_from_slice(&row[..f]);
                    for (d, v) in damp[s * f * k..(s + 1) * f * k]
                        .iter_mut()
                        .zip(&row[f..f + f * k])
                    {
                        *d += *v;
                    }
                }
            }
            fan_backward(
                &self.fan,
                &p[r.fan.clone()],
                fc,
                &dxf,
                &damp,
                &mut g[r.fan.clone()],
            );
        }
    }
}

/// The linear paths' inputs `[n × skip_width]`: each stock's last-day features, then its
/// last-day masks.
pub(crate) fn last_day_inputs<T: Real>(day: &DayInput<T>, c: &ModelConfig) -> Vec<T> {
    let mut x = Vec::with_capacity(day.n * c.skip_width());
    for i in 0..day.n {
        let last = i * c.t + c.t - 1;
        x.extend_from_slice(&day.x[last * c.features..(last + 1) * c.features]);
        x.extend_from_slice(&day.mask[last * c.masks..(last + 1) * c.masks]);
    }
    x
}

/// A linear path into the quantiles: for each row i of `x` (`[n × width]`) and horizon h,
/// every quantile of `q` (`[n × horizons × 5]`) moves by `κ·w_h·x_i`
/// (`w` is `[horizons × width]`).
pub(crate) fn linear_path_forward<T: Real>(
    q: &mut [T],
    x: &[T],
    w: &[T],
    horizons: usize,
    kappa: T,
) {
    let width = w.len() / horizons.max(1);
    if width == 0 {
        return;
    }
    for (i, xi) in x.chunks(width).enumerate() {
        for hz in 0..horizons {
            let shift: T = kappa
                * xi.iter()
                    .zip(&w[hz * width..(hz + 1) * width])
                    .map(|(a, b)| *a * *b)
                    .sum::<T>();
            for v in &mut q[(i * horizons + hz) * 5..(i * horizons + hz + 1) * 5] {
                *v += shift;
            }
        }
    }
}

/// The gradient of [`linear_path_forward`] in `w`, added into `g`; rows in order
/// (deterministic at any thread count).
pub(crate) fn linear_path_backward<T: Real>(
    dq: &[T],
    x: &[T],
    horizons: usize,
    kappa: T,
    g: &mut [T],
) {
    let width = g.len() / horizons.max(1);
    if width == 0 {
        return;
    }
    for (i, xi) in x.chunks(width).enumerate() {
        for hz in 0..horizons {
            let s: T = kappa
                * dq[(i * horizons + hz) * 5..(i * horizons + hz + 1) * 5]
                    .iter()
                    .copied()
                    .sum::<T>();
            for (gw, xv) in g[hz * width..(hz + 1) * width].iter_mut().zip(xi) {
                *gw += s * *xv;
            }
        }
    }
}

/// The graph path's inputs `M [n × edge_dim × skip_width]`:
/// `M[i, a, :] = Σ over in-edges e = j → i, j ≠ i, of e_a · x_last_j`, edges in CSR order
/// (each node sums its own in-edges: deterministic at any thread count).
/// `x` is [`last_day_inputs`], `[n × sw]`.
pub(crate) fn neighbour_inputs<T: Real>(g: &Graph, x: &[T], sw: usize) -> Vec<T> {
    let dim = g.edge_dim;
    let mut m = vec![T::zero(); g.n * dim * sw];
    for (i, mi) in m.chunks_mut(dim * sw).enumerate() {
        for e in g.offsets[i]..g.offsets[i + 1] {
            let j = g.src[e];
            if j == i {
                continue;
            }
            for a in 0..dim {
                let f = T::c(g.edge_feat[e * dim + a]);
                for (o, v) in mi[a * sw..(a + 1) * sw]
                    .iter_mut()
                    .zip(&x[j * sw..(j + 1) * sw])
                {
                    *o += f * *v;
                }
            }
        }
    }
    m
}

/// Rows of the last step: `[n × t × h]` → `[n × h]`.
fn last_steps<T: Real>(a: &[T], n: usize, t: usize, h: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(n * h);
    for s in 0..n {
        out.extend_from_slice(&a[(s * t + t - 1) * h..(s * t + t) * h]);
    }
    out
}

/// The gradient of [`last_steps`]: `[n × h]` → `[n × t × h]`, zero except the last step.
fn scatter_last_steps<T: Real>(d: &[T], n: usize, t: usize, h: usize) -> Vec<T> {
    let mut out = vec![T::zero(); n * t * h];
    for s in 0..n {
        out[(s * t + t - 1) * h..(s * t + t) * h].copy_from_slice(&d[s * h..(s + 1) * h]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::gradcheck::{assert_close_grads, numeric_grad, rand_vec};
    use super::super::graph::build_graph;
    use super::super::loss::{LossConfig, loss_and_grad};
    use super::*;

    fn tiny(use_fan: bool, use_temporal: bool, use_gat: bool) -> ModelConfig {
        let mut c = ModelConfig::new(6, 3, 2, 2);
        c.hidden = 8;
        c.heads = 2;
        c.graph_k = 2;
        c.graph_min_abs_rho = 0.3;
        c.graph_sector_cap = 1;
        c.graph_lag_k = 1;
        c.graph_lag_lookback = 12;
        c.use_fan = use_fan;
        c.use_temporal = use_temporal;
        c.use_gat = use_gat;
        c
    }

    /// Five stocks: 0–1 correlated, 2–3 one sector, 4 isolated (only its self-loop).
    fn day(c: &ModelConfig) -> (DayInput<f64>, Vec<f64>, Vec<bool>) {
        let n = 5;
        let x = rand_vec(n * c.t * c.features, 11, 1.5);
        let mask: Vec<f64> = rand_vec(n * c.t * c.masks, 12, 1.0)
            .iter()
            .map(|v| if *v > -0.6 { 1.0 } else { 0.0 })
            .collect();
        let base = rand_vec(c.t, 13, 1.0);
        let mut ret = rand_vec(n * c.t, 14, 1.0);
        for tau in 0..c.t {
            ret[tau] = base[tau];
            ret[c.t + tau] = base[tau] + 0.1 * ret[c.t + tau];
        }
        // Stock 4: a constant series (zero variance, no correlation edges), own sector.
        for tau in 0..c.t {
            ret[4 * c.t + tau] = 0.0;
        }
        let sector = vec![0, 1, 2, 2, 3];
        let same_day = build_graph(&ret, &sector, &c.graph().same_day_only());
        assert_eq!(same_day.in_degree(4), 1, "stock 4 must be isolated");
        // The lead-lag history (its last days are the window): each stock gets one
        // directed partner edge with a non-zero λ feature, except stock 4.
        let l = c.graph().history_days();
        let mut history = rand_vec(n * l, 16, 1.0);
        // Stock 4 stays isolated: a constant history has no lagged correlation.
        history[4 * l..5 * l].fill(0.0);
        let graph = super::super::graph::build(
            &super::super::graph::GraphInputs {
                window: &ret,
                history: &history,
                sector: &sector,
                true_leaders: None,
            },
            &c.graph(),
        );
        assert_eq!(graph.edge_dim, 4);
        assert!(
            graph
                .edge_feat
                .chunks(4)
                .any(|e| e[3] == 1.0 && e[2] != 0.0)
        );
        assert_eq!(graph.in_degree(4), 1, "stock 4 must be isolated");
        let y = rand_vec(n * c.horizons, 15, 1.0);
        let mut valid = vec![true; n * c.horizons];
        valid[3] = false;
        (DayInput { n, x, mask, graph }, y, valid)
    }

    fn check(c: ModelConfig) {
        let net = Network::new(c.clone()).expect("config");
        let (d, y, valid) = day(&c);
        let p: Vec<f64> = net.init(7).iter().map(|v: &f64| v + 0.0).collect();
        let drop = net.dropout::<f64>(d.n, 3, 1);
        let lc = LossConfig::default();
        let loss = |p: &[f64], x: &[f64]| -> f64 {
            let di = DayInput {
                x: x.to_vec(),
                ..d.clone()
            };
            let (q, _) = net.forward(p, &di, drop.as_ref());
            loss_and_grad(&lc, &q, &y, &valid, d.n, c.horizons).0.total
        };
        let (q, cache) = net.forward(&p, &d, drop.as_ref());
        let (_, dq) = loss_and_grad(&lc, &q, &y, &valid, d.n, c.horizons);
        let mut g = vec![0.0; p.len()];
        net.backward(&p, &cache, &d, &dq, &mut g);
        let numeric = numeric_grad(&p, |p| loss(p, &d.x));
        let r = &net.ranges;
        let mut blocks = vec![("vsn", r.vsn.clone()), ("heads", r.heads.clone())];
        if c.use_skip {
            blocks.push(("skip", r.skip.clone()));
        }
        if c.use_gat && c.use_graph_skip {
            blocks.push(("graph_skip", r.graph_skip.clone()));
        }
        if c.use_fan {
            blocks.push(("fan", r.fan.clone()));
        }
        if c.use_temporal {
            blocks.extend([
                ("lstm", r.lstm.clone()),
                ("attn", r.attn.clone()),
                ("post", r.post.clone()),
            ]);
        }
        if c.use_gat {
            blocks.extend([
                ("gat1", r.gat1.clone()),
                ("gat2", r.gat2.clone()),
                ("gate", r.gate.clone()),
            ]);
        }
        for (name, range) in blocks {
            assert_close_grads(name, &g[range.clone()], &numeric[range]);
        }
    }

    /// The ridge start's contract: weights `w` set through `set_linear_weights` move each
    /// quantile of horizon h by exactly `κ⁻¹·κ·row·w_h`, `row` the day's `linear_inputs`.
    #[test]
    fn set_linear_weights_adds_the_design_times_the_weights() {
        let mut c = tiny(true, true, true);
        c.linear_scale = 2.5;
        let net = Network::new(c.clone()).expect("config");
        let (d, _, _) = day(&c);
        let d32 = DayInput {
            n: d.n,
            x: d.x.iter().map(|v| *v as f32).collect(),
            mask: d.mask.iter().map(|v| *v as f32).collect(),
            graph: d.graph.clone(),
        };
        let mut p0: Vec<f32> = net.init(7);
        for r in net.linear_ranges() {
            p0[r].fill(0.0);
        }
        let (x, width) = net.linear_inputs(&d32).expect("both linear paths are on");
        assert_eq!(width, c.skip_width() * (1 + d.graph.edge_dim));
        let mut p1 = p0.clone();
        let ws: Vec<Vec<f64>> = (0..c.horizons)
            .map(|h| rand_vec(width, 40 + h as u64, 0.3))
            .collect();
        for (h, w) in ws.iter().enumerate() {
            net.set_linear_weights(&mut p1, h, w);
        }
        let (q0, _) = net.forward(&p0, &d32, None);
        let (q1, _) = net.forward(&p1, &d32, None);
        for i in 0..d.n {
            for (h, w) in ws.iter().enumerate() {
                let want: f64 = x[i * width..(i + 1) * width]
                    .iter()
                    .zip(w)
                    .map(|(a, b)| a * b)
                    .sum();
                for k in 0..5 {
                    let at = (i * c.horizons + h) * 5 + k;
                    let got = (q1[at] - q0[at]) as f64;
                    assert!(
                        (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                        "stock {i} horizon {h}: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn whole_model_gradient_check() {
        check(tiny(true, true, true));
    }

    #[test]
    fn ablated_models_gradient_check() {
        check(tiny(false, true, true));
        check(tiny(true, false, true));
        check(tiny(true, true, false));
    }

    /// A day with the minimum number of stocks (20): the gradient of a deterministic
    /// sample of parameters from every block (all of them would take minutes unoptimised).
    #[test]
    fn whole_model_gradient_check_on_a_day_with_the_minimum_number_of_stocks() {
        let c = tiny(true, true, true);
        let net = Network::new(c.clone()).expect("config");
        let n = super::super::metrics::MIN_STOCKS;
        let x = rand_vec(n * c.t * c.features, 21, 1.5);
        let mask = vec![1.0; n * c.t * c.masks];
        let ret = rand_vec(n * c.t, 22, 1.0);
        let sector: Vec<u32> = (0..n as u32).map(|i| i % 3).collect();
        let graph = build_graph(&ret, &sector, &c.graph());
        let d = DayInput { n, x, mask, graph };
        let y = rand_vec(n * c.horizons, 23, 1.0);
        let valid = vec![true; n * c.horizons];
        let p: Vec<f64> = net.init(9);
        let drop = net.dropout::<f64>(n, 4, 2);
        let lc = LossConfig::default();
        let loss = |p: &[f64]| -> f64 {
            let (q, _) = net.forward(p, &d, drop.as_ref());
            loss_and_grad(&lc, &q, &y, &valid, n, c.horizons).0.total
        };
        let (q, cache) = net.forward(&p, &d, drop.as_ref());
        let (_, dq) = loss_and_grad(&lc, &q, &y, &valid, n, c.horizons);
        let mut g = vec![0.0; p.len()];
        net.backward(&p, &cache, &d, &dq, &mut g);
        for (name, range) in net.ranges.named() {
            let step = (range.len() / 12).max(1);
            let idx: Vec<usize> = range.clone().step_by(step).collect();
            let numeric: Vec<f64> = idx
                .iter()
                .map(|&i| {
                    let mut q = p.clone();
                    q[i] = p[i] + super::super::gradcheck::EPS;
                    let up = loss(&q);
                    q[i] = p[i] - super::super::gradcheck::EPS;
                    (up - loss(&q)) / (2.0 * super::super::gradcheck::EPS)
                })
                .collect();
            let analytic: Vec<f64> = idx.iter().map(|&i| g[i]).collect();
            assert_close_grads(name, &analytic, &numeric);
        }
    }

    #[test]
    fn weight_decay_applies_to_matrices_only() {
        let net = Network::new(ModelConfig::new(20, 37, 6, 4)).expect("config");
        let mask = net.decay_mask();
        let r = &net.ranges;
        assert!(mask[r.fan.clone()].iter().all(|m| !m) && !mask[r.gate.start]);
        // LSTM: w_x and w_h decay, the bias (last 4H) does not.
        let h4 = 4 * net.cfg.hidden;
        assert!(mask[r.lstm.start..r.lstm.end - h4].iter().all(|m| *m));
        assert!(mask[r.lstm.end - h4..r.lstm.end].iter().all(|m| !m));
        // The heads' last bias (5 quantile offsets) does not decay.
        assert!(mask[r.heads.end - 5..r.heads.end].iter().all(|m| !m));
        let share = mask.iter().filter(|m| **m).count() as f64 / mask.len() as f64;
        assert!(share > 0.9, "{share}");
    }

    #[test]
    fn gate_starts_at_the_configured_value() {
        let c = tiny(true, true, true);
        let net = Network::new(c).expect("config");
        let p: Vec<f64> = net.init(1);
        assert!((sigmoid(p[net.ranges.gate.start]) - 0.4).abs() < 1e-12);
    }

    #[test]
    fn bad_configs_are_refused_with_the_field() {
        let mut c = tiny(true, true, true);
        c.hidden = 10;
        assert!(Network::new(c).unwrap_err().contains("hidden = 10"));
        let mut c = tiny(true, true, true);
        c.frequencies = 4;
        assert!(Network::new(c).unwrap_err().contains("frequencies"));
    }

    #[test]
    fn a_config_stored_before_the_lead_lag_graph_and_linear_paths_keeps_its_layout() {
        let mut old = serde_json::to_value(ModelConfig::new(20, 37, 6, 4)).expect("json");
        let obj = old.as_object_mut().expect("object");
        for k in [
            "graph_lag_k",
            "graph_lag_lookback",
            "use_skip",
            "use_graph_skip",
            "linear_scale",
        ] {
            obj.remove(k);
        }
        let c: ModelConfig = serde_json::from_value(old).expect("an old config loads");
        assert_eq!(
            (c.graph_lag_k, c.use_skip, c.use_graph_skip, c.linear_scale),
            (0, false, false, 1.0)
        );
        assert_eq!(c.graph().edge_dim(), 2);
        let net = Network::new(c).expect("config");
        assert!(net.ranges.skip.is_empty() && net.ranges.graph_skip.is_empty());
        assert_eq!(net.n_params(), net.ranges.heads.end);
        // The current defaults add exactly the two linear paths and the wider edges.
        let new = Network::new(ModelConfig::new(20, 37, 6, 4)).expect("config");
        assert_eq!(new.ranges.skip.len(), 4 * 43);
        assert_eq!(new.ranges.graph_skip.len(), 4 * 4 * 43);
    }
}
