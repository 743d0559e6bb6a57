//! `keel-init`: PID 1 of Keel's initramfs, its `/sbin/modprobe`, and the
//! service launcher of the systemd image. See the library docs.

use std::path::Path;

const USAGE: &str = "\
usage: keel-init                 run as PID 1 (the initramfs's /init)
       keel-init exec            wait for the kernel command line and an address, exec the service
       keel-init config [CMDLINE]  print the configuration parsed from /proc/cmdline (or CMDLINE)
       modprobe [-q] [--] NAME   load a module and its dependencies (as /sbin/modprobe)";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let argv0 = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if argv0 == "modprobe" {
        std::process::exit(keel_init::modules::modprobe_main(&args[1..]));
    }
    match args.get(1).map(String::as_str) {
        None if rustix::process::getpid().is_init() => boot(),
        Some("exec") => {
            keel_telemetry::init("keel-init");
            let e = runtime().block_on(keel_init::exec::run());
            tracing::error!("{e}");
            std::process::exit(1);
        }
        Some("config") => {
            let parsed = match args.get(2) {
                Some(line) => keel_init::cmdline::parse(line),
                None => keel_init::boot::read_cmdline(),
            };
            let out = serde_json::json!({
                "config": parsed.config,
                "errors": parsed.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
            std::process::exit(if parsed.is_ok() { 0 } else { 1 });
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("keel-init: cannot start the runtime: {e}");
            std::process::exit(1)
        })
}

/// PID 1 must never exit; if even the runtime cannot start, say so and wait.
fn boot() -> ! {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => loop {
            // A panic must not end PID 1 (the kernel would panic too): log
            // it and run the boot sequence again; its steps are idempotent.
            let run = std::panic::AssertUnwindSafe(|| rt.block_on(keel_init::boot::run()));
            if std::panic::catch_unwind(run).is_err() {
                eprintln!("keel-init: panicked; restarting the boot sequence in 5s");
                std::thread::sleep(std::time::Duration::from_secs(5));
            }
        },
        Err(e) => {
            eprintln!("keel-init: cannot start the runtime: {e}");
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
    }
}
