//! keelctl: Keel's operator command line. Talks to the master's HTTP API.

mod client;
mod logs;
mod output;
mod run;

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
    /// List frameworks (active and completed).
    Frameworks,
    /// Show the masters (leader, term, members), or add/remove one.
    Masters {
        #[command(subcommand)]
        action: Option<MastersAction>,
    },
    /// List tasks (live, unreachable and completed).
    Tasks,
    /// Print a task's stdout (or stderr) from its agent's sandbox.
    Logs {
        task: String,
        /// Keep printing what the task writes until it has ended.
        #[arg(short, long)]
        follow: bool,
        /// Print stderr instead of stdout.
        #[arg(long)]
        stderr: bool,
        /// The task's framework, when several have a task with this id.
        #[arg(long)]
        framework: Option<String>,
    },
    /// Run one command as a task and wait for it (like mesos-execute); exits
    /// with the task's status.
    Run {
        #[arg(long, default_value_t = 0.1)]
        cpus: f64,
        #[arg(long, default_value_t = 32.0)]
        mem: f64,
        #[arg(long, default_value = "*")]
        role: String,
        #[arg(long, default_value = "keelctl-run")]
        name: String,
        /// How long to wait for a fitting offer.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        offer_timeout: std::time::Duration,
        /// The command: one argument runs through `/bin/sh -c`, several are argv.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum MastersAction {
    /// Add the master at ADDR (ip:port) to the cluster.
    Add { addr: String },
    /// Remove the master with ID from the cluster.
    Remove { id: u64 },
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
        Command::Run {
            cpus,
            mem,
            role,
            name,
            offer_timeout,
            command,
        } => {
            anyhow::ensure!(cpus > 0.0 && cpus.is_finite(), "--cpus must be positive");
            anyhow::ensure!(mem > 0.0 && mem.is_finite(), "--mem must be positive");
            let spec = run::RunSpec {
                cpus,
                mem,
                role,
                name,
                command,
                offer_timeout,
            };
            let code = run::run(client.first_master(), spec).await?;
            std::process::exit(code);
        }
        Command::Logs {
            task,
            follow,
            stderr,
            framework,
        } => {
            let spec = logs::LogsSpec {
                task,
                framework,
                follow,
                stderr,
            };
            logs::logs(&client, spec).await?;
        }
        Command::Masters { action } => {
            let body = match action {
                None => client.get_json("/api/keel/v1/masters").await?,
                Some(MastersAction::Add { addr }) => {
                    client
                        .send_json(
                            "POST",
                            "/api/keel/v1/masters",
                            Some(serde_json::json!({ "add": addr })),
                        )
                        .await?
                }
                Some(MastersAction::Remove { id }) => {
                    client
                        .send_json("DELETE", &format!("/api/keel/v1/masters/{id}"), None)
                        .await?
                }
            };
            match cli.output {
                Format::Json => output::print_json(&body),
                Format::Table => print!("{}", output::masters_table(&body)),
            }
        }
        Command::Frameworks => {
            let body = client.operator_call("GET_FRAMEWORKS").await?;
            match cli.output {
                Format::Json => output::print_json(&body["get_frameworks"]),
                Format::Table => print!("{}", output::frameworks_table(&body["get_frameworks"])),
            }
        }
        Command::Tasks => {
            let body = client.operator_call("GET_TASKS").await?;
            match cli.output {
                Format::Json => output::print_json(&body["get_tasks"]),
                Format::Table => print!("{}", output::tasks_table(&body["get_tasks"])),
            }
        }
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
