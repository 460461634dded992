// Log replay and data frames allocate many small objects across threads: mimalloc is
// markedly faster than the system allocator there (see docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // Invariant 7, same inputs ⇒ same bytes: polars runs a group-by of few groups on its
    // streaming engine, which merges per-thread partial float sums (AVG, float SUM) in the
    // order the threads finish, so a `sql` asset's averages changed in the last bit from
    // run to run. Its default hash aggregation sums each group in row order. Polars reads
    // this variable at every group-by.
    // SAFETY: set before any other thread of the process exists.
    unsafe { std::env::set_var("POLARS_NO_PARTITION", "1") };
    std::process::exit(lakebuild::cli::main());
}
