//! `persistkit`: run the conformance suite against a store, and administer one.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use persistkit_conformance::{report, run_suite, Harness, RunOptions, SuiteReport};

#[derive(Parser)]
#[command(
    name = "persistkit",
    version,
    about = "Persistence for service operational data: conformance checks and administration."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the conformance suite against stores and print a report.
    ///
    /// Every case runs on a fresh, isolated store of the URL's backend, so a
    /// check never touches existing data. Exits 1 if any case fails; skipped
    /// and unsupported cases are reported as such, never as passed.
    Check {
        /// Stores to check (e.g. `memory://`). Default: the embedded defaults.
        urls: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Run only cases whose `domain::name` contains this.
        #[arg(long)]
        filter: Option<String>,
        /// No per-case progress lines on stderr.
        #[arg(long, short)]
        quiet: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
    Junit,
    Markdown,
}

fn harness_for(url: &str) -> Result<Arc<dyn Harness>, String> {
    let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("");
    match scheme {
        "memory" => Ok(Arc::new(persistkit_conformance::harnesses::MemoryHarness)),
        _ => Err(format!(
            "cannot check {:?}: supported URLs are {}",
            persistkit::redact(url),
            persistkit::supported_schemes().join(", ")
        )),
    }
}

fn default_targets() -> Vec<String> {
    vec!["memory://".into()]
}

async fn check(
    urls: Vec<String>,
    format: Format,
    filter: Option<String>,
    quiet: bool,
) -> Result<bool, String> {
    let urls = if urls.is_empty() {
        default_targets()
    } else {
        urls
    };
    let harnesses = urls
        .iter()
        .map(|u| harness_for(u))
        .collect::<Result<Vec<_>, _>>()?;
    let mut reports: Vec<SuiteReport> = Vec::new();
    for h in harnesses {
        if !quiet {
            eprintln!("checking {} …", h.name());
        }
        let opts = RunOptions {
            filter: filter.clone(),
            progress: !quiet,
        };
        reports.push(run_suite(h, &opts).await);
    }
    let out = match format {
        Format::Table => report::to_table(&reports),
        Format::Json => report::to_json(&reports),
        Format::Junit => report::to_junit(&reports),
        Format::Markdown => report::to_markdown(&reports),
    };
    print_out(out.trim_end());
    Ok(reports.iter().all(SuiteReport::ok))
}

/// Print to stdout; a closed pipe (`| head`) is not an error worth a panic.
fn print_out(s: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{s}").and_then(|_| out.flush());
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("PERSISTKIT_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check {
            urls,
            format,
            filter,
            quiet,
        } => check(urls, format, filter, quiet).await,
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}
