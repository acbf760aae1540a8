//! One module per subcommand.

pub mod checkpoints;
pub mod completions;
pub mod enrich;
pub mod epss;
pub mod export;
pub mod gen;
pub mod get;
pub mod man;
pub mod migrate;
pub mod rollback;
pub mod runs;
pub mod statements;
pub mod stats;
