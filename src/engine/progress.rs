//! Progress bars on a terminal (one line per running step, like cargo), nothing when
//! stderr is not a terminal or NO_COLOR/--quiet asks for plain output.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

#[derive(Clone)]
pub struct Progress {
    multi: Option<MultiProgress>,
}

impl Progress {
    pub fn new(enabled: bool) -> Progress {
        let on = enabled && std::io::stderr().is_terminal();
        Progress {
            multi: on.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
        }
    }

    /// A bar for one step: `total` partitions, shown after it has run for a moment.
    pub fn step(&self, asset: &str, total: u64) -> ProgressBar {
        let Some(m) = &self.multi else {
            return ProgressBar::hidden();
        };
        let bar = m.add(ProgressBar::new(total));
        let style = ProgressStyle::with_template(
            "{spinner} {prefix:>24} [{bar:30}] {pos}/{len} {msg} ({elapsed})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(asset.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    /// Prints a line above the bars; without bars the final summary says it instead.
    pub fn println(&self, line: &str) {
        if let Some(m) = &self.multi {
            let _ = m.println(line);
        }
    }
}
