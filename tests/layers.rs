//! The dependency rule of docs/ARCHITECTURE.md. The core is its own crate
//! (`crates/core`), so the compiler keeps it below everything; inside the `lakebuild`
//! crate this checks the source text: every `crate::` path in a layer's non-test code
//! names only that layer or one below it (`crate::core` is the core crate), and
//! no two modules import each other, directly or around a cycle. Test modules (a
//! `#[cfg(test)]` item, or a `tests.rs` file) may also use the composition root
//! (`crate::registry`); the CLI composes the program, so it may too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each layer and the layers it may use (besides itself).
const LAYERS: &[(&str, &[&str])] = &[
    ("core", &[]),
    ("clock", &["core"]),
    ("lake", &["core", "clock"]),
    ("op", &["core", "clock", "lake"]),
    ("ops", &["core", "clock", "lake", "op"]),
    ("engine", &["core", "clock", "lake", "op"]),
    (
        "jp_equity",
        &["core", "clock", "lake", "op", "ops", "engine"],
    ),
    ("query", &["core", "clock", "lake", "op", "engine"]),
    ("mlflow", &["core", "clock", "lake", "op", "engine"]),
    ("tune", &["core", "clock", "lake", "op", "engine", "mlflow"]),
    (
        "orchestration",
        &["core", "clock", "lake", "op", "engine", "query", "mlflow"],
    ),
    (
        "web",
        &[
            "core",
            "clock",
            "lake",
            "op",
            "ops",
            "engine",
            "jp_equity",
            "query",
            "mlflow",
            "tune",
            "orchestration",
        ],
    ),
    (
        "cli",
        &[
            "core",
            "clock",
            "lake",
            "op",
            "ops",
            "engine",
            "jp_equity",
            "query",
            "mlflow",
            "tune",
            "orchestration",
            "web",
            "lib",
        ],
    ),
];

/// Items exported at the crate root by a layer (macros), and the layer they belong to.
const ROOT_ITEMS: &[(&str, &str)] = &[("op_code_version", "op"), ("registry", "lib")];

/// A file of tests only (`mod tests;` declared under `#[cfg(test)]`).
fn is_test_file(f: &Path) -> bool {
    f.file_name().is_some_and(|n| n == "tests.rs")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The text with `#[cfg(test)]` items (a `mod tests { … }` block or one item) removed, and
/// comments blanked, so only the code that ships is checked.
fn shipped_code(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut lines = src.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            // Skip the next item: up to its closing brace at the same depth.
            let mut depth = 0i32;
            let mut opened = false;
            for l in lines.by_ref() {
                depth += l.matches('{').count() as i32 - l.matches('}').count() as i32;
                opened |= l.contains('{');
                if (opened && depth <= 0) || (!opened && l.trim_end().ends_with(';')) {
                    break;
                }
            }
            continue;
        }
        let code = match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// The module paths (`a::b`) a file's code names through `crate::`, including the
/// first level of `crate::{a, b::c}` groups.
fn crate_paths(code: &str) -> Vec<String> {
    prefixed_paths(code, "crate::")
}

/// The paths a file's code names after `prefix` (`crate::` or `super::`).
fn prefixed_paths(code: &str, prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue; // e.g. `$crate::` or `lakebuild_crate::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let p: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                if !p.is_empty() {
                    found.push(p);
                }
            }
        } else {
            let p: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            found.push(p.trim_end_matches(':').to_string());
        }
    }
    found
}

/// `src/a/b.rs` → ["a", "b"]; `src/a/mod.rs` → ["a"]; `src/lib.rs` → [].
fn module_of(src_dir: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src_dir).unwrap_or(file);
    let mut parts: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts
        .last()
        .is_some_and(|l| l == "mod" || l == "lib" || l == "main")
    {
        parts.pop();
    }
    parts
}

fn layer_of_path(path: &str) -> String {
    let first = path.split("::").next().unwrap_or_default();
    ROOT_ITEMS
        .iter()
        .find(|(item, _)| *item == first)
        .map(|(_, layer)| layer.to_string())
        .unwrap_or_else(|| first.to_string())
}

/// Violations of the layer rule in the tree under `src_dir`, as "file: names crate::x".
fn layer_violations(src_dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src_dir, &mut files);
    files.sort();
    let mut bad = Vec::new();
    for f in &files {
        let module = module_of(src_dir, f);
        let Some(layer) = module.first() else {
            continue; // lib.rs and main.rs compose the program
        };
        if is_test_file(f) {
            continue;
        }
        let Some((_, allowed)) = LAYERS.iter().find(|(l, _)| l == layer) else {
            bad.push(format!(
                "{}: top-level module '{layer}' belongs to no layer: add it to LAYERS and docs/ARCHITECTURE.md",
                f.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for path in crate_paths(&shipped_code(&text)) {
            let target = layer_of_path(&path);
            if &target != layer && !allowed.contains(&target.as_str()) {
                bad.push(format!(
                    "{}: layer '{layer}' names crate::{path} (layer '{target}'), which is above it",
                    f.display()
                ));
            }
        }
    }
    bad
}

/// Import cycles between modules (files), each as "a -> b -> … -> a".
fn module_cycles(src_dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src_dir, &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| module_of(src_dir, f).join("::"))
        .collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files.iter().filter(|f| !is_test_file(f)) {
        let from = module_of(src_dir, f).join("::");
        let text = std::fs::read_to_string(f).unwrap_or_default();
        let code = shipped_code(&text);
        // `super::x` names a sibling module: resolve it against this module's parent.
        let parent = {
            let mut m = module_of(src_dir, f);
            m.pop();
            m.join("::")
        };
        let siblings = prefixed_paths(&code, "super::").into_iter().map(|p| {
            if parent.is_empty() {
                p
            } else {
                format!("{parent}::{p}")
            }
        });
        for path in crate_paths(&code).into_iter().chain(siblings) {
            // The longest module prefix of the path.
            let parts: Vec<&str> = path.split("::").collect();
            let to = (1..=parts.len())
                .rev()
                .map(|n| parts[..n].join("::"))
                .find(|m| modules.contains(m));
            if let Some(to) = to
                && to != from
                && !from.starts_with(&format!("{to}::"))
                && !to.starts_with(&format!("{from}::"))
            {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    let mut cycles = Vec::new();
    let mut reported: BTreeSet<BTreeSet<String>> = BTreeSet::new();
    for start in edges.keys() {
        // Depth-first search for a path back to `start`.
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((node, path)) = stack.pop() {
            for next in edges.get(&node).into_iter().flatten() {
                if next == start {
                    let set: BTreeSet<String> = path.iter().cloned().collect();
                    if reported.insert(set) {
                        cycles.push(format!("{} -> {start}", path.join(" -> ")));
                    }
                } else if seen.insert(next.clone()) {
                    let mut p = path.clone();
                    p.push(next.clone());
                    stack.push((next.clone(), p));
                }
            }
        }
    }
    cycles
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_import_runs_up_a_layer() {
    let bad = layer_violations(&src_dir());
    assert!(bad.is_empty(), "layer violations:\n{}", bad.join("\n"));
}

#[test]
fn no_module_imports_around_a_cycle() {
    let cycles = module_cycles(&src_dir());
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

/// The check itself: a deliberately bad tree fails it, and test code is exempt.
#[test]
fn a_bad_import_is_caught() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path();
    let write = |rel: &str, text: &str| {
        let p = src.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    };
    write(
        "core/rule.rs",
        "use crate::core::partition::Window;\nuse crate::{lake::log, core::plan};\n",
    );
    write(
        "core/partition.rs",
        "// crate::engine in a comment is fine\n#[cfg(test)]\nmod tests {\n    use crate::engine::build;\n}\n",
    );
    write("lake/log.rs", "use crate::core::rule::Rule;\n");
    write("core/plan.rs", "use crate::core::rule::Rule;\n");
    let bad = layer_violations(src);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(
        bad[0].contains("core/rule.rs: layer 'core' names crate::lake::log"),
        "{bad:?}"
    );
    // core::rule <-> core::plan, and core::rule -> lake::log -> core::rule.
    let cycles = module_cycles(src);
    assert_eq!(cycles.len(), 2, "{cycles:?}");
    assert!(
        cycles
            .iter()
            .any(|c| c.contains("core::plan") && c.contains("core::rule")),
        "{cycles:?}"
    );
    assert!(
        cycles
            .iter()
            .any(|c| c.contains("lake::log") && c.contains("core::rule")),
        "{cycles:?}"
    );
}
