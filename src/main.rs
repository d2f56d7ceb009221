//! The `kraft` binary: see `kraft --help` and the `cli` module.

fn main() {
    std::process::exit(kraft::cli::run());
}
