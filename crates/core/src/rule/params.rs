//! A rule's `[params]`, typed by its op's declared params (an unknown param is an error,
//! never ignored), and the source files it names (`sources`, and the files its op reads),
//! which must stay inside the project.

use super::raw::RawRule;
use super::{Errors, outside_project, toml_to_json};
use crate::catalog::{OpSpec, ParamType};
use serde_json::Value;

/// The params as JSON (what keys hash), checked against `op` when it is known.
pub(super) fn parse(
    raw: &RawRule,
    op: Option<&dyn OpSpec>,
    op_name: &str,
    errs: &mut Errors,
) -> Value {
    let mut params = serde_json::Map::new();
    if let Some(op) = op {
        let specs = op.params();
        for (k, v) in &raw.params {
            match specs.iter().find(|s| s.name == k) {
                None => errs.at(
                    v.span().start,
                    format!(
                        "op '{op_name}' has no param '{k}': known params are {}",
                        specs.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
                    ),
                ),
                Some(spec) if !type_matches(spec.ty, v.get_ref()) => errs.at(
                    v.span().start,
                    format!(
                        "param '{k}' must be {} (got {})",
                        spec.ty.describe(),
                        v.get_ref().type_str()
                    ),
                ),
                Some(_) => {}
            }
        }
        for spec in specs.iter().filter(|s| s.required) {
            if !raw.params.contains_key(spec.name) {
                errs.at(
                    raw.op.span().start,
                    format!(
                        "op '{op_name}' needs param '{}' ({}): add it under [params]",
                        spec.name, spec.doc
                    ),
                );
            }
        }
    }
    for (k, v) in &raw.params {
        params.insert(k.clone(), toml_to_json(v.get_ref()));
    }
    let params = Value::Object(params);

    // Source files (the rule's own and those its op reads) stay inside the project.
    for s in &raw.sources {
        if outside_project(s.get_ref()) {
            errs.at(
                s.span().start,
                format!(
                    "source '{}' is outside the project: sources are globs relative to the project root (e.g. scripts/*.py); copy or link the files into the project",
                    s.get_ref()
                ),
            );
        }
    }
    if let Some(op) = op {
        for g in op
            .source_globs(&params)
            .iter()
            .filter(|g| outside_project(g))
        {
            let at = raw
                .params
                .values()
                .find(|v| v.get_ref().to_string().contains(g.as_str()))
                .map_or(raw.op.span().start, |v| v.span().start);
            errs.at(
                at,
                format!(
                    "'{g}' is outside the project: op '{op_name}' reads files by globs relative to the project root; copy or link the files into the project"
                ),
            );
        }
    }

    params
}

fn type_matches(ty: ParamType, v: &toml::Value) -> bool {
    match ty {
        ParamType::Str => v.is_str(),
        ParamType::Int => v.is_integer(),
        ParamType::Float => v.is_float() || v.is_integer(),
        ParamType::Bool => v.is_bool(),
        ParamType::StrList => v.as_array().is_some_and(|a| a.iter().all(|x| x.is_str())),
        ParamType::StrOrStrList => {
            v.is_str() || v.as_array().is_some_and(|a| a.iter().all(|x| x.is_str()))
        }
        ParamType::Table => v.is_table(),
        ParamType::Any => true,
    }
}
