//! GitHub Actions' workflow commands: an error annotation per failed task (output groups are in [`super::lines`]).

use crate::events::{Outcome, TaskName};
use crate::report::text;

/// A GitHub Actions error annotation for a failed task.
pub(super) fn gh_error(task: &TaskName, outcome: &Outcome) -> String {
    let title = gh_escape(&format!("irun: task {task} failed"), true);
    let message = gh_escape(&text::detail(outcome).unwrap_or_else(|| text::label(outcome).to_string()), false);
    format!("::error title={title}::{message}\n")
}

/// Escape text for a GitHub Actions workflow command (a property value if `property`).
pub(super) fn gh_escape(s: &str, property: bool) -> String {
    let s = s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A");
    if property { s.replace(':', "%3A").replace(',', "%2C") } else { s }
}
