//! The `umbra` binary: a thin shell over [`umbra::runtime::cli`].
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    umbra::runtime::cli::main()
}
