//! podseal's generators: `cargo run -p xtask -- TASK`.
//!
//! - `make-testkit`: writes the capsule testkit in `crates/core/tests/testkit/`
//!   (see [`make_testkit`]).
//! - `make-fuzz-seeds`: writes the fuzz targets' seed corpora in
//!   `fuzz/corpus/` (see [`make_fuzz_seeds`]).

mod make_fuzz_seeds;
mod make_testkit;

use std::process::ExitCode;

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("make-testkit") => {
            make_testkit::run();
            ExitCode::SUCCESS
        }
        Some("make-fuzz-seeds") => {
            make_fuzz_seeds::run();
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("error: usage: cargo run -p xtask -- make-testkit | make-fuzz-seeds");
            ExitCode::from(2)
        }
    }
}
