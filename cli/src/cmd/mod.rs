//! One module per subcommand.

pub mod export;
pub mod get;
pub mod runs;
pub mod statements;
