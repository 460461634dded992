//! A build's progress: bars on a terminal (one line per running step, like cargo;
//! nothing when stderr is not a terminal or NO_COLOR/--quiet asks for plain output), and
//! the same figures published for other processes in the lake's live file
//! (`lake::live`), which `lakebuild serve` shows while the build runs.

use crate::lake::live::{self, LiveRun, LiveStep};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The live file's contents and whether they changed since it was last written.
struct Shared {
    run: Mutex<(LiveRun, bool)>,
    wake: Condvar,
}

#[derive(Clone)]
pub struct Progress {
    multi: Option<MultiProgress>,
    live: Option<Arc<Shared>>,
}

/// Publishes the live file while it lives (a writer thread: at most a few writes a
/// second, a heartbeat when idle); removes it when dropped.
pub struct LivePublisher {
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    lake_root: PathBuf,
    run_id: String,
    writer: Option<JoinHandle<()>>,
}

impl Drop for LivePublisher {
    fn drop(&mut self) {
        {
            // Under the lock, so the writer is either waiting (and woken) or will see it.
            let _g = self.shared.run.lock().unwrap_or_else(|e| e.into_inner());
            self.stop.store(true, Ordering::SeqCst);
            self.shared.wake.notify_all();
        }
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        live::remove(&self.lake_root, &self.run_id);
    }
}

impl Progress {
    pub fn new(enabled: bool) -> Progress {
        let on = enabled && std::io::stderr().is_terminal();
        Progress {
            multi: on.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            live: None,
        }
    }

    /// Also publishes the progress of run `run_id` in the lake at `lake_root` until the
    /// returned publisher is dropped.
    pub fn publish(&mut self, lake_root: PathBuf, run_id: &str, trigger: &str) -> LivePublisher {
        let now = crate::clock::now_ms();
        let run = LiveRun {
            run_id: run_id.to_string(),
            trigger: trigger.to_string(),
            pid: std::process::id(),
            started_at: now,
            updated_at: now,
            steps: vec![],
        };
        let shared = Arc::new(Shared {
            run: Mutex::new((run, true)),
            wake: Condvar::new(),
        });
        self.live = Some(shared.clone());
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (shared, stop, root) = (shared.clone(), stop.clone(), lake_root.clone());
            std::thread::Builder::new()
                .name("lakebuild-live".into())
                .spawn(move || write_until_stopped(&shared, &stop, &root))
                .ok()
        };
        LivePublisher {
            shared,
            stop,
            lake_root,
            run_id: run_id.to_string(),
            writer,
        }
    }

    /// A bar for one step: `total` partitions, shown after it has run for a moment.
    pub fn step(&self, asset: &str, total: u64) -> StepBar {
        let live = self.live.as_ref().map(|s| {
            let mut g = s.run.lock().unwrap_or_else(|e| e.into_inner());
            g.0.steps.push(LiveStep {
                asset: asset.to_string(),
                total,
                started_at: crate::clock::now_ms(),
                ..LiveStep::default()
            });
            g.1 = true;
            s.wake.notify_all();
            (s.clone(), g.0.steps.len() - 1)
        });
        let Some(m) = &self.multi else {
            return StepBar {
                bar: ProgressBar::hidden(),
                live,
            };
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
        StepBar { bar, live }
    }

    /// Prints a line above the bars; without bars the final summary says it instead.
    pub fn println(&self, line: &str) {
        if let Some(m) = &self.multi {
            let _ = m.println(line);
        }
    }
}

fn write_until_stopped(shared: &Shared, stop: &AtomicBool, lake_root: &std::path::Path) {
    let mut g = shared.run.lock().unwrap_or_else(|e| e.into_inner());
    while !stop.load(Ordering::SeqCst) {
        let (run, dirty) = &mut *g;
        if *dirty || crate::clock::now_ms() - run.updated_at >= live::HEARTBEAT.as_millis() as i64 {
            run.updated_at = crate::clock::now_ms();
            *dirty = false;
            let snapshot = run.clone();
            drop(g);
            if let Err(e) = live::write(lake_root, &snapshot) {
                tracing::debug!("cannot publish the build's progress: {e:#}");
            }
            // At most four writes a second, whatever the steps do; the end of the build
            // ends the pause (a build's last step must not wait for it).
            let until = std::time::Instant::now() + Duration::from_millis(250);
            g = shared.run.lock().unwrap_or_else(|e| e.into_inner());
            while !stop.load(Ordering::SeqCst) {
                let left = until.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                g = shared
                    .wake
                    .wait_timeout(g, left)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
            continue;
        }
        g = shared
            .wake
            .wait_timeout(g, live::HEARTBEAT)
            .map(|(g, _)| g)
            .unwrap_or_else(|e| e.into_inner().0);
    }
}

/// One step's bar and its line in the live file.
pub struct StepBar {
    bar: ProgressBar,
    live: Option<(Arc<Shared>, usize)>,
}

impl StepBar {
    fn update(&self, f: impl FnOnce(&mut LiveStep)) {
        if let Some((s, i)) = &self.live {
            let mut g = s.run.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(step) = g.0.steps.get_mut(*i) {
                f(step);
            }
            g.1 = true;
            s.wake.notify_all();
        }
    }

    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
        self.update(|s| s.done += n);
    }

    pub fn set_message(&self, message: String) {
        self.update(|s| s.message = message.clone());
        self.bar.set_message(message);
    }

    pub fn finish_and_clear(&self) {
        self.bar.finish_and_clear();
        self.update(|s| s.ended_at = Some(crate::clock::now_ms()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_file_follows_the_steps_and_goes_when_the_build_ends() -> anyhow::Result<()> {
        let lake = tempfile::tempdir()?;
        let mut p = Progress::new(false);
        let publisher = p.publish(lake.path().to_path_buf(), "r1", "manual");
        let bar = p.step("prices", 4);
        bar.inc(3);
        bar.set_message("2025-01-01..2025-01-03".into());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let seen = loop {
            let runs = live::running(lake.path(), crate::clock::now_ms());
            if runs.first().is_some_and(|r| {
                r.steps
                    .first()
                    .is_some_and(|s| s.done == 3 && !s.message.is_empty())
            }) {
                break runs;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not published: {runs:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(seen[0].run_id, "r1");
        assert_eq!(seen[0].steps[0].total, 4);
        drop(publisher);
        assert!(live::running(lake.path(), crate::clock::now_ms()).is_empty());
        Ok(())
    }
}
