//! With the `shim` feature: compiles every `kernels/*.cu` as C++20 against the CPU shim
//! (warnings are errors, as under nvcc in CI) into one static library, with a generated
//! registry that references every file so the linker keeps all kernels. Always: the
//! embedded PTX's source files are watched, so editing a kernel rebuilds.

use std::path::{Path, PathBuf};

fn main() {
    // Read at run time, not with env!: the compiled build script is shared by every
    // checkout that uses the same target directory (CI reuses one across clones).
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest).join("../../kernels");
    // Without `..` in the paths the objects record (ThreadSanitizer's suppressions match
    // on file names too).
    let root = std::fs::canonicalize(&root).unwrap_or(root);
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "cu"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    for f in ["common.cuh", "shim/cuda_shim.h", "shim/launch.cpp"] {
        println!("cargo:rerun-if-changed={}", root.join(f).display());
    }
    println!("cargo:rerun-if-env-changed=LAKEBUILD_SHIM_TSAN");
    if std::env::var_os("CARGO_FEATURE_SHIM").is_none() {
        return;
    }
    // LAKEBUILD_SHIM_TSAN=1: the kernels and the shim under ThreadSanitizer, which
    // reports any two threads of a block touching one address without a barrier between
    // (a missing __syncthreads). The Rust side is not instrumented; only the kernels are.
    let tsan = std::env::var("LAKEBUILD_SHIM_TSAN").is_ok_and(|v| v == "1");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let names: Vec<String> = files
        .iter()
        .filter_map(|f| f.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    let registry = out.join("registry.cpp");
    let mut text = String::new();
    for n in &names {
        text.push_str(&format!("extern \"C\" void lb_shim_file_{n}();\n"));
    }
    text.push_str("extern \"C\" void lb_shim_link_all() {\n");
    for n in &names {
        text.push_str(&format!("  lb_shim_file_{n}();\n"));
    }
    text.push_str("}\n");
    std::fs::write(&registry, text).expect("write the shim registry");

    let shim = root.join("shim/cuda_shim.h");
    let base = || {
        let mut b = cc::Build::new();
        b.cpp(true)
            .std("c++20")
            .opt_level(2)
            .debug(false)
            .warnings(true)
            .extra_warnings(true)
            .warnings_into_errors(true)
            .define("LB_SHIM", None)
            .include(&root)
            .cargo_metadata(false);
        if tsan {
            b.flag("-fsanitize=thread").flag("-g").opt_level(1);
        }
        b
    };
    let mut objects = Vec::new();
    for (f, n) in files.iter().zip(&names) {
        // One build per file: `-x c++` (g++ does not know `.cu`) and the file's name
        // for its lb_shim_file_<name>.
        let mut b = base();
        b.define("LB_SHIM_FILE", n.as_str())
            .flag("-include")
            .flag(shim.to_string_lossy().as_ref())
            .flag("-x")
            .flag("c++")
            .file(f);
        objects.extend(b.compile_intermediates());
    }
    let mut lib = base();
    lib.file(root.join("shim/launch.cpp"))
        .file(&registry)
        .objects(objects)
        .cargo_metadata(true)
        .cpp_link_stdlib("stdc++")
        .compile("lbshim");
    if tsan {
        println!("cargo:rustc-link-lib=dylib=tsan");
    }
}
