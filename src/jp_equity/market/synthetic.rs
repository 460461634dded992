//! The embedded synthetic market: a deterministic (seeded) Japanese equity market with
//! the schema of J-Quants v2, used when no API key is set.
//!
//! Returns follow a factor model: a market factor with GARCH(1,1) volatility clustering
//! and Student-t shocks, 33 sector factors, and fat-tailed (Student-t, 4 d.o.f.)
//! idiosyncratic noise. On top sits a **planted predictable component** α, known at the
//! previous close, made of short-term reversal, 20-day momentum, a lead-lag from a
//! "leader" stock to its followers (reachable only through a cross-sectional graph) and a
//! volume-shock continuation, all 1.5× stronger in the high-volatility regime. The
//! component is published as `synthetic_truth` for evaluation only.
//!
//! Determinism: every stock draws from its own ChaCha stream (stream = stock index), the
//! market from its own, and each stock draws the same number of values every day, so the
//! market is identical at any thread count and any simulated prefix is the same whatever
//! end date is asked for (incremental = full). Its whole state between two days is a
//! [`Checkpoint`] (each stream's position and the few carried values): a market resumed
//! from one continues bit for bit as the uninterrupted simulation would, so a new day
//! costs one step, not the whole history.
//!
//! Adjusted prices are forward-adjusted (Adj* = raw × cumulative split ratio to date), so
//! a later split never rewrites earlier adjusted history; `AdjFactor` on a split day is
//! 1/ratio as in J-Quants.

use super::calendar::trading_days;
use super::sectors::{MARKETS, SECTORS_33};
use crate::jp_equity::model::metrics::pearson;
use chrono::{Datelike, NaiveDate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal, StudentT};
use rayon::prelude::*;

/// Planted component strengths (see the README for the oracle IC they give).
pub const REVERSAL: f64 = 0.05;
pub const MOMENTUM: f64 = 0.08;
pub const LEAD_LAG: f64 = 0.20;
pub const VOLUME_SHOCK: f64 = 0.0015;
pub const HIGH_VOL_SCALE: f64 = 1.5;

const MU_MARKET: f64 = 0.0002;
const SIGMA_BAR: f64 = 0.010;
const GARCH_A: f64 = 0.08;
const GARCH_B: f64 = 0.90;
const SECTOR_VOL: f64 = 0.006;
const SPLIT_PROB: f64 = 0.0004;
const NO_TRADE_PROB: f64 = 0.002;
const VOLUME_SHOCK_PROB: f64 = 0.03;
/// Trading days simulated ahead of `start` at most (about 40 years).
const HORIZON_YEARS: i32 = 40;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MarketParams {
    pub seed: u64,
    pub stocks: usize,
    pub start: NaiveDate,
}

#[derive(Debug, Clone)]
pub struct Stock {
    pub code: String,
    pub name: String,
    pub sector33: usize,
    pub market: usize,
    pub beta: f64,
    pub idio_vol: f64,
    pub leader: Option<usize>,
    pub list_day: usize,
    pub delist_day: Option<usize>,
    pub shares: f64,
    log_volume_mean: f64,
}

impl Stock {
    pub fn listed(&self, t: usize) -> bool {
        t >= self.list_day && self.delist_day.is_none_or(|d| t < d)
    }
}

/// One stock's generator state; `R` is its random stream (a position, in a checkpoint).
#[derive(Debug, Clone, PartialEq, bincode::Encode, bincode::Decode)]
struct StockState<R = ChaCha8Rng> {
    rng: R,
    /// Forward-adjusted price (continuous through splits).
    price: f64,
    /// Cumulative split ratio to date.
    cum_ratio: f64,
    last_ret: f64,
    history: [f64; 20],
    log_volume: f64,
    volume_shock: bool,
    alpha_next: f64,
}

impl<R> StockState<R> {
    /// The same state with another form of its stream.
    fn with_rng<S>(&self, rng: S) -> StockState<S> {
        StockState {
            rng,
            price: self.price,
            cum_ratio: self.cum_ratio,
            last_ret: self.last_ret,
            history: self.history,
            log_volume: self.log_volume,
            volume_shock: self.volume_shock,
            alpha_next: self.alpha_next,
        }
    }
}

/// One stock on one day.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bar {
    pub o: f64,
    pub h: f64,
    pub l: f64,
    pub c: f64,
    pub traded: bool,
    pub volume: f64,
    pub adj_factor: f64,
    pub cum_ratio: f64,
    pub limit_up: bool,
    pub limit_down: bool,
    /// The planted component in this day's return.
    pub alpha: f32,
    /// The planted component of the next day's return, known at this close.
    pub alpha_next: f32,
    pub ret: f32,
}

pub struct Market {
    pub params: MarketParams,
    pub days: Vec<NaiveDate>,
    pub stocks: Vec<Stock>,
    states: Vec<StockState>,
    market_rng: ChaCha8Rng,
    sigma2: f64,
    last_eps: f64,
    /// bars[t - first][i]
    bars: Vec<Vec<Bar>>,
    /// TOPIX (o, h, l, c) per day, from `first`.
    topix: Vec<[f64; 4]>,
    /// The first day index whose bars this market holds (0 unless resumed).
    first: usize,
    /// The TOPIX close of the last simulated day.
    topix_close: f64,
}

/// A ChaCha stream's exact position.
#[derive(Debug, Clone, PartialEq, bincode::Encode, bincode::Decode)]
struct RngState {
    seed: [u8; 32],
    stream: u64,
    word_pos: u128,
}

impl RngState {
    fn of(r: &ChaCha8Rng) -> RngState {
        RngState {
            seed: r.get_seed(),
            stream: r.get_stream(),
            word_pos: r.get_word_pos(),
        }
    }

    fn rng(&self) -> ChaCha8Rng {
        let mut r = ChaCha8Rng::from_seed(self.seed);
        r.set_stream(self.stream);
        r.set_word_pos(self.word_pos);
        r
    }
}

/// The generator's whole state before day `next`: every stream's position and the values
/// a day carries to the next. [`Market::resume`] from it continues exactly as the
/// uninterrupted simulation.
#[derive(Debug, Clone, PartialEq, bincode::Encode, bincode::Decode)]
pub struct Checkpoint {
    /// The day index the next step simulates.
    pub next: u64,
    stocks: Vec<StockState<RngState>>,
    market_rng: RngState,
    sigma2: f64,
    last_eps: f64,
    topix_close: f64,
}

fn rng_for(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

fn stock_code(i: usize) -> String {
    // Every 40th stock gets a new-style alphanumeric code such as "131A0"; codes are
    // five characters as in J-Quants v2 and always strings.
    if i % 40 == 17 {
        let letter = (b'A' + (i / 40 % 26) as u8) as char;
        format!("{:03}{letter}0", 130 + i / 1040)
    } else {
        format!("{:04}0", 1301 + i * 2)
    }
}

impl Market {
    pub fn new(params: MarketParams) -> Market {
        let end = NaiveDate::from_ymd_opt(params.start.year() + HORIZON_YEARS, 12, 31)
            .unwrap_or(params.start);
        let days = trading_days(params.start, end);
        let mut stocks = Vec::with_capacity(params.stocks);
        let mut states = Vec::with_capacity(params.stocks);
        for i in 0..params.stocks {
            let mut r = rng_for(params.seed, i as u64);
            let sector33 = r.random_range(0..SECTORS_33.len());
            let u: f64 = r.random();
            let market = if u < 0.45 {
                0
            } else if u < 0.85 {
                1
            } else {
                2
            };
            let growth = market == 2;
            let list_day = if r.random::<f64>() < 0.85 {
                0
            } else {
                r.random_range(1..750)
            };
            let delist_day = (r.random::<f64>() < 0.08)
                .then(|| r.random_range(100..2500usize).max(list_day + 40));
            let n: f64 = r.sample(StandardNormal);
            let price0 = (7.2 + 0.8 * n).exp().clamp(50.0, 60_000.0);
            let shares = (17.0 + 1.2 * r.sample::<f64, _>(StandardNormal)).exp();
            let log_volume_mean = 11.0 + 1.0 * r.sample::<f64, _>(StandardNormal);
            stocks.push(Stock {
                code: stock_code(i),
                name: format!(
                    "Synthetic {} {:04}",
                    SECTORS_33[sector33]
                        .1
                        .split_whitespace()
                        .next()
                        .unwrap_or("Co"),
                    i
                ),
                sector33,
                market,
                beta: r.random_range(0.6..1.4),
                idio_vol: if growth {
                    r.random_range(0.02..0.035)
                } else {
                    r.random_range(0.010..0.025)
                },
                leader: None,
                list_day,
                delist_day,
                shares,
                log_volume_mean,
            });
            states.push(StockState {
                rng: r,
                price: price0,
                cum_ratio: 1.0,
                last_ret: 0.0,
                history: [0.0; 20],
                log_volume: log_volume_mean,
                volume_shock: false,
                alpha_next: 0.0,
            });
        }
        // Lead-lag links: about a third of the stocks follow a leader.
        let mut links = rng_for(params.seed, u64::MAX - 2);
        if params.stocks > 1 {
            for i in 0..params.stocks {
                if links.random::<f64>() < 0.35 {
                    let mut j = links.random_range(0..params.stocks);
                    if j == i {
                        j = (j + 1) % params.stocks;
                    }
                    stocks[i].leader = Some(j);
                }
            }
        }
        Market {
            market_rng: rng_for(params.seed, u64::MAX - 1),
            params,
            days,
            stocks,
            states,
            sigma2: SIGMA_BAR * SIGMA_BAR,
            last_eps: 0.0,
            bars: Vec::new(),
            topix: Vec::new(),
            first: 0,
            topix_close: 2000.0,
        }
    }

    /// Index of a trading day, if it is one within the horizon.
    pub fn day_index(&self, d: NaiveDate) -> Option<usize> {
        self.days.binary_search(&d).ok()
    }

    /// Days simulated so far (the index of the next day).
    pub fn simulated(&self) -> usize {
        self.first + self.bars.len()
    }

    /// The first day index whose bars are held: 0, or the day a resumed market began at.
    pub fn first(&self) -> usize {
        self.first
    }

    /// Day `t`'s bars, one per stock; `t` in `first()..simulated()`.
    pub fn day(&self, t: usize) -> &[Bar] {
        &self.bars[t - self.first]
    }

    /// Day `t`'s TOPIX (o, h, l, c); `t` in `first()..simulated()`.
    pub fn topix_on(&self, t: usize) -> [f64; 4] {
        self.topix[t - self.first]
    }

    /// Simulates through day index `t` (inclusive).
    pub fn advance_to(&mut self, t: usize) {
        while self.simulated() <= t.min(self.days.len().saturating_sub(1)) {
            self.step();
        }
    }

    /// The state before the next day.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            next: self.simulated() as u64,
            stocks: self
                .states
                .iter()
                .map(|s| s.with_rng(RngState::of(&s.rng)))
                .collect(),
            market_rng: RngState::of(&self.market_rng),
            sigma2: self.sigma2,
            last_eps: self.last_eps,
            topix_close: self.topix_close,
        }
    }

    /// The market of `params` as it stood at `c`: it holds no bars before `c.next` and
    /// simulates on from there. `None` when `c` is of another market (stock count).
    pub fn resume(params: MarketParams, c: &Checkpoint) -> Option<Market> {
        let mut m = Market::new(params);
        let next = usize::try_from(c.next).ok()?;
        if c.stocks.len() != m.states.len() || next > m.days.len() {
            return None;
        }
        m.states = c.stocks.iter().map(|k| k.with_rng(k.rng.rng())).collect();
        m.market_rng = c.market_rng.rng();
        m.sigma2 = c.sigma2;
        m.last_eps = c.last_eps;
        m.topix_close = c.topix_close;
        m.first = next;
        Some(m)
    }

    fn step(&mut self) {
        let t = self.simulated();
        let t5 = StudentT::new(5.0).unwrap_or_else(|_| unreachable_t());
        let omega = SIGMA_BAR * SIGMA_BAR * (1.0 - GARCH_A - GARCH_B);
        self.sigma2 = omega + GARCH_A * self.last_eps * self.last_eps + GARCH_B * self.sigma2;
        let sigma = self.sigma2.sqrt();
        let z: f64 = t5.sample(&mut self.market_rng) / (5.0f64 / 3.0).sqrt();
        let eps = sigma * z;
        self.last_eps = eps;
        let r_m = MU_MARKET + eps;
        let sector: Vec<f64> = (0..SECTORS_33.len())
            .map(|_| SECTOR_VOL * self.market_rng.sample::<f64, _>(StandardNormal))
            .collect();
        let topix_noise: [f64; 2] = [self.market_rng.random(), self.market_rng.random()];
        let high_vol = sigma > SIGMA_BAR;
        let stocks = &self.stocks;
        let bars: Vec<Bar> = self
            .states
            .par_iter_mut()
            .zip(stocks.par_iter())
            .map(|(st, sk)| step_stock(st, sk, r_m, sector[sk.sector33]))
            .collect();
        // The next day's planted component, now that every return of today is known.
        let rets: Vec<f64> = self.states.iter().map(|s| s.last_ret).collect();
        let scale = if high_vol { HIGH_VOL_SCALE } else { 1.0 };
        let mut bars = bars;
        self.states
            .par_iter_mut()
            .zip(stocks.par_iter())
            .zip(bars.par_iter_mut())
            .for_each(|((st, sk), bar)| {
                let mom = st.history.iter().sum::<f64>() / 20.0;
                let lead = sk.leader.map(|j| rets[j]).unwrap_or(0.0);
                let shock = if st.volume_shock {
                    st.last_ret.signum()
                } else {
                    0.0
                };
                st.alpha_next = scale
                    * (-REVERSAL * st.last_ret
                        + MOMENTUM * mom
                        + LEAD_LAG * lead
                        + VOLUME_SHOCK * shock);
                bar.alpha_next = st.alpha_next as f32;
            });
        // TOPIX: cap-weighted over stocks listed yesterday and today.
        let prev_level = self.topix_close;
        let (mut now, mut before) = (0.0, 0.0);
        for (i, sk) in stocks.iter().enumerate() {
            if sk.listed(t) && (t == 0 || sk.listed(t - 1)) {
                let p = self.states[i].price;
                now += sk.shares * p;
                before += sk.shares * p / (1.0 + bars[i].ret as f64).max(1e-9);
            }
        }
        let ratio = if before > 0.0 { now / before } else { 1.0 };
        let c = prev_level * ratio;
        let o = prev_level * ratio.powf(0.4);
        let h = o.max(c) * (1.0 + 0.004 * topix_noise[0]);
        let l = o.min(c) * (1.0 - 0.004 * topix_noise[1]);
        self.topix.push([o, h, l, c]);
        self.topix_close = c;
        self.bars.push(bars);
    }

    /// Oracle IC per horizon: the mean daily Pearson correlation between the planted
    /// component known at day t (`alpha_next`) and the realised forward return
    /// AdjC[t+h]/AdjC[t] − 1, over days with at least 20 listed, traded stocks.
    pub fn oracle_ic(&self, horizon: usize) -> f64 {
        let n = self.simulated();
        let mut ics = Vec::new();
        for t in self.first..n.saturating_sub(horizon) {
            let mut xs = Vec::new();
            let mut ys = Vec::new();
            for (i, sk) in self.stocks.iter().enumerate() {
                let (a, b) = (&self.day(t)[i], &self.day(t + horizon)[i]);
                if sk.listed(t) && sk.listed(t + horizon) && a.traded && b.traded {
                    xs.push(a.alpha_next as f64);
                    ys.push(b.c * b.cum_ratio / (a.c * a.cum_ratio) - 1.0);
                }
            }
            if xs.len() >= 20
                && let Some(ic) = pearson(&xs, &ys)
            {
                ics.push(ic);
            }
        }
        if ics.is_empty() {
            0.0
        } else {
            ics.iter().sum::<f64>() / ics.len() as f64
        }
    }
}

fn unreachable_t() -> StudentT<f64> {
    // StudentT::new only fails for a non-positive d.o.f.; 1.0 is valid.
    StudentT::new(1.0).unwrap_or_else(|_| panic!("Student-t with 1 d.o.f. is always valid"))
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn step_stock(st: &mut StockState, sk: &Stock, r_m: f64, f_sector: f64) -> Bar {
    let t4 = StudentT::new(4.0).unwrap_or_else(|_| unreachable_t());
    // The same draws every day, used or not, so that streams stay aligned.
    let e: f64 = t4.sample(&mut st.rng) / 2.0f64.sqrt();
    let u_split: f64 = st.rng.random();
    let split_pick: f64 = st.rng.random();
    let u_trade: f64 = st.rng.random();
    let u_shock: f64 = st.rng.random();
    let n: [f64; 4] = [
        st.rng.sample(StandardNormal),
        st.rng.sample(StandardNormal),
        st.rng.sample(StandardNormal),
        st.rng.sample(StandardNormal),
    ];
    let alpha = st.alpha_next;
    let r = (sk.beta * r_m + f_sector + alpha + sk.idio_vol * e).clamp(-0.3, 0.3);
    let prev = st.price;
    st.price *= r.exp();
    let split_ratio = if u_split < SPLIT_PROB {
        [2.0, 3.0, 5.0][(split_pick * 3.0) as usize % 3]
    } else {
        1.0
    };
    st.cum_ratio *= split_ratio;
    let shock = u_shock < VOLUME_SHOCK_PROB;
    st.log_volume = sk.log_volume_mean
        + 0.7 * (st.log_volume - sk.log_volume_mean)
        + 0.35 * n[3]
        + if shock { 1.5 } else { 0.0 };
    st.volume_shock = shock;
    st.history.rotate_left(1);
    st.history[19] = r;
    st.last_ret = r;

    let cum = st.cum_ratio;
    let c = round1(st.price / cum).max(0.1);
    let o = round1(prev * (0.4 * r + 0.003 * n[0]).exp() / cum).max(0.1);
    let h = round1(o.max(c) * (0.006 * n[1].abs()).exp()).max(o.max(c));
    let l = round1(o.min(c) * (-0.006 * n[2].abs()).exp())
        .min(o.min(c))
        .max(0.1);
    let traded = u_trade >= NO_TRADE_PROB;
    Bar {
        o,
        h,
        l,
        c,
        traded,
        volume: if traded {
            (st.log_volume.exp() * cum).round()
        } else {
            0.0
        },
        adj_factor: 1.0 / split_ratio,
        cum_ratio: cum,
        limit_up: r > 0.14,
        limit_down: r < -0.14,
        alpha: alpha as f32,
        alpha_next: 0.0,
        ret: r as f32,
    }
}

/// The market segment name of a stock.
pub fn market_name(m: usize) -> (&'static str, &'static str) {
    MARKETS[m.min(MARKETS.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(stocks: usize) -> MarketParams {
        MarketParams {
            seed: 7,
            stocks,
            start: NaiveDate::from_ymd_opt(2022, 1, 4).unwrap_or_default(),
        }
    }

    #[test]
    fn prefix_is_stable_and_threads_do_not_matter() {
        let mut a = Market::new(params(60));
        a.advance_to(120);
        let mut b = Market::new(params(60));
        b.advance_to(40);
        b.advance_to(120);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build();
        let mut c = Market::new(params(60));
        if let Ok(pool) = pool {
            pool.install(|| c.advance_to(120));
        }
        for t in [0, 39, 40, 120] {
            for i in 0..60 {
                assert_eq!(a.bars[t][i].c, b.bars[t][i].c);
                assert_eq!(a.bars[t][i].c.to_bits(), c.bars[t][i].c.to_bits());
                assert_eq!(a.bars[t][i].alpha_next, c.bars[t][i].alpha_next);
            }
        }
        assert_eq!(a.topix[120][3].to_bits(), c.topix[120][3].to_bits());
    }

    #[test]
    fn a_market_resumed_from_a_checkpoint_continues_bit_for_bit() {
        let mut whole = Market::new(params(60));
        whole.advance_to(150);
        let mut first = Market::new(params(60));
        first.advance_to(99);
        let c = first.checkpoint();
        assert_eq!(c.next, 100);
        // Through its encoding, as it is stored.
        let bytes = bincode::encode_to_vec(&c, bincode::config::standard()).unwrap_or_default();
        let (c, _): (Checkpoint, usize) =
            bincode::decode_from_slice(&bytes, bincode::config::standard())
                .unwrap_or_else(|e| panic!("decode: {e}"));
        let mut resumed = Market::resume(params(60), &c).unwrap_or_else(|| panic!("resume"));
        assert_eq!((resumed.first(), resumed.simulated()), (100, 100));
        resumed.advance_to(150);
        for t in 100..=150 {
            for (a, b) in whole.day(t).iter().zip(resumed.day(t)) {
                for (x, y) in [
                    (a.o, b.o),
                    (a.h, b.h),
                    (a.l, b.l),
                    (a.c, b.c),
                    (a.volume, b.volume),
                    (a.adj_factor, b.adj_factor),
                    (a.cum_ratio, b.cum_ratio),
                ] {
                    assert_eq!(x.to_bits(), y.to_bits(), "day {t}");
                }
                assert_eq!(
                    (a.traded, a.limit_up, a.limit_down),
                    (b.traded, b.limit_up, b.limit_down)
                );
                assert_eq!(
                    (a.alpha.to_bits(), a.alpha_next.to_bits(), a.ret.to_bits()),
                    (b.alpha.to_bits(), b.alpha_next.to_bits(), b.ret.to_bits())
                );
            }
            let (x, y) = (whole.topix_on(t), resumed.topix_on(t));
            assert_eq!(x.map(f64::to_bits), y.map(f64::to_bits));
        }
        assert_eq!(whole.checkpoint(), resumed.checkpoint());
        // Another market's checkpoint is refused.
        assert!(Market::resume(params(61), &c).is_none());
    }

    #[test]
    fn bars_are_consistent() {
        let mut m = Market::new(params(80));
        m.advance_to(250);
        for day in &m.bars {
            for b in day {
                assert!(b.l <= b.o.min(b.c) && b.h >= b.o.max(b.c), "{b:?}");
                assert!(b.volume >= 0.0);
            }
        }
        let codes: std::collections::BTreeSet<_> =
            m.stocks.iter().map(|s| s.code.clone()).collect();
        assert_eq!(codes.len(), 80, "codes are unique");
        assert!(
            codes.contains("13010")
                && codes
                    .iter()
                    .any(|c| c.chars().any(|x| x.is_ascii_alphabetic()))
        );
    }

    #[test]
    fn the_planted_component_is_predictive() {
        let mut m = Market::new(params(300));
        m.advance_to(400);
        let ic1 = m.oracle_ic(1);
        assert!(ic1 > 0.03, "oracle IC(1d) = {ic1}");
        assert_eq!(ic1, m.oracle_ic(1));
    }
}
