//! irun's documented exit codes, and the failures that end a command before or outside a run.

use crate::diagnostic::Diagnostic;

pub(crate) const PASSED: i32 = 0;
pub(crate) const FAILED: i32 = 1;
pub(crate) const USAGE: i32 = 2;
// A run interrupted by a signal exits 128 + its number: 130 (SIGINT), 143 (SIGTERM), 129 (SIGHUP).

/// Why a command could not do its job.
pub(crate) enum Failure {
    /// Bad command line or Irun.toml: nothing was started.
    Usage(Diagnostic),
    /// irun itself could not do its job (no runtime, no guard process).
    Internal(String),
}

impl From<Diagnostic> for Failure {
    fn from(d: Diagnostic) -> Self {
        Failure::Usage(d)
    }
}
