//! What the viewer's test files share: running the viewer, a scratch folder,
//! an error for the workloads to fail with.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::process::Command;

pub const VIEWER: &str = env!("CARGO_BIN_EXE_workflow-otel-view");

/// Runs the viewer, which must succeed: its stdout and stderr.
pub fn view(arguments: &[&str]) -> (String, String) {
    let output = Command::new(VIEWER).args(arguments).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// An empty folder of this test process's own.
pub fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("workflow-otel-view-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[derive(Debug)]
pub struct Declined;

impl std::fmt::Display for Declined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "card declined")
    }
}
