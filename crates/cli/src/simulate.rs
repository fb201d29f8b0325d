//! `atende simulate`: staffing and policy questions answered by the routing rules
//! themselves (see `atende_sim`).
//!
//! ```text
//! atende simulate mmn --erlangs 48 --agents 55 --aht-secs 180 [--patience-secs 120] [--arrivals 200000] [--seed 1] [--json]
//! atende simulate scenarios/example.toml [--json]
//! ```
//!
//! `mmn` is a subcommand; anything else in that position is a scenario path (clap's
//! `args_conflicts_with_subcommands`). A scenario file literally named `mmn` runs as `./mmn`.

use std::path::PathBuf;

use anyhow::Context;

/// Simulate a service: `mmn` for the M/M/N case, or a scenario file (TOML).
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SimulateArgs {
    #[command(subcommand)]
    pub command: Option<SimulateCommand>,
    /// Scenario file (TOML); see the atende-sim docs for the format.
    #[arg(required = true, value_name = "SCENARIO_FILE")]
    pub scenario: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum SimulateCommand {
    /// M/M/N (M/M/N+M with --patience-secs): least_loaded, capacity 1, Poisson arrivals,
    /// exponential handle times, compared with Erlang C (and Erlang A).
    Mmn(MmnArgs),
}

#[derive(Debug, clap::Args)]
pub struct MmnArgs {
    /// Offered load, in Erlangs (arrival rate × mean handle time).
    #[arg(long)]
    pub erlangs: f64,
    /// Number of agents, each with capacity 1.
    #[arg(long)]
    pub agents: u32,
    /// Mean handle time, seconds (exponential).
    #[arg(long = "aht-secs")]
    pub aht_secs: f64,
    /// Mean patience, seconds (exponential); without it nobody abandons.
    #[arg(long = "patience-secs")]
    pub patience_secs: Option<f64>,
    /// Arrivals measured (a tenth more, at least 1000, are simulated first as warm-up).
    #[arg(long, default_value_t = 200_000)]
    pub arrivals: u64,
    /// RNG seed; the same arguments and seed give the same numbers.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    match (args.command, args.scenario) {
        (Some(SimulateCommand::Mmn(m)), _) => {
            let report = atende_sim::run_mmn(m.erlangs, m.agents, m.aht_secs, m.patience_secs, m.arrivals, m.seed)
                .context("invalid M/M/N parameters")?;
            print(m.json || args.json, report.to_json(), report.to_table());
        }
        (None, Some(path)) => {
            let scenario = atende_sim::Scenario::from_file(&path)
                .with_context(|| format!("cannot use scenario {}", path.display()))?;
            let report = atende_sim::run(&scenario);
            print(args.json, report.to_json(), report.to_table());
        }
        (None, None) => anyhow::bail!("give a scenario file or `mmn`"),
    }
    Ok(())
}

fn print(json: bool, as_json: String, as_table: String) {
    if json {
        println!("{as_json}");
    } else {
        print!("{as_table}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        simulate: SimulateArgs,
    }

    #[test]
    fn mmn_parses_as_the_subcommand() {
        let cli = Cli::try_parse_from([
            "simulate",
            "mmn",
            "--erlangs",
            "48",
            "--agents",
            "55",
            "--aht-secs",
            "180",
            "--json",
        ])
        .unwrap();
        let Some(SimulateCommand::Mmn(m)) = cli.simulate.command else {
            panic!("not mmn")
        };
        assert_eq!((m.erlangs, m.agents, m.aht_secs, m.json), (48.0, 55, 180.0, true));
        assert_eq!(m.patience_secs, None);
    }

    #[test]
    fn any_other_word_is_a_scenario_path() {
        let cli = Cli::try_parse_from(["simulate", "scenarios/example.toml", "--json"]).unwrap();
        assert!(cli.simulate.command.is_none());
        assert_eq!(cli.simulate.scenario, Some(PathBuf::from("scenarios/example.toml")));
        assert!(cli.simulate.json);
    }

    #[test]
    fn nothing_at_all_is_an_error() {
        assert!(Cli::try_parse_from(["simulate"]).is_err());
        assert!(Cli::try_parse_from(["simulate", "mmn", "--agents", "5"]).is_err());
    }
}
