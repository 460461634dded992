//! The synthetic market's state kept between processes: after a run simulates new days,
//! the market's [`Checkpoint`] before the next day is stored in the op's cache
//! (`lake/_lakebuild/cache/synthetic_market-<code version>/<params>/<next day>.bin`), and
//! a later process resumes from the newest one instead of regenerating the history. A
//! resumed market is bit-identical to a full generation (the market's own test), the
//! folder is keyed by the generator's code version and the market's params, and each file
//! carries a blake3 digest of its body: a file that does not match is ignored, so the
//! cache can only save time, never change a byte of the data.

use super::synthetic::{Checkpoint, MarketParams};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"LBMKTCK1";
/// Checkpoints kept per market (the newest).
const KEEP: usize = 3;

/// The folder of one market's checkpoints, under the op's cache.
pub fn folder(p: &MarketParams) -> PathBuf {
    let id = format!("seed={} stocks={} start={}", p.seed, p.stocks, p.start);
    PathBuf::from(&blake3::hash(id.as_bytes()).to_hex()[..16])
}

fn file(dir: &Path, next: u64) -> PathBuf {
    dir.join(format!("{next:010}.bin"))
}

/// The day indices of the checkpoints in `dir`, ascending.
fn stored(dir: &Path) -> Vec<u64> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<u64> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            name.to_str()?.strip_suffix(".bin")?.parse().ok()
        })
        .collect();
    v.sort_unstable();
    v
}

/// The newest valid checkpoint whose next day is in `(after, upto]`.
pub fn latest(dir: &Path, after: usize, upto: usize) -> Option<Checkpoint> {
    stored(dir)
        .into_iter()
        .rev()
        .filter(|n| *n > after as u64 && *n <= upto as u64)
        .find_map(|n| read(&file(dir, n)).ok().filter(|c| c.next == n))
}

fn read(path: &Path) -> Result<Checkpoint> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let Some(rest) = bytes.strip_prefix(MAGIC.as_slice()) else {
        bail!("not a market checkpoint");
    };
    let (digest, body) = rest.split_at_checked(32).context("truncated")?;
    if blake3::hash(body).as_bytes() != digest {
        bail!("torn or edited checkpoint");
    }
    let (c, _) = bincode::decode_from_slice(body, bincode::config::standard())?;
    Ok(c)
}

/// Stores `c` atomically and drops all but the newest few.
pub fn save(dir: &Path, c: &Checkpoint) -> Result<()> {
    let body = bincode::encode_to_vec(c, bincode::config::standard())?;
    let mut out = MAGIC.to_vec();
    out.extend(blake3::hash(&body).as_bytes());
    out.extend(body);
    crate::lake::state_file::write_atomically(&file(dir, c.next), &out)?;
    let all = stored(dir);
    for n in &all[..all.len().saturating_sub(KEEP)] {
        let _ = std::fs::remove_file(file(dir, *n));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::synthetic::Market;
    use super::*;

    fn params() -> MarketParams {
        MarketParams {
            seed: 3,
            stocks: 20,
            start: chrono::NaiveDate::from_ymd_opt(2022, 1, 4).unwrap_or_default(),
        }
    }

    #[test]
    fn the_newest_valid_checkpoint_in_range_is_found_and_a_damaged_one_is_not() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let d = dir.path().join(folder(&params()));
        let mut m = Market::new(params());
        for t in [9, 19, 29, 39] {
            m.advance_to(t);
            save(&d, &m.checkpoint())?;
        }
        assert_eq!(stored(&d), [20, 30, 40], "only the newest few are kept");
        assert_eq!(latest(&d, 0, 35).map(|c| c.next), Some(30));
        assert_eq!(latest(&d, 30, 35).map(|c| c.next), None);
        assert_eq!(latest(&d, 0, 40), Some(m.checkpoint()));
        // A damaged newest file: the next older one is used.
        let newest = file(&d, 40);
        let mut bytes = std::fs::read(&newest)?;
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&newest, bytes)?;
        assert_eq!(latest(&d, 0, 40).map(|c| c.next), Some(30));
        std::fs::write(&newest, "garbage")?;
        assert_eq!(latest(&d, 0, 40).map(|c| c.next), Some(30));
        Ok(())
    }
}
