//! One module per subcommand.

pub mod enrich;
pub mod epss;
pub mod export;
pub mod gen;
pub mod get;
pub mod runs;
pub mod statements;
