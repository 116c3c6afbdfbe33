//! The live views' arguments: `top`.

use super::{TargetFlags, parse_duration};
use clap::Args as ClapArgs;
use std::time::Duration;

#[derive(ClapArgs, Debug)]
pub struct TopArgs {
    #[command(flatten)]
    pub how: TargetFlags,
    /// Only these nodes (names or globs), or one expression with a target flag.
    pub target: Vec<String>,
    /// How often the figures are fetched again.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Print one table (or, with -o json, one JSON array of rows) and exit.
    #[arg(long)]
    pub once: bool,
}
