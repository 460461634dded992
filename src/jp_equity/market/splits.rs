//! Restatements of the J-Quants source. A split re-adjusts a code's whole earlier history
//! (`AdjFactor` ≠ 1 on the day it takes effect), and J-Quants may revise an adjusted history
//! without one, which a re-check of recent days shows as adjusted prices that moved while
//! the raw ones did not. Either way the code's history is fetched again, with one query by
//! code, and every published day whose bar for that code changed is published again. Only
//! those partitions get new keys and content, so only their dependents rebuild.

use crate::core::partition::PartitionId;
use crate::jp_equity::market::bars::{self, Bar};
use crate::jp_equity::market::jquants::Client;
use crate::lake::parquet::scan_files;
use crate::op::{Restated, RestatementEvent};
use anyhow::Result;
use chrono::NaiveDate;
use polars::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

/// What made a code's published history suspect.
#[derive(Debug, Clone, PartialEq)]
enum Event {
    /// A new `AdjFactor` ≠ 1 on `date`.
    Split { date: NaiveDate, factor: f64 },
    /// Adjusted prices of an already published `date` moved against the raw ones.
    Revised { seen: NaiveDate },
}

/// The ratio of the adjusted to the raw close (or open, high, low): what the cumulative
/// adjustment of a bar is.
fn adjustment_ratio(b: &Bar) -> Option<f64> {
    // (raw, adjusted) column indices in `bars::NUMBERS`: C/AdjC, O/AdjO, H/AdjH, L/AdjL.
    [(3, 10), (0, 7), (1, 8), (2, 9)].iter().find_map(|(r, a)| {
        match (b.numbers[*r], b.numbers[*a]) {
            (Some(r), Some(a)) if r != 0.0 => Some(a / r),
            _ => None,
        }
    })
}

/// The codes whose earlier history must be fetched again, given the batch as fetched now
/// (`fresh`) and as it was published before, where it was (`stored`, a re-check).
fn events(fresh: &[Bar], stored: &HashMap<(NaiveDate, &str), &Bar>) -> BTreeMap<String, Event> {
    let mut out: BTreeMap<String, Event> = BTreeMap::new();
    for b in fresh {
        let before = stored.get(&(b.date, b.code.as_str()));
        if let Some(factor) = b.adjustment() {
            // A split already seen when the day was first published is not news.
            if before.is_none_or(|s| s.adjustment() != Some(factor)) {
                let newer = match out.get(&b.code) {
                    Some(Event::Split { date, .. }) => b.date > *date,
                    _ => true,
                };
                if newer {
                    out.insert(
                        b.code.clone(),
                        Event::Split {
                            date: b.date,
                            factor,
                        },
                    );
                }
            }
        } else if let Some(s) = before
            && let (Some(old), Some(new)) = (adjustment_ratio(s), adjustment_ratio(b))
            && (old - new).abs() > 1e-9 * old.abs().max(new.abs())
        {
            out.entry(b.code.clone())
                .or_insert(Event::Revised { seen: b.date });
        }
    }
    out
}

fn read_bars(files: &[PathBuf], codes: Option<&[String]>) -> Result<Vec<Bar>> {
    if files.is_empty() {
        return Ok(vec![]);
    }
    let mut lf = scan_files(files)?;
    if let Some(codes) = codes {
        let list = Series::new("codes".into(), codes);
        lf = lf.filter(col("Code").is_in(lit(list).implode(false), false));
    }
    let df = anyhow::Context::context(lf.collect(), "cannot read the published raw_stock_data")?;
    bars::from_frame(&df)
}

/// The earlier partitions to publish again after fetching `batch` (`fresh`), with one
/// restatement per code whose history changed; `None` when nothing did.
pub fn restate(
    client: &Client,
    batch: &[NaiveDate],
    fresh: &[Bar],
    published: &[(PartitionId, PathBuf)],
) -> Result<Option<Restated>> {
    let batch: BTreeSet<NaiveDate> = batch.iter().copied().collect();
    let mut rechecked = Vec::new();
    let mut past: BTreeMap<NaiveDate, PathBuf> = BTreeMap::new();
    for (id, file) in published {
        match id.date() {
            Some(d) if batch.contains(&d) => rechecked.push(file.clone()),
            Some(d) => {
                past.insert(d, file.clone());
            }
            None => {}
        }
    }
    if past.is_empty() {
        return Ok(None);
    }
    let before = read_bars(&rechecked, None)?;
    let stored: HashMap<(NaiveDate, &str), &Bar> = before
        .iter()
        .map(|b| ((b.date, b.code.as_str()), b))
        .collect();
    let found = events(fresh, &stored);
    if found.is_empty() {
        return Ok(None);
    }
    let codes: Vec<String> = found.keys().cloned().collect();
    let files: Vec<PathBuf> = past.values().cloned().collect();
    let mut history: BTreeMap<String, BTreeMap<NaiveDate, Bar>> = BTreeMap::new();
    for b in read_bars(&files, Some(&codes))? {
        history.entry(b.code.clone()).or_default().insert(b.date, b);
    }

    // Per changed day, the codes' new bars; per code, its event and the days it changed.
    let mut patches: BTreeMap<NaiveDate, Vec<Bar>> = BTreeMap::new();
    let mut out_events = Vec::new();
    for (code, event) in &found {
        let Some(published) = history.get(code) else {
            continue; // Nothing of it published before: nothing to restate.
        };
        let (Some(first), Some(last)) = (published.keys().next(), published.keys().next_back())
        else {
            continue;
        };
        let what = format!("/equities/bars/daily?code={code}&from={first}&to={last}");
        let rows = client.get_all(
            "/equities/bars/daily",
            &[
                ("code", code.clone()),
                ("from", first.to_string()),
                ("to", last.to_string()),
            ],
            "data",
        )?;
        let mut changed = Vec::new();
        let mut seen = BTreeSet::new();
        let mut digest = blake3::Hasher::new();
        for r in &rows {
            let b = bars::parse(r, &what)?;
            if b.code != *code {
                return Err(crate::jp_equity::market::jquants::bad(format!(
                    "J-Quants {what}: returned a row for code {}",
                    b.code
                )));
            }
            if !seen.insert(b.date) {
                return Err(crate::jp_equity::market::jquants::bad(format!(
                    "J-Quants {what}: returned two bars for {}",
                    b.date
                )));
            }
            // Only days published before; a bar the re-fetch lacks is left as it was.
            if published.get(&b.date).is_some_and(|old| *old != b) {
                digest.update(format!("{b:?}").as_bytes());
                changed.push(PartitionId::Day(b.date));
                patches.entry(b.date).or_default().push(b);
            }
        }
        if changed.is_empty() {
            continue;
        }
        let n = changed.len();
        let (id, reason) = match event {
            Event::Split { date, factor } => (
                format!("split of {code} effective {date} (AdjFactor {factor})"),
                format!(
                    "J-Quants reported AdjFactor {factor} for {code} on {date}; its history was fetched again and {n} earlier day(s) had changed"
                ),
            ),
            Event::Revised { seen } => (
                format!(
                    "adjusted history of {code} revised, seen re-checking {seen} [{}]",
                    &digest.finalize().to_hex()[..12]
                ),
                format!(
                    "re-checking {seen}, {code}'s adjusted prices had moved against its raw prices; its history was fetched again and {n} earlier day(s) had changed"
                ),
            ),
        };
        out_events.push(RestatementEvent {
            id,
            reason,
            partitions: changed,
        });
    }
    if patches.is_empty() {
        return Ok(None);
    }
    // Each changed day, whole: its published rows with the re-fetched bars in place.
    let days: Vec<(PathBuf, Vec<Bar>)> = patches
        .into_iter()
        .filter_map(|(day, new)| Some((past.get(&day)?.clone(), new)))
        .collect();
    let mut rows = bars::to_frame(&[])?;
    for (file, new) in days {
        rows.vstack_mut(&patch_day(&file, &new)?)?;
    }
    Ok(Some(Restated {
        rows,
        events: out_events,
    }))
}

/// One published day with the bars of `new`'s codes replaced by `new`.
fn patch_day(file: &std::path::Path, new: &[Bar]) -> Result<DataFrame> {
    let new = bars::to_frame(new)?;
    let codes = new.column("Code")?.as_materialized_series().clone();
    let kept = scan_files(&[file.to_path_buf()])?
        .filter(col("Code").is_in(lit(codes).implode(false), false).not())
        .collect()?;
    // In the schema of a fetch, whatever the file's column order; a file with other
    // columns or types is an error, not a silent conversion.
    if kept.width() != new.width() {
        anyhow::bail!(
            "{} has columns {:?}, not those of a J-Quants fetch",
            file.display(),
            kept.get_column_names()
        );
    }
    let columns = new
        .schema()
        .iter()
        .map(|(name, dtype)| Ok(kept.column(name)?.strict_cast(dtype)?))
        .collect::<Result<Vec<Column>>>()?;
    let mut out = DataFrame::new_infer_height(columns)?;
    out.vstack_mut(&new)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(date: u32, code: &str, close: f64, adj: f64, factor: f64) -> Bar {
        let mut numbers = [None; 12];
        numbers[3] = Some(close);
        numbers[10] = Some(adj);
        numbers[6] = Some(factor);
        Bar {
            date: NaiveDate::from_ymd_opt(2024, 3, date).unwrap(),
            code: code.into(),
            numbers,
            ul: false,
            ll: false,
        }
    }

    #[test]
    fn new_splits_and_moved_adjustments_are_events_corrections_are_not() {
        let stored_bars = [
            bar(4, "A", 100.0, 100.0, 1.0),
            bar(4, "B", 50.0, 50.0, 1.0),
            bar(4, "C", 80.0, 80.0, 1.0),
            bar(4, "D", 70.0, 35.0, 0.5),
        ];
        let stored: HashMap<(NaiveDate, &str), &Bar> = stored_bars
            .iter()
            .map(|b| ((b.date, b.code.as_str()), b))
            .collect();
        let fresh = [
            // A split on a new day.
            bar(5, "A", 50.0, 50.0, 0.5),
            // Adjusted moved, raw did not: a revised history.
            bar(4, "B", 50.0, 25.0, 1.0),
            // A late correction of the close (raw and adjusted together): not an event.
            bar(4, "C", 81.0, 81.0, 1.0),
            // A split already published with its day: not news.
            bar(4, "D", 70.0, 35.0, 0.5),
        ];
        let e = events(&fresh, &stored);
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!(
            e["A"],
            Event::Split {
                date: NaiveDate::from_ymd_opt(2024, 3, 5).unwrap(),
                factor: 0.5
            }
        );
        assert!(matches!(e["B"], Event::Revised { .. }));
    }
}
