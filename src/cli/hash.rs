//! `portico hash`: the hash of a signed endpoint call, and a ready link, from the configuration
//! (or from a secret given on the command line).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::openendpoints::{Environment, ParamError, hash, hex};

/// `portico hash` arguments.
#[derive(Debug, clap::Args)]
pub struct HashArgs {
    /// The configuration holding the application (its secrets, include-in-hash order, prefix).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The application.
    #[arg(long)]
    app: String,
    /// The endpoint.
    #[arg(long)]
    endpoint: String,
    /// `live` or `preview`.
    #[arg(long, default_value = "live")]
    env: String,
    /// A parameter, `name=value`; repeat for each (without --config, every one is hashed, in
    /// the order given).
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// The secret key, without --config (with it, the application's newest secret is used).
    #[arg(long)]
    secret: Option<String>,
    /// The server's URL for the link [default: idp.public_url, else https://localhost:PORT].
    #[arg(long)]
    base_url: Option<String>,
}

/// Runs `portico hash`.
pub fn run(args: HashArgs) -> ExitCode {
    let Some(environment) = Environment::parse(&args.env) else {
        eprintln!("error: --env is `live` or `preview`, not `{}`", args.env);
        return ExitCode::from(2);
    };
    let mut pairs = Vec::new();
    for param in &args.params {
        match param.split_once('=') {
            Some((name, value)) => pairs.push((name.to_owned(), value.to_owned())),
            None => {
                eprintln!("error: -p takes name=value, not `{param}`");
                return ExitCode::from(2);
            }
        }
    }
    let (digest, prefix, base) = match &args.config {
        Some(_) if args.secret.is_some() => {
            eprintln!("error: --secret is for use without --config, whose newest secret is used");
            return ExitCode::from(2);
        }
        Some(file) => {
            let (config, catalog) = match super::checked(file) {
                Ok(checked) => checked,
                Err(code) => return code,
            };
            let settings = &catalog.signed.settings;
            let Some(endpoint) = catalog.signed.find(&args.app, &args.endpoint) else {
                eprintln!(
                    "error: {} has no endpoint `{}` in an application `{}`",
                    file.display(),
                    args.endpoint,
                    args.app
                );
                return ExitCode::from(2);
            };
            let digest = match endpoint.hash_for(&pairs, environment, settings) {
                Ok(digest) => digest,
                Err(error) => return refused(&error),
            };
            let scheme = if config.tls.enabled { "https" } else { "http" };
            let base = config
                .idp
                .public_url
                .clone()
                .unwrap_or_else(|| format!("{scheme}://localhost:{}", config.listen.port()));
            (digest, settings.prefix.clone(), base)
        }
        None => {
            let Some(secret) = &args.secret else {
                eprintln!("error: give --config, or --secret with the parameters to hash");
                return ExitCode::from(2);
            };
            let values: Vec<&str> = pairs.iter().map(|(_, v)| v.as_str()).collect();
            let digest = hash(&args.endpoint, &values, environment, secret.as_bytes());
            (digest, String::new(), "https://localhost:8443".into())
        }
    };
    let base = args.base_url.unwrap_or(base);
    let hex = hex(&digest);
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in &pairs {
        query.append_pair(name, value);
    }
    if environment == Environment::Preview {
        query.append_pair("environment", "preview");
    }
    query.append_pair("hash", &hex);
    println!("{hex}");
    println!(
        "{}{prefix}/{}/{}?{}",
        base.trim_end_matches('/'),
        args.app,
        args.endpoint,
        query.finish()
    );
    ExitCode::SUCCESS
}

fn refused(error: &ParamError) -> ExitCode {
    let why = match error {
        ParamError::Unknown(name) => format!("`{name}` is not a parameter of this endpoint"),
        ParamError::Missing(name) => format!("the parameter `{name}` is required (-p {name}=…)"),
        ParamError::Invalid(why) | ParamError::Environment(why) => why.clone(),
        ParamError::HashMissing => "no hash".into(),
    };
    eprintln!("error: {why}");
    ExitCode::from(2)
}
