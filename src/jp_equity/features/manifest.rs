//! The feature manifest: the list of columns a features asset holds (name, role, family,
//! dtype, rows of history), stored with the asset's Delta table as the table property
//! [`PROPERTY`]. A model records the manifest it was trained on and refuses data whose
//! manifest differs, naming the difference (never a silent resize).

use super::{CS_Z, Family, FeatureDef, catalog, compute::output_columns};
use anyhow::{Context, Result, anyhow};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The Delta table property that holds the manifest (JSON).
pub const PROPERTY: &str = "lakebuild.feature_manifest";
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Code, Date.
    Key,
    /// Descriptive columns (sector codes).
    Label,
    /// A raw feature value.
    Raw,
    /// A cross-sectional z-score of a raw feature.
    CsZ,
    /// A family's validity flag.
    Valid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnSpec {
    pub name: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    pub dtype: String,
    /// Rows of history the column reads, today included (0 for keys and labels).
    pub rows: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub families: Vec<String>,
    pub columns: Vec<ColumnSpec>,
}

impl Manifest {
    /// The manifest of the features of `families`.
    pub fn of(families: &[Family]) -> Manifest {
        let defs = catalog(families);
        let def = |n: &str| defs.iter().find(|d| d.name == n);
        let columns = output_columns(&defs, families)
            .into_iter()
            .map(|name| {
                let spec = |role, family: Option<Family>, dtype: &str, rows| ColumnSpec {
                    name: name.clone(),
                    role,
                    family: family.map(|f| f.name().to_string()),
                    dtype: dtype.to_string(),
                    rows,
                };
                match name.as_str() {
                    "Code" => spec(Role::Key, None, "str", 0),
                    "Date" => spec(Role::Key, None, "date", 0),
                    "S33" | "S17" => spec(Role::Label, None, "str", 0),
                    n if n.starts_with("valid_") => {
                        let fam = Family::parse(&n["valid_".len()..]);
                        let rows = defs
                            .iter()
                            .filter(|d| Some(d.family) == fam)
                            .map(|d| d.rows)
                            .max()
                            .unwrap_or(0);
                        spec(Role::Valid, fam, "bool", rows)
                    }
                    n => match n.strip_suffix(CS_Z).and_then(def) {
                        Some(d) => spec(Role::CsZ, Some(d.family), "f32", d.rows),
                        None => {
                            let d: Option<&FeatureDef> = def(n);
                            spec(
                                Role::Raw,
                                d.map(|d| d.family),
                                "f32",
                                d.map(|d| d.rows).unwrap_or(0),
                            )
                        }
                    },
                }
            })
            .collect();
        Manifest {
            format: FORMAT,
            families: families.iter().map(|f| f.name().to_string()).collect(),
            columns,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(s: &str) -> Result<Manifest> {
        serde_json::from_str(s).context("the feature manifest is not valid JSON of format 1")
    }

    /// Reads the manifest stored with the features table in `table_dir`.
    pub fn read(table_dir: &Path) -> Result<Manifest> {
        let text = crate::lake::table::property(table_dir, PROPERTY)?.ok_or_else(|| {
            anyhow!(
                "{} has no feature manifest (table property {PROPERTY}): is it a features asset? Rebuild it with op = \"features\"",
                table_dir.display()
            )
        })?;
        Manifest::from_json(&text)
    }

    /// The model-facing columns: the z-scores, in order.
    pub fn model_inputs(&self) -> Vec<&ColumnSpec> {
        self.columns
            .iter()
            .filter(|c| c.role == Role::CsZ)
            .collect()
    }

    /// Ok when `data` has exactly this manifest's columns; otherwise an error that names
    /// every difference (missing, unexpected, changed dtype or history, reordered).
    pub fn check_same(&self, data: &Manifest) -> Result<(), String> {
        let mut diffs = Vec::new();
        for c in &self.columns {
            match data.columns.iter().find(|d| d.name == c.name) {
                None => diffs.push(format!("missing column {} ({:?})", c.name, c.role)),
                Some(d) if d != c => diffs.push(format!(
                    "column {} changed: {} {:?} {} rows → {} {:?} {} rows",
                    c.name, c.dtype, c.role, c.rows, d.dtype, d.role, d.rows
                )),
                Some(_) => {}
            }
        }
        for d in &data.columns {
            if !self.columns.iter().any(|c| c.name == d.name) {
                diffs.push(format!("unexpected column {} ({:?})", d.name, d.role));
            }
        }
        if diffs.is_empty() {
            let order = |m: &Manifest| m.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
            if order(self) != order(data) {
                diffs.push("the same columns in a different order".into());
            }
        }
        if diffs.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "the data's feature list differs from the one the model was trained on: {}",
                diffs.join("; ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trips_and_names_differences() {
        let all = Manifest::of(&Family::ALL);
        assert_eq!(Manifest::from_json(&all.to_json()).unwrap(), all);
        assert!(all.check_same(&all).is_ok());
        assert!(all.model_inputs().iter().all(|c| c.name.ends_with(CS_Z)));

        let fewer = Manifest::of(&[Family::Returns, Family::Volatility]);
        let e = all.check_same(&fewer).unwrap_err();
        assert!(e.contains("missing column rsi_14"), "{e}");
        assert!(e.contains("missing column valid_sector"), "{e}");
        let e = fewer.check_same(&all).unwrap_err();
        assert!(e.contains("unexpected column macd_cs_z"), "{e}");

        let mut retyped = all.clone();
        retyped.columns[10].dtype = "f64".into();
        let e = all.check_same(&retyped).unwrap_err();
        assert!(
            e.contains(&format!("column {} changed", all.columns[10].name)),
            "{e}"
        );
    }
}
