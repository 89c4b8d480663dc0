//! One module per subcommand; each turns parsed options into output or a run.

pub mod explain;
pub mod graph;
pub mod list;
pub mod run;
