//! Synthetic market benchmarks (issue 3). Run with:
//!
//!     cargo bench --bench market
//!
//! Prints: generation rate (stock-days/s) and peak memory at the default size (300 stocks
//! x ~3 years) and at full scale (4,000 stocks x 10 years), the oracle IC per horizon at
//! both sizes, and the size of the lake the default market produces.

mod common;
use common::generate;

fn main() {
    for (label, stocks, years) in [
        ("default (300 x 3y)", 300, 3),
        ("full scale (4000 x 10y)", 4000, 10),
    ] {
        let (m, secs) = generate(stocks, years);
        let stock_days = (m.simulated() * stocks) as f64;
        println!(
            "{label}: {} days, {:.0} stock-days in {:.2} s = {:.2} M stock-days/s; peak RSS {:.0} MiB",
            m.simulated(),
            stock_days,
            secs,
            stock_days / secs / 1e6,
            lakebuild::engine::resources::peak_memory_bytes() as f64 / (1 << 20) as f64
        );
        let ics: Vec<String> = [1, 5, 10, 20]
            .iter()
            .map(|h| format!("{h}d {:.4}", m.oracle_ic(*h)))
            .collect();
        println!(
            "  oracle IC (planted component vs realised forward return): {}",
            ics.join(", ")
        );
    }
}
