//! One module per subcommand.

pub mod get;
pub mod runs;
pub mod statements;
