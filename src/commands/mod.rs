//! One module per subcommand; each turns parsed options into output or a run.

pub mod completions;
pub mod explain;
pub mod graph;
pub mod list;
pub mod plan;
pub mod run;

/// Write a command's output to stdout. A reader that went away (`irun list | head -1`) is not an error: irun stops
/// writing and exits 0, as `ls | head` does; any other failure to write is.
pub fn print(text: &str) -> Result<(), crate::exit::Failure> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(crate::exit::Failure::Internal(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}
