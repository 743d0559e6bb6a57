//! keelctl: Keel's operator command line. Talks to the master's HTTP API
//! through `keel-client`, which finds the leader over the `--master` list.

mod agents;
mod config;
mod events;
mod exec;
mod logs;
mod maintenance;
mod output;
mod pki;
mod run;
mod tokens;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use keel_client::{Client, Credentials};

#[derive(Debug, Parser)]
#[command(name = "keelctl", version, about = "Operate a Keel cluster")]
struct Cli {
    /// Master(s): `HOST:PORT[,HOST:PORT...]`.
    /// (Default: the config file's, else 127.0.0.1:5050.)
    #[arg(long, global = true, env = "KEEL_MASTER")]
    master: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Table)]
    output: Format,
    /// TLS to the masters: the cluster CA, and an operator certificate.
    #[command(flatten)]
    tls: keel_pki::TlsFlags,
    /// Principal for HTTP basic authentication, with --secret (before the
    /// command: `keelctl --principal ops --secret .. tasks`).
    #[arg(long, env = "KEEL_PRINCIPAL")]
    principal: Option<String>,
    /// The secret of --principal.
    #[arg(long, env = "KEEL_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// A bearer token (`keelctl tokens create --bearer`), instead of
    /// --principal and --secret.
    #[arg(long, env = "KEEL_TOKEN", hide_env_values = true)]
    token: Option<String>,
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
    /// List the agents the master knows, with their state and resources;
    /// or those waiting with an attested TPM (pending, approve, deny);
    /// or remove one for good (gone).
    Agents {
        #[command(subcommand)]
        action: Option<agents::AgentsAction>,
    },
    /// Show one agent and its discovered hardware inventory.
    Agent { id: String },
    /// Follow the operator event stream (SUBSCRIBE): one event a line,
    /// until the master ends it.
    Events,
    /// List frameworks (active and completed).
    Frameworks,
    /// Show the masters (leader, term, members), or add/remove one.
    Masters {
        #[command(subcommand)]
        action: Option<MastersAction>,
    },
    /// List tasks (live, unreachable and completed).
    Tasks,
    /// Create, list and revoke tokens (join tokens for agents, bearer
    /// tokens for API clients).
    Tokens {
        #[command(subcommand)]
        action: tokens::TokensAction,
    },
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
    /// Run a command inside a running task (its namespaces, cgroup,
    /// sandbox and user), through the master; exits with its status.
    Exec {
        task: String,
        /// Give the command a terminal (the local one goes raw).
        #[arg(short, long)]
        tty: bool,
        /// The task's framework, when several have a task with this id.
        #[arg(long)]
        framework: Option<String>,
        /// The command: one argument runs through `/bin/sh -c`, several are argv.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Print a running task's output as it writes it, until it ends.
    Attach {
        task: String,
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
    /// The cluster PKI: create the CA, issue certificates (no master needed).
    Pki {
        #[command(subcommand)]
        action: pki::PkiAction,
    },
    /// Maintenance schedules and machines down or up.
    Maintenance {
        #[command(subcommand)]
        action: maintenance::MaintenanceAction,
    },
    /// Drain an agent: no more offers, its tasks killed (each kill
    /// policy's grace period capped by --grace); DRAINED once none is
    /// left, then gone with --mark-gone.
    Drain {
        agent_id: String,
        #[arg(long, value_parser = humantime::parse_duration)]
        grace: Option<std::time::Duration>,
        #[arg(long)]
        mark_gone: bool,
    },
    /// No more offers for the agent; its tasks keep running.
    Deactivate { agent_id: String },
    /// Offers for the agent again (also ends a drain).
    Reactivate { agent_id: String },
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
        // `keelctl ... | head`: the reader went away, nothing to say.
        if output::is_broken_pipe(&e) {
            std::process::exit(0);
        }
        eprintln!("keelctl: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    if let Command::Pki { action } = cli.command {
        return pki::run(action);
    }
    // Flags and the environment first, then the config file.
    let file = config::load(config::path().as_deref())?;
    let master = cli
        .master
        .or(file.master)
        .unwrap_or_else(|| "127.0.0.1:5050".to_string());
    let tls = keel_pki::TlsFlags {
        tls_ca: cli.tls.tls_ca.or(file.tls_ca),
        tls_cert: cli.tls.tls_cert.or(file.tls_cert),
        tls_key: cli.tls.tls_key.or(file.tls_key),
    };
    let given = cli.principal.is_some() || cli.secret.is_some() || cli.token.is_some();
    let credentials = if given {
        Credentials::from_parts(cli.principal, cli.secret, cli.token)?
    } else {
        Credentials::from_parts(file.principal, file.secret, file.token)?
    };
    let client = Client::builder(&master)
        .tls(tls.material()?)
        .credentials(credentials)
        .build()?;
    let json = cli.output == Format::Json;
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
            let code = run::run(&client, spec).await?;
            std::process::exit(code);
        }
        Command::Exec {
            task,
            tty,
            framework,
            command,
        } => {
            let spec = exec::ExecSpec {
                task,
                framework,
                tty,
                command,
            };
            let code = exec::exec(&client, spec).await?;
            std::process::exit(code);
        }
        Command::Attach { task, framework } => {
            exec::attach(&client, &task, framework.as_deref()).await?;
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
            let cluster = match action {
                None => client.masters().await?,
                Some(MastersAction::Add { addr }) => client.add_master(&addr).await?,
                Some(MastersAction::Remove { id }) => client.remove_master(id).await?,
            };
            match json {
                true => output::print_json(&cluster)?,
                false => output::print(&output::masters_table(&cluster))?,
            }
        }
        Command::Frameworks => {
            let frameworks = client.get_frameworks().await?;
            match json {
                true => output::print_json(&frameworks)?,
                false => output::print(&output::frameworks_table(&frameworks))?,
            }
        }
        Command::Tokens { action } => tokens::run(&client, action, json).await?,
        Command::Events => events::run(&client, json).await?,
        Command::Tasks => {
            let tasks = client.get_tasks().await?;
            match json {
                true => output::print_json(&tasks)?,
                false => output::print(&output::tasks_table(&tasks))?,
            }
        }
        Command::Agents { action } => agents::run(&client, action, json).await?,
        Command::Maintenance { action } => maintenance::run(&client, action, json).await?,
        Command::Drain {
            agent_id,
            grace,
            mark_gone,
        } => maintenance::drain(&client, &agent_id, grace, mark_gone, json).await?,
        Command::Deactivate { agent_id } => {
            client.deactivate_agent(&agent_id).await?;
            if !json {
                eprintln!("agent {agent_id} deactivated");
            }
        }
        Command::Reactivate { agent_id } => {
            client.reactivate_agent(&agent_id).await?;
            if !json {
                eprintln!("agent {agent_id} reactivated");
            }
        }
        Command::Pki { .. } => unreachable!("handled above"),
        Command::Agent { id } => {
            let agent = client.keel_agent(&id).await?;
            match json {
                true => output::print_json(&agent)?,
                false => output::print(&output::agent_details(&agent))?,
            }
        }
    }
    Ok(())
}
