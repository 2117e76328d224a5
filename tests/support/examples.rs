//! The path of an example's binary, built by `cargo build --examples`.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

/// `target/debug/examples/<name>`; panics with the command to run if it is missing.
pub fn example_binary(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let binary = target.join("debug/examples").join(name);
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build --examples` first",
        binary.display()
    );
    binary
}
