//! `genki-loadtest`: simulated phones, simulated watchers' webhook and
//! SMTP receivers (and, in later issues, the load drivers) that test genki
//! from the outside, over SIP/RTP, HTTP and SMTP only.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("genki-loadtest: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Phones(cfg) => phones::run(cfg).await.map(|records| {
                eprintln!("genki-loadtest: {} calls finished", records.len());
            }),
            Command::Webhook(cfg) => watchers::webhook(cfg).await,
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
