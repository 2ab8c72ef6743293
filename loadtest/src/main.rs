//! `genki-loadtest`: simulated phones, simulated watchers' webhook and
//! SMTP receivers (and, in later issues, the load drivers) that test genki
//! from the outside, over SIP/RTP, HTTP and SMTP only.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod driver;
mod phones;
mod watchers;

#[derive(Parser)]
#[command(
    name = "genki-loadtest",
    version,
    about = "Simulated phones and load tests for genki"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a population of simulated phones (a UAS) on one SIP address.
    Phones(phones::PhoneConfig),
    /// A watcher's webhook receiver: checks signatures, prints one JSON line per request.
    Webhook(watchers::WebhookConfig),
    /// The load driver: enrol N subscribers through the API, run a round
    /// against their simulated phones, check the outcomes, report.
    Run(driver::RunConfig),
    /// An SMTP sink for alert e-mail (or a refusing relay), one JSON line per message.
    Smtp(watchers::SmtpConfig),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("GENKI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .init();
    // The driver runs its phones on both cores; a phones population alone
    // stays on one thread (it is started next to genki in tests).
    let rt = match &cli.command {
        Command::Run(_) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("genki-loadtest: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Phones(cfg) => phones::run(cfg).await.map(|records| {
                eprintln!("genki-loadtest: {} calls finished", records.records.len());
            }),
            Command::Webhook(cfg) => watchers::webhook(cfg).await,
            Command::Run(cfg) => {
                let json = cfg.json;
                let report = driver::run(cfg).await?;
                if json {
                    println!("{report}");
                } else {
                    driver::print_table(&report);
                }
                if report["ledger"]["ok"] != true {
                    anyhow::bail!("{} ledger problems", report["ledger"]["problems"]);
                }
                Ok(())
            }
            Command::Smtp(cfg) => watchers::smtp(cfg).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("genki-loadtest: {e:#}");
            ExitCode::FAILURE
        }
    }
}
