//! Link options of the `lakebuild` binary (nothing else is built here).
//!
//! Release builds on x86-64 Linux fold identical functions at link time (`--icf=all`):
//! generic code that several dependencies instantiate the same way is kept once, ~3 MB of
//! the binary. Rust's default linker there is LLD, which supports it; with a linker
//! configured by the user (`RUSTC_LINKER`, `-C linker…` or `-fuse-ld` in the flags) the
//! option is left out, since GNU ld does not know it.

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    // Release-like and without debug info: not `--profile profiling`, whose symbols a
    // profiler should see unfolded.
    let release = env::var("PROFILE").is_ok_and(|p| p == "release")
        && env::var("DEBUG").is_ok_and(|d| d == "false" || d == "0");
    let target = env::var("TARGET").unwrap_or_default();
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let own_linker = env::var_os("RUSTC_LINKER").is_some()
        || flags.split('\x1f').any(|f| {
            f.contains("linker") || f.contains("fuse-ld") || f.contains("link-self-contained")
        });
    if release && target == "x86_64-unknown-linux-gnu" && !own_linker {
        println!("cargo:rustc-link-arg-bins=-Wl,--icf=all");
    }
}
