fn main() {
    std::process::exit(lakebuild::cli::main());
}
