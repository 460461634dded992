//! The project file, `lakebuild.toml` at the project root: settings that hold for the whole
//! project rather than for one rule. Each is taken from, in this order, the command-line
//! flag, the environment, the file, then the default:
//!
//! | key | flag | environment | default |
//! | --- | --- | --- | --- |
//! | `lake` (folder of the lake, relative to the root) | `--lake` | `LAKEBUILD_LAKE` | `lake` |
//! | `rules` (folder of the rules) | `--rules` | `LAKEBUILD_RULES` | `rules` |
//! | `timezone` (the zone whose date is "today", e.g. `Asia/Tokyo`) | `--timezone` | `LAKEBUILD_TIMEZONE` | the machine's zone |
//!
//! The file is optional; a key it does not know is an error naming the file and line, so
//! a typo never silently falls back to a default.

use crate::core::error::UsageError;
use crate::core::rule::line_of;
use anyhow::Result;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use toml::Spanned;

pub const FILE: &str = "lakebuild.toml";

/// What the command line (a flag, or its environment variable) gave.
#[derive(Debug, Clone, Default)]
pub struct Given {
    pub lake: Option<PathBuf>,
    pub rules: Option<PathBuf>,
    pub timezone: Option<String>,
}

/// The settings in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub lake: PathBuf,
    pub rules: PathBuf,
    /// `None`: the machine's local zone.
    pub timezone: Option<chrono_tz::Tz>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Raw {
    lake: Option<String>,
    rules: Option<String>,
    timezone: Option<Spanned<String>>,
}

fn parse_zone(s: &str) -> Option<chrono_tz::Tz> {
    s.parse().ok()
}

/// The settings of the project at `root`.
pub fn load(root: &Path, given: Given) -> Result<Settings> {
    let path = root.join(FILE);
    let (raw, text) = match std::fs::read_to_string(&path) {
        Ok(text) => match toml::from_str::<Raw>(&text) {
            Ok(raw) => (raw, text),
            Err(e) => {
                let msg = e.message().trim().to_string();
                let hint = if msg.contains("unknown field") {
                    " (known keys: lake, rules, timezone)"
                } else {
                    ""
                };
                return Err(UsageError(format!(
                    "{}: {msg}{hint}",
                    located(&path, &text, e.span().map(|s| s.start))
                ))
                .into());
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Raw::default(), String::new()),
        Err(e) => return Err(UsageError(format!("cannot read {}: {e}", path.display())).into()),
    };
    let timezone = match (given.timezone, raw.timezone) {
        (Some(z), _) => Some(parse_zone(&z).ok_or_else(|| {
            UsageError(format!(
                "--timezone / LAKEBUILD_TIMEZONE '{z}' is not a time zone: use an IANA name such as Asia/Tokyo or UTC"
            ))
        })?),
        (None, Some(z)) => Some(parse_zone(z.get_ref()).ok_or_else(|| {
            UsageError(format!(
                "{}: timezone '{}' is not a time zone: use an IANA name such as Asia/Tokyo or UTC",
                located(&path, &text, Some(z.span().start)),
                z.get_ref()
            ))
        })?),
        (None, None) => None,
    };
    Ok(Settings {
        lake: given
            .lake
            .or(raw.lake.map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("lake")),
        rules: given
            .rules
            .or(raw.rules.map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("rules")),
        timezone,
    })
}

fn located(path: &Path, text: &str, offset: Option<usize>) -> String {
    format!(
        "{}:{}",
        path.display(),
        offset.map_or(1, |o| line_of(text, o))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_or_environment_beats_the_file_which_beats_the_default() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let none = load(dir.path(), Given::default())?;
        assert_eq!(
            none,
            Settings {
                lake: "lake".into(),
                rules: "rules".into(),
                timezone: None
            }
        );
        std::fs::write(
            dir.path().join(FILE),
            "lake = \"data/lake\"\ntimezone = \"Asia/Tokyo\"\n",
        )?;
        let file = load(dir.path(), Given::default())?;
        assert_eq!(file.lake, PathBuf::from("data/lake"));
        assert_eq!(file.rules, PathBuf::from("rules"));
        assert_eq!(file.timezone, Some(chrono_tz::Asia::Tokyo));
        let given = load(
            dir.path(),
            Given {
                lake: Some("other".into()),
                rules: None,
                timezone: Some("UTC".into()),
            },
        )?;
        assert_eq!(given.lake, PathBuf::from("other"));
        assert_eq!(given.timezone, Some(chrono_tz::UTC));
        Ok(())
    }

    #[test]
    fn unknown_keys_and_bad_zones_name_the_file_and_line() -> Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join(FILE), "lake = \"l\"\n\nlaek = \"x\"\n")?;
        let e = load(dir.path(), Given::default()).unwrap_err().to_string();
        assert!(e.contains("lakebuild.toml:3: unknown field `laek`"), "{e}");
        assert!(e.contains("known keys: lake, rules, timezone"), "{e}");
        std::fs::write(dir.path().join(FILE), "timezone = \"Mars/Olympus\"\n")?;
        let e = load(dir.path(), Given::default()).unwrap_err().to_string();
        assert!(
            e.contains("lakebuild.toml:1: timezone 'Mars/Olympus' is not a time zone"),
            "{e}"
        );
        let e = load(
            dir.path(),
            Given {
                timezone: Some("nowhere".into()),
                ..Given::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("'nowhere' is not a time zone"), "{e}");
        Ok(())
    }
}
