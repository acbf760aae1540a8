//! `backfill completions`: a shell completion script on stdout, generated
//! from the same clap definition as the parser, so it never drifts.

use std::io::Write;
use std::process::ExitCode;

use clap_complete::Shell;

/// Ends `--help`: what people type.
const EXAMPLES: &str = "\
Examples:
  backfill completions bash > ~/.local/share/bash-completion/completions/backfill
  backfill completions zsh > ~/.zfunc/_backfill
  backfill completions fish > ~/.config/fish/completions/backfill.fish";

/// Arguments of `backfill completions`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The shell to write the script for.
    #[arg(value_enum)]
    shell: Shell,
}

/// Runs the subcommand on the whole command line definition `cli`.
pub fn run(args: Args, mut cli: clap::Command) -> anyhow::Result<ExitCode> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    clap_complete::generate(args.shell, &mut cli, "backfill", &mut out);
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
