// Log replay and data frames allocate many small objects across threads: mimalloc is
// markedly faster than the system allocator there (see docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(lakebuild::cli::main());
}
