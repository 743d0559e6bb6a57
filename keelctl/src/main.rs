//! keelctl: Keel's operator command line. Talks to the master's HTTP API.

mod client;
mod output;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};

use crate::client::Client;

#[derive(Debug, Parser)]
#[command(name = "keelctl", version, about = "Operate a Keel cluster")]
struct Cli {
    /// Master(s): `HOST:PORT[,HOST:PORT...]`.
    #[arg(
        long,
        global = true,
        env = "KEEL_MASTER",
        default_value = "127.0.0.1:5050"
    )]
    master: String,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Table)]
    output: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the agents the master knows, with their state and resources.
    Agents,
    /// Show one agent and its discovered hardware inventory.
    Agent { id: String },
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("keelctl: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    let client = Client::new(&cli.master)?;
    match cli.command {
        Command::Agents => {
            let body = client.get_json("/api/keel/v1/agents").await?;
            match cli.output {
                Format::Json => output::print_json(&body),
                Format::Table => print!("{}", output::agents_table(&body)),
            }
        }
        Command::Agent { id } => {
            let body = client
                .get_json(&format!(
                    "/api/keel/v1/agents/{}",
                    client::path_segment(&id)
                ))
                .await?;
            match cli.output {
                Format::Json => output::print_json(&body),
                Format::Table => print!("{}", output::agent_details(&body)),
            }
        }
    }
    Ok(())
}
