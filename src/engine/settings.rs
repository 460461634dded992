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
    let lake = folder("lake", given.lake, raw.lake, &path)?;
    let rules = folder("rules", given.rules, raw.rules, &path)?;
    Ok(Settings {
        lake: lake.unwrap_or_else(|| PathBuf::from("lake")),
        rules: rules.unwrap_or_else(|| PathBuf::from("rules")),
        timezone,
    })
}

/// The folder setting `name` (`lake` or `rules`): the flag's (or its environment
/// variable's) value, else the file's. A folder, never a URL: `s3://bucket/demo` taken as a
/// path would build "successfully" into a local folder named `s3:`, so any `scheme://`
/// other than `file://` is refused, naming where it came from.
fn folder(
    name: &str,
    given: Option<PathBuf>,
    file: Option<String>,
    file_path: &Path,
) -> Result<Option<PathBuf>> {
    let (value, from) = match (given, file) {
        (Some(g), _) => (
            g,
            format!("--{name} / LAKEBUILD_{}", name.to_ascii_uppercase()),
        ),
        (None, Some(f)) => (
            PathBuf::from(f),
            format!("{}'s `{name}`", file_path.display()),
        ),
        (None, None) => return Ok(None),
    };
    let text = value.to_string_lossy();
    let Some((scheme, rest)) = text.split_once("://") else {
        return Ok(Some(value));
    };
    let is_scheme = !scheme.is_empty()
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c));
    if !is_scheme {
        return Ok(Some(value));
    }
    if scheme.eq_ignore_ascii_case("file") {
        return Ok(Some(PathBuf::from(rest)));
    }
    Err(UsageError(format!(
        "{from} is '{text}': the {name} must be a local folder (a path, or file://PATH); \
         '{scheme}://' URLs are not supported, and lakebuild will not take one for a folder \
         name. Give a path, e.g. --{name} {name}"
    ))
    .into())
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
    fn a_url_is_refused_as_a_folder_naming_where_it_came_from() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let given = Given {
            lake: Some("s3://bucket/demo".into()),
            ..Given::default()
        };
        let e = format!("{:#}", load(dir.path(), given).unwrap_err());
        assert!(
            e.contains("--lake / LAKEBUILD_LAKE is 's3://bucket/demo'"),
            "{e}"
        );
        assert!(e.contains("'s3://' URLs are not supported"), "{e}");
        std::fs::write(dir.path().join(FILE), "rules = \"gs://b/rules\"\n")?;
        let e = format!("{:#}", load(dir.path(), Given::default()).unwrap_err());
        assert!(
            e.contains("lakebuild.toml's `rules` is 'gs://b/rules'"),
            "{e}"
        );
        // file:// is a path; so is a folder name with a colon but no scheme.
        let given = Given {
            lake: Some("file:///tmp/l".into()),
            rules: Some("a b://c".into()),
            ..Given::default()
        };
        std::fs::remove_file(dir.path().join(FILE))?;
        let s = load(dir.path(), given)?;
        assert_eq!(s.lake, PathBuf::from("/tmp/l"));
        assert_eq!(s.rules, PathBuf::from("a b://c"));
        assert!(!dir.path().join("s3:").exists());
        Ok(())
    }

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
