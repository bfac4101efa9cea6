//! The `portico` command line.

mod admin;
mod hash;

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
    /// Work with bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Work with signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage the built-in identity provider: realms, clients, users, keys.
    Admin(admin::AdminArgs),
    /// Print the hash of a signed (OpenEndpoints-style) endpoint call, then a ready link.
    Hash(hash::HashArgs),
    /// Work with proofs of stream values.
    #[command(subcommand)]
    Proof(ProofCommand),
}

#[derive(Debug, Subcommand)]
enum ProofCommand {
    /// Check a value's inclusion proof offline (the answer of
    /// `GET /api/v1/streams/{id}/values/{timestamp}/proof`) with the node's keys (the answer of
    /// `GET /api/v1/proofs/keys`): the value is in its tree, the tree's root is signed, the root
    /// is in the log of roots under a signed checkpoint. Exits 0 if all holds, 1 if not.
    Verify {
        /// The inclusion proof (JSON).
        file: PathBuf,
        /// The node's proof keys (a JWK set).
        #[arg(long)]
        keys: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print a token's header and claims, which configured issuer and key would verify it, and
    /// whether it verifies now (and why not). Exits 0 if it does, 1 if not.
    Inspect {
        /// The token (compact JWS).
        token: String,
        /// The configuration whose issuers to check against; without it, only decodes.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Write a new key pair (or HMAC secret) as PEM and as a JWK, named by its RFC 7638 kid.
    Generate {
        /// The algorithm: HS256…HS512, RS256…RS512, PS256…PS512, ES256, ES256K, ES384, ES512,
        /// Ed25519, Ed448.
        #[arg(long)]
        alg: String,
        /// The directory to write to.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// RSA key size: 2048, 3072 or 4096.
        #[arg(long, default_value_t = 2048)]
        bits: usize,
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
        Command::Token(TokenCommand::Inspect { token, config }) => {
            inspect(token.trim(), config.as_deref())
        }
        Command::Keys(KeysCommand::Generate { alg, out, bits }) => generate(&alg, &out, bits),
        Command::Admin(args) => admin::run(args),
        Command::Hash(args) => hash::run(args),
        Command::Proof(ProofCommand::Verify { file, keys }) => verify_proof(&file, &keys),
    }
}

fn verify_proof(file: &std::path::Path, keys: &std::path::Path) -> ExitCode {
    let read = |path: &std::path::Path| -> Result<serde_json::Value, String> {
        let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))
    };
    let (doc, keys) = match (read(file), read(keys)) {
        (Ok(doc), Ok(keys)) => (doc, keys),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match crate::series::offline::verify(&doc, &keys) {
        Ok(verified) => {
            let at = crate::timefmt::from_micros(verified.timestamp_us).map_or_else(
                || verified.timestamp_us.to_string(),
                crate::timefmt::rfc3339,
            );
            println!(
                "verified: the value of stream {} at {at} is leaf {} of a tree of {}, whose root \
                 key {} signed ({}), and that root is leaf {} of the log of roots under the \
                 checkpoint of {} roots signed for {}",
                verified.stream,
                verified.leaf.0,
                verified.leaf.1,
                verified.key.0,
                verified.key.1.name(),
                verified.log.0,
                verified.log.1,
                verified.log.2
            );
            ExitCode::SUCCESS
        }
        Err(why) => {
            println!("not verified: {why}");
            ExitCode::from(1)
        }
    }
}

fn inspect(token: &str, file: Option<&std::path::Path>) -> ExitCode {
    use crate::jose::issuer::Keys;
    use crate::jose::jws::CompactJws;
    let (header, claims) = match crate::jose::verifier::decode_unverified(token) {
        Ok(parts) => parts,
        Err(error) => {
            println!("not a token: {error}");
            return ExitCode::FAILURE;
        }
    };
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    println!("header: {}\nclaims: {}", pretty(&header), pretty(&claims));
    let Some(file) = file else {
        println!("(no --config: not verified)");
        return ExitCode::SUCCESS;
    };
    let (config, catalog) = match checked(file) {
        Ok(checked) => checked,
        Err(code) => return code,
    };
    let runtime = match runtime(false) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let iss = claims
            .get("iss")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        match catalog.issuers.iter().find(|i| i.rules.issuer == iss) {
            None => println!("issuer: none configured has iss `{iss}`"),
            Some(issuer) => {
                if let Keys::Remote(remote) = &issuer.keys {
                    remote.refresh().await;
                }
                println!("issuer: {} ({})", issuer.name, issuer.rules.issuer);
                let (keys, _) = issuer.keys.current();
                for skipped in &keys.skipped {
                    println!("  skipped {skipped}");
                }
                if let Ok(jws) = CompactJws::parse(token, config.auth.max_token_bytes) {
                    match keys.verify(&jws) {
                        Ok(key) => println!(
                            "key: {} pinned to {}",
                            key.kid
                                .as_deref()
                                .map_or("(no kid)".into(), |k| format!("kid `{k}`")),
                            key.key.algorithm()
                        ),
                        Err(why) => println!("key: none verifies it: {why}"),
                    }
                }
            }
        }
        let verifier = crate::jose::verifier::Verifier::new(
            catalog.issuers.clone(),
            config.auth.max_token_bytes,
            0,
        );
        let now = crate::clock::Clock::now(&crate::clock::SystemClock).unix_timestamp();
        match verifier.verify(token, now).await {
            Ok(verified) => {
                println!(
                    "verdict: valid; subject {:?}; permissions [{}]",
                    verified.subject.as_deref().unwrap_or("(none)"),
                    verified.permissions.join(", ")
                );
                ExitCode::SUCCESS
            }
            Err(why) => {
                println!("verdict: refused: {why}");
                ExitCode::FAILURE
            }
        }
    })
}

fn generate(alg: &str, out: &std::path::Path, bits: usize) -> ExitCode {
    let Some(algorithm) = crate::jose::primitive::Algorithm::parse(alg) else {
        eprintln!("error: `{alg}` is not a supported algorithm");
        return ExitCode::from(2);
    };
    let generated = match crate::jose::keygen::generate(algorithm, bits) {
        Ok(generated) => generated,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let kid = &generated.kid;
    let jwk = serde_json::to_string_pretty(&generated.jwk).unwrap_or_default();
    let (private_name, private_mode) = match generated.public_pem {
        Some(_) => (format!("{kid}.key.pem"), 0o600),
        None => (format!("{kid}.secret"), 0o600),
    };
    let mut files = vec![
        (private_name, generated.private.clone(), private_mode),
        (
            format!("{kid}.jwk.json"),
            format!("{jwk}\n"),
            if generated.public_pem.is_some() {
                0o644
            } else {
                0o600
            },
        ),
    ];
    if let Some(public) = &generated.public_pem {
        files.push((format!("{kid}.pub.pem"), public.clone(), 0o644));
    }
    for (name, text, mode) in &files {
        let path = out.join(name);
        if path.exists() {
            eprintln!("error: {} exists; not overwriting it", path.display());
            return ExitCode::FAILURE;
        }
        if let Err(error) = crate::tls::write_atomically(&path, text.as_bytes(), *mode) {
            eprintln!("error: {}: {error}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    println!("kid: {kid}");
    ExitCode::SUCCESS
}

/// The async runtime: several threads for `serve`, one for the short commands.
fn runtime(multi_thread: bool) -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut builder = match multi_thread {
        true => tokio::runtime::Builder::new_multi_thread(),
        false => tokio::runtime::Builder::new_current_thread(),
    };
    builder.enable_all().build().map_err(|error| {
        eprintln!("error: cannot start the async runtime: {error}");
        ExitCode::FAILURE
    })
}

/// The configuration in `file` (with the environment's overrides) and its checked catalog.
fn checked(file: &std::path::Path) -> Result<(Config, crate::config::Catalog), ExitCode> {
    let config = load(Some(file))?;
    match config.validate() {
        Ok(catalog) => Ok((config, catalog)),
        Err(error) => {
            eprintln!("{}: invalid:\n{error}", file.display());
            Err(ExitCode::from(2))
        }
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
    let runtime = match runtime(true) {
        Ok(runtime) => runtime,
        Err(code) => return code,
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
            for warning in config.warnings(&catalog) {
                eprintln!("warning: {warning}");
            }
            println!(
                "{}: ok ({} datapoints, {} endpoints, {} signed endpoints)",
                file.display(),
                catalog.datapoints.len(),
                catalog.endpoints.len(),
                catalog.signed.endpoints.len()
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
            let document = crate::api::openapi::document(&config, &catalog);
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
