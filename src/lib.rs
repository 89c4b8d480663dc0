pub mod config;
pub mod diagnostic;
pub mod graph;
pub mod events;
pub mod guard;
pub mod supervisor;
pub mod output;
pub mod probe;
