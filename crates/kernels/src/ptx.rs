//! The kernels' PTX, compiled from kernels/*.cu by `kernels/build-ptx.sh` (nvcc 13.0,
//! compute_80) and checked into kernels/ptx/, embedded here so that the binary carries
//! them: no build ever silently lacks the kernels, and a user needs only the driver.
//! CI regenerates the PTX and fails if it differs from what is checked in.

/// (module, PTX text), one per kernel file.
pub const MODULES: &[(&str, &str)] = &[
    ("layers", include_str!("../../../kernels/ptx/layers.ptx")),
    ("loss", include_str!("../../../kernels/ptx/loss.ptx")),
    ("optim", include_str!("../../../kernels/ptx/optim.ptx")),
    ("heads", include_str!("../../../kernels/ptx/heads.ptx")),
    ("network", include_str!("../../../kernels/ptx/network.ptx")),
    ("gat", include_str!("../../../kernels/ptx/gat.ptx")),
    ("grn", include_str!("../../../kernels/ptx/grn.ptx")),
    (
        "attention",
        include_str!("../../../kernels/ptx/attention.ptx"),
    ),
    ("lstm", include_str!("../../../kernels/ptx/lstm.ptx")),
    ("fan", include_str!("../../../kernels/ptx/fan.ptx")),
];

/// The entry points (`.visible .entry <name>(`) of a PTX text.
pub fn entry_points(ptx: &str) -> Vec<String> {
    ptx.lines()
        .filter_map(|l| l.trim().strip_prefix(".visible .entry "))
        .map(|rest| rest.split('(').next().unwrap_or("").trim().to_string())
        .filter(|n| !n.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No kernel file is left out of the binary: every `kernels/*.cu` has its PTX here.
    #[test]
    fn every_kernel_file_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../kernels");
        let files = std::fs::read_dir(&dir).expect("kernels/ is readable");
        let mut names: Vec<String> = files
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".cu")
                    .map(str::to_string)
            })
            .collect();
        names.sort();
        let mut embedded: Vec<String> = MODULES.iter().map(|(m, _)| m.to_string()).collect();
        embedded.sort();
        assert_eq!(names, embedded, "kernels/*.cu and ptx::MODULES differ");
    }

    #[test]
    fn every_module_has_both_precisions_of_its_kernels() {
        for (module, text) in MODULES {
            let names = entry_points(text);
            assert!(!names.is_empty(), "{module}: no entry points");
            for n in names.iter().filter_map(|n| n.strip_suffix("_f32")) {
                assert!(
                    names.iter().any(|m| m == &format!("{n}_f16")),
                    "{module}: {n}_f32 without {n}_f16"
                );
            }
        }
    }
}
