//! Parsing one rule file: the TOML read with positions, the op resolved through the
//! catalog (a choice such as `market` first), then each section validated by its own
//! module, every error collected with its file and line.

use super::raw::RawRule;
use super::{Errors, Rule, checks, inputs, line_of, params, policies, tune, valid_asset_name};
use crate::catalog::Catalog;
use std::path::Path;

/// Parses and validates one rule file's text. `known_assets` lets inputs be checked;
/// `asset` comes from the file name.
pub fn parse_rule(
    file: &Path,
    src: &str,
    asset: &str,
    known_assets: &dyn Fn(&str) -> bool,
    catalog: &dyn Catalog,
) -> Result<Rule, Vec<String>> {
    let mut errs = Errors {
        file,
        src,
        list: Vec::new(),
    };
    if !valid_asset_name(asset) {
        errs.list.push(format!(
            "{}: '{asset}' is not a valid asset name: rename the file to match [a-z][a-z0-9_]* (e.g. '{}.toml')",
            file.display(),
            asset.to_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        ));
    }
    let mut raw: RawRule = match toml::from_str(src) {
        Ok(r) => r,
        Err(e) => {
            let line = e.span().map(|s| line_of(src, s.start)).unwrap_or(1);
            let msg = e.message().trim().to_string();
            let hint = if msg.contains("unknown field") {
                " (allowed keys: op, partitioned, inputs, params, sources, checks, retry, sla, dates, mlflow, promotion, tune, key_columns, date_column, description)"
            } else {
                ""
            };
            errs.list
                .push(format!("{}:{}: {}{}", file.display(), line, msg, hint));
            return Err(errs.list);
        }
    };

    let mut op_name = raw.op.get_ref().clone();
    if let Some(choice) = catalog.choice(&op_name) {
        match choice.choose(&mut raw.params) {
            Ok(chosen) => op_name = chosen.to_string(),
            Err((at, msg)) => errs.at(at, msg),
        }
    }
    let op = catalog.op(&op_name);
    if op.is_none() {
        let choices: String = catalog
            .choices()
            .iter()
            .map(|c| format!(", or {} ({})", c.name(), c.describe()))
            .collect();
        errs.at(
            raw.op.span().start,
            format!(
                "unknown op '{op_name}': use one of {}{choices}",
                catalog.op_names().join(", ")
            ),
        );
    }

    let daily = match &raw.partitioned {
        None => false,
        Some(p) if p.get_ref() == "daily" => true,
        Some(p) => {
            errs.at(
                p.span().start,
                format!(
                    "partitioned = \"{}\" is not supported: use \"daily\" or remove the key",
                    p.get_ref()
                ),
            );
            false
        }
    };

    let inputs = inputs::parse(&raw.inputs, asset, daily, known_assets, src, &mut errs);
    let params = params::parse(&raw, op, &op_name, &mut errs);
    let checks = checks::parse(&raw.checks, catalog, &mut errs);
    let retry = policies::retry(raw.retry.as_ref(), &mut errs);
    let dates = policies::dates(raw.dates.as_ref(), daily, catalog, &mut errs);
    let sla = policies::sla(raw.sla.as_ref(), daily, &mut errs);
    let tracking = policies::tracking(raw.mlflow.as_ref(), &mut errs);
    let promotion = policies::promotion(raw.promotion.as_ref(), known_assets, &mut errs);
    let tune = tune::parse(raw.tune.as_ref(), op, &op_name, &mut errs);
    if !errs.list.is_empty() {
        return Err(errs.list);
    }
    Ok(Rule {
        asset: asset.to_string(),
        file: file.to_path_buf(),
        op: op_name,
        daily,
        inputs,
        params,
        sources: raw.sources.iter().map(|s| s.get_ref().clone()).collect(),
        checks,
        retry,
        sla,
        tracking,
        promotion,
        tune,
        dates,
        key_columns: raw.key_columns,
        date_column: raw.date_column.unwrap_or_else(|| "Date".to_string()),
        description: raw.description,
    })
}
