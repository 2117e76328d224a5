//! Reading finished spans back: arranged as trees (for the console exporter
//! and for assertions), and read from JSON-lines files.

#[cfg(feature = "serde")]
pub(crate) mod read_json;
pub(crate) mod terminal;
pub(crate) mod tree;
