//! The `portico` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use std::io::Write;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::server::{Server, shutdown_signal};

/// Portico: a self-hosted, secure data-exchange server for devices and applications.
#[derive(Debug, Parser)]
#[command(name = "portico", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (HTTPS with a generated certificate and SQLite in the data directory,
    /// unless configured otherwise).
    Serve(ServeArgs),
    /// Work with configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print the OpenAPI document the server would serve for a configuration.
    Openapi {
        /// The configuration file (TOML).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// The configuration file (TOML); `PORTICO_*` environment variables override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Directory for the database, the generated certificate and other state
    /// [default: ./portico-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address and port to listen on [default: 127.0.0.1:8443].
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Check a configuration file (with `PORTICO_*` overrides applied) and explain any errors.
    Check {
        /// The configuration file (TOML).
        file: PathBuf,
    },
}

/// Runs the command line; the process exits with the returned code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Config(ConfigCommand::Check { file }) => check(&file),
        Command::Openapi { config } => openapi(config.as_deref()),
    }
}

fn load(file: Option<&std::path::Path>) -> Result<Config, ExitCode> {
    Config::load(file, std::env::vars()).map_err(|error| {
        eprintln!("error: {error}");
        ExitCode::from(2)
    })
}

fn serve(args: ServeArgs) -> ExitCode {
    let mut config = match load(args.config.as_deref()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    if let Some(data_dir) = args.data_dir {
        config.data_dir = data_dir;
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    crate::telemetry::init(&config.log);
    tracing::debug!(?config, "configuration");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let server = match Server::build(config).await {
            Ok(server) => server,
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::FAILURE;
            }
        };
        // A closed stdout (a supervisor that stopped reading) must not stop the server.
        let _ = writeln!(std::io::stdout(), "{}", server.banner());
        server.run(shutdown_signal()).await;
        ExitCode::SUCCESS
    })
}

fn check(file: &std::path::Path) -> ExitCode {
    let config = match load(Some(file)) {
        Ok(config) => config,
        Err(code) => return code,
    };
    match config.validate() {
        Ok(catalog) => {
            println!(
                "{}: ok ({} datapoints, {} endpoints)",
                file.display(),
                catalog.datapoints.len(),
                catalog.endpoints.len()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{}: invalid:\n{error}", file.display());
            ExitCode::from(2)
        }
    }
}

fn openapi(file: Option<&std::path::Path>) -> ExitCode {
    let config = match file
        .map(Config::from_toml_file)
        .unwrap_or_else(|| Ok(Config::default()))
    {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    match config.validate() {
        Ok(catalog) => {
            let document = crate::api::openapi::document(&catalog);
            match serde_json::to_string_pretty(&document) {
                Ok(json) => {
                    println!("{json}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}
