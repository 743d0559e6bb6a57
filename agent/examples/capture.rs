//! Captures this machine into a discovery fixture directory and prints what
//! discovery reads back from it, as JSON.
//!
//! `cargo run -p keel-agent --example capture -- agent/testdata/<name>`
//! (dev tooling; `keel-agent capture-fixture` does the same once wired).

use std::path::PathBuf;

use anyhow::Context;
use keel_agent::discovery::{DiscoveryOptions, capture, discover_fixture};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let dst: PathBuf = std::env::args_os()
        .nth(1)
        .context("usage: capture <fixture-dir>")?
        .into();
    capture(&dst).await?;
    let inventory = discover_fixture(&dst, &DiscoveryOptions::default())?;
    println!("{}", serde_json::to_string_pretty(&inventory)?);
    Ok(())
}
