//! The one error of setting telemetry up, shared by the builder and the
//! exporters it builds.

use std::fmt;

/// A setting that could not be used, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupError {
    /// The environment variable, or the builder method, that held the value.
    pub setting: String,
    /// The value as given.
    pub value: String,
    /// What is wrong with it, and what would be accepted.
    pub reason: String,
}

impl SetupError {
    pub(crate) fn new(setting: &str, value: &str, reason: impl Into<String>) -> SetupError {
        SetupError {
            setting: setting.to_owned(),
            value: value.to_owned(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?}: {}", self.setting, self.value, self.reason)
    }
}

impl std::error::Error for SetupError {}
