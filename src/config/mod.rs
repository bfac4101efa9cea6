//! One typed configuration: built-in defaults, then a TOML file, then `PORTICO_*` environment
//! variables, then command-line flags. Unknown or mistyped keys are errors that name the key;
//! [`Config::validate`] turns the declarative parts into checked domain values.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use serde::Deserialize;

use crate::access::Policy;
use crate::clock::{Clock, SystemClock};
use crate::datapoint::{Access, Datapoint, DatapointKey, ValueType};
use crate::idp::settings::IdpConfig;
use crate::jose::issuer::Issuer;
pub use crate::jose::issuer::IssuerConfig;

mod catalog;

pub use catalog::{Catalog, DatapointConfig, Endpoint, EndpointConfig, RESERVED_PATHS};

use crate::net::{IpNets, ProxyConfig, TrustedProxies};
use crate::secrets::Secret;
use crate::store::Location;
use crate::telemetry::LogConfig;
use crate::tls::TlsConfig;

/// The prefix of environment variables read as configuration.
pub const ENV_PREFIX: &str = "PORTICO_";
/// Environment variables with the prefix that are not configuration (tests and tools use them).
const ENV_NOT_CONFIG: &[&str] = &["PORTICO_TEST_", "PORTICO_VECTORS"];

/// The whole configuration. Every key is documented in `portico.example.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// Directory for the SQLite database, the generated certificate and other state.
    pub data_dir: PathBuf,
    /// `postgres://…` to use PostgreSQL; unset for SQLite in the data directory.
    pub database_url: Option<Secret>,
    /// HTTPS settings.
    pub tls: TlsConfig,
    /// Logging.
    pub log: LogConfig,
    /// Sizes, counts and waits.
    pub limits: Limits,
    /// Declared datapoints (`[[datapoint]]`).
    #[serde(rename = "datapoint")]
    pub datapoints: Vec<DatapointConfig>,
    /// Named endpoints mapped to datapoints (`[[endpoint]]`).
    #[serde(rename = "endpoint")]
    pub endpoints: Vec<EndpointConfig>,
    /// Bearer-token settings and default policies.
    pub auth: AuthConfig,
    /// Trusted token issuers (`[[issuer]]`).
    #[serde(rename = "issuer")]
    pub issuers: Vec<IssuerConfig>,
    /// The built-in OpenID Connect provider.
    pub idp: IdpConfig,
    /// XRTC accounts, sessions and portals, with the seed's limits.
    pub xrtc: crate::xrtc::XrtcSettings,
    /// Outgoing e-mail (registration codes).
    pub mail: crate::mail::MailConfig,
    /// Reverse proxies whose forwarded client address is believed.
    pub proxy: ProxyConfig,
    /// Signed webhooks: delivery, redelivery and the targets they may reach.
    pub webhooks: crate::webhooks::WebhookSettings,
    /// `[events]`: the event journal.
    pub events: crate::events::journal::EventSettings,
    /// `[values]`: streams of values and their proofs.
    pub values: crate::series::ValueSettings,
    /// `[tributech]`: the Tributech-compatible API under `/demeter/api`.
    pub tributech: crate::series::TributechSettings,
    /// Signed (OpenEndpoints-style) endpoints: mount point and request bounds.
    pub openendpoints: crate::openendpoints::OpenEndpointsSettings,
    /// OpenEndpoints-style applications with their secrets and endpoints (`[[application]]`).
    #[serde(rename = "application")]
    pub applications: Vec<crate::openendpoints::ApplicationConfig>,
}

/// `[auth]`: bearer tokens and the policies of routes that do not set their own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The `realm` of `WWW-Authenticate` challenges.
    pub realm: String,
    /// The longest token accepted, in bytes.
    pub max_token_bytes: usize,
    /// How many verified tokens are remembered (0 turns the cache off).
    pub token_cache_entries: usize,
    /// Who may read an endpoint that sets no `read` policy.
    pub default_read: PolicyConfig,
    /// Who may write an endpoint that sets no `write` policy.
    pub default_write: PolicyConfig,
    /// Who may read the native datapoint API (`/api/v1/datapoints…`), on top of each
    /// datapoint's own `read` policy; default open (the datapoints' policies decide).
    pub api_read: Option<PolicyConfig>,
    /// Who may read `/metrics` (datapoint keys and their write counts, route patterns); default
    /// open, as Prometheus scrapes; `authenticated` or permissions close it.
    pub metrics_read: Option<PolicyConfig>,
    /// How often a long-lived stream (SSE) checks that its token is still valid (not revoked,
    /// its issuer still trusted); it also ends at the token's `exp` plus leeway.
    pub revocation_check_seconds: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            realm: "portico".into(),
            max_token_bytes: crate::jose::jws::DEFAULT_MAX_TOKEN_BYTES,
            token_cache_entries: 10_000,
            default_read: PolicyConfig::Named("open".into()),
            default_write: PolicyConfig::Named("open".into()),
            api_read: None,
            metrics_read: None,
            revocation_check_seconds: 30,
        }
    }
}

pub use crate::access::PolicyConfig;

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            data_dir: PathBuf::from("portico-data"),
            database_url: None,
            tls: TlsConfig::default(),
            log: LogConfig::default(),
            limits: Limits::default(),
            datapoints: Vec::new(),
            endpoints: Vec::new(),
            auth: AuthConfig::default(),
            issuers: Vec::new(),
            idp: IdpConfig::default(),
            xrtc: Default::default(),
            mail: Default::default(),
            proxy: ProxyConfig::default(),
            webhooks: Default::default(),
            events: Default::default(),
            values: Default::default(),
            tributech: Default::default(),
            openendpoints: Default::default(),
            applications: Vec::new(),
        }
    }
}

/// `[limits]`: every size, count and wait the server enforces.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Most simultaneous client connections; more are answered 503 with `Retry-After` (over
    /// TLS, closed) at once.
    pub max_connections: usize,
    /// Most simultaneous connections from one address (an IPv6 /64 counts as one; a trusted
    /// proxy's are not counted); more are answered 503 with `Retry-After` and closed.
    pub max_connections_per_address: usize,
    /// Longest a TLS handshake may take.
    pub tls_handshake_timeout_seconds: u64,
    /// Longest a client may take to send its request headers (HTTP/1), and a new connection
    /// its first bytes (any protocol).
    pub header_read_timeout_seconds: u64,
    /// Largest HTTP/1 request head (request line and headers; larger: 431), and so the most a
    /// waiting connection's read buffer holds. At least `auth.max_token_bytes` plus 4,096 (a
    /// token of the largest size and the usual headers); raise both together.
    pub max_header_bytes: usize,
    /// Longest a client may take to send its request body.
    pub body_read_timeout_seconds: u64,
    /// Longest a graceful shutdown waits for in-flight requests.
    pub shutdown_grace_seconds: u64,
    /// An HTTP/2 connection with no stream open this long is closed (GOAWAY). An HTTP/1
    /// connection waits at most `header_read_timeout_seconds` for its next request.
    pub idle_timeout_seconds: u64,
    /// A connection this old is closed gracefully (HTTP/2: GOAWAY, then its streams finish;
    /// HTTP/1: after the request in progress); clients reconnect.
    pub max_connection_age_seconds: u64,
    /// Most requests in progress on the node (a long poll counts while it waits; a stream
    /// until its answer starts); more are answered 503 with `Retry-After`.
    pub max_requests_in_progress: usize,
    /// Most requests in progress from one client address (an IPv6 /64 counts as one; behind a
    /// trusted proxy, the address it forwards).
    pub max_requests_in_progress_per_address: usize,
    /// Most open event streams (SSE, XRTC streams) on the node.
    pub max_streams: usize,
    /// Most open event streams of one reader: a token's subject, an XRTC account, or an
    /// anonymous reader's address.
    pub max_streams_per_reader: usize,
    /// The longest an SSE stream stays open; clients reconnect with `Last-Event-ID` and lose
    /// nothing.
    pub stream_max_seconds: u64,
    /// A request body answered before it was read (413, 404, 401, …) is read and discarded up
    /// to this many bytes, so a client that sends it all before reading gets the answer.
    pub linger_bytes: u64,
    /// … for at most this long.
    pub linger_seconds: u64,
    /// The longest one store operation may wait: a connection, a lock, a statement, a write
    /// batch's commit. A write whose commit does not answer in time gets 503 once the store
    /// has said whether it took effect (it is asked again), never a guess.
    pub store_timeout_seconds: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            max_connections: 4096,
            max_connections_per_address: 256,
            tls_handshake_timeout_seconds: 10,
            header_read_timeout_seconds: 10,
            max_header_bytes: 12 * 1024,
            body_read_timeout_seconds: 30,
            shutdown_grace_seconds: 30,
            idle_timeout_seconds: 120,
            max_connection_age_seconds: 3600,
            max_requests_in_progress: 8192,
            max_requests_in_progress_per_address: 1024,
            max_streams: 8192,
            max_streams_per_reader: 64,
            stream_max_seconds: 3600,
            linger_bytes: 16 * 1024 * 1024,
            linger_seconds: 5,
            store_timeout_seconds: 10,
        }
    }
}

/// A configuration that could not be loaded or is not valid; each line names the key.
#[derive(Debug)]
pub struct ConfigError {
    /// One problem per line.
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, problem) in self.problems.iter().enumerate() {
            if n > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    fn one(problem: impl Into<String>) -> Self {
        Self {
            problems: vec![problem.into()],
        }
    }
}

impl Config {
    /// Loads defaults, then `file` (if any), then the `PORTICO_*` variables among `env`.
    /// Variables nest with a double underscore: `PORTICO_TLS__ENABLED=false` sets `tls.enabled`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::one(format!("{}: {e}", path.display())))?;
                toml::from_str::<toml::Table>(&text)
                    .map_err(|e| ConfigError::one(format!("{}: {e}", path.display())))?
            }
            None => toml::Table::new(),
        };
        let from_env = overlay_env(&mut table, env)?;
        let place = file
            .map(|path| format!("{}: ", path.display()))
            .unwrap_or_default();
        from_table(table, &place, &from_env)
    }

    /// Loads a configuration file alone, ignoring the environment (reproducible output).
    pub fn from_toml_file(path: &Path) -> Result<Self, ConfigError> {
        Self::load(Some(path), std::iter::empty())
    }

    /// Parses a configuration from TOML text alone (no environment); for tests and tools.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let table =
            toml::from_str::<toml::Table>(text).map_err(|e| ConfigError::one(e.to_string()))?;
        from_table(table, "", &[])
    }

    /// Where the store lives.
    pub fn store_location(&self) -> Result<Location, ConfigError> {
        match &self.database_url {
            None => Ok(Location::default_in(&self.data_dir)),
            Some(url) => Location::parse(url.expose())
                .map_err(|e| ConfigError::one(format!("key `database_url`: {e}"))),
        }
    }

    /// Checks everything that types alone cannot, reporting every problem at once.
    pub fn validate(&self) -> Result<Catalog, ConfigError> {
        self.validate_with(Arc::new(SystemClock))
    }

    /// [`Self::validate`], with the clock remote key sets use for their refresh cooldown.
    /// Choices that are valid but unsafe where the server can be reached from the network;
    /// the server logs each at start and `portico config check` prints them.
    pub fn warnings(&self, catalog: &Catalog) -> Vec<String> {
        let mut warnings = Vec::new();
        let exposed = !self.listen.ip().is_loopback();
        if exposed && !self.tls.enabled && self.proxy.trusted.is_empty() {
            warnings.push(format!(
                "plain HTTP on {}, which is not a loopback address, and no [proxy] trusted: \
                 tokens, passwords and API keys cross the network in clear; enable [tls] or \
                 list the TLS proxy in front of Portico in [proxy] trusted",
                self.listen
            ));
        }
        if exposed {
            for endpoint in &catalog.endpoints {
                if matches!(endpoint.write_policy, crate::access::Policy::Open) {
                    warnings.push(format!(
                        "endpoint {} lets anyone who can reach {} write datapoint {} (no \
                         `write` policy)",
                        endpoint.path, self.listen, endpoint.datapoint
                    ));
                }
            }
        }
        for app in self.applications.iter().filter(|app| app.allow_weak_secret) {
            warnings.push(format!(
                "application {} accepts secret keys shorter than 128 bits \
                 (allow_weak_secret = true): their hashes can be forged by trying keys",
                app.name
            ));
        }
        warnings
    }

    pub fn validate_with(&self, clock: Arc<dyn Clock>) -> Result<Catalog, ConfigError> {
        let mut problems = Vec::new();
        if let Err(e) = self.store_location() {
            problems.extend(e.problems);
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            problems.push("keys `tls.cert` and `tls.key` must be set together".into());
        }
        problems.extend(self.xrtc.problems());
        problems.extend(self.webhooks.problems());
        problems.extend(self.events.problems());
        problems.extend(self.values.problems());
        problems.extend(self.tributech.problems());
        if let Err(e) = TrustedProxies::parse(&self.proxy) {
            problems.extend(e);
        }
        if let Err(e) = crate::telemetry::check_log_level(&self.log.level) {
            problems.push(format!("key `log.level`: {e}"));
        }
        if self.limits.max_header_bytes < self.auth.max_token_bytes + 4096 {
            problems.push(format!(
                "key `limits.max_header_bytes` must be at least `auth.max_token_bytes` + 4096 ({})",
                self.auth.max_token_bytes + 4096
            ));
        }
        // Each limit's range: at least 1 where 0 would refuse everything or wait for nothing,
        // and an upper bound that keeps it meaningful (and inside what the runtime represents).
        let l = &self.limits;
        let ranges: &[(&str, u64, u64, u64)] = &[
            ("max_body_bytes", l.max_body_bytes as u64, 1, 64 << 20),
            ("max_connections", l.max_connections as u64, 1, 1_000_000),
            (
                "max_connections_per_address",
                l.max_connections_per_address as u64,
                1,
                1_000_000,
            ),
            (
                "tls_handshake_timeout_seconds",
                l.tls_handshake_timeout_seconds,
                1,
                3600,
            ),
            (
                "header_read_timeout_seconds",
                l.header_read_timeout_seconds,
                1,
                3600,
            ),
            (
                "body_read_timeout_seconds",
                l.body_read_timeout_seconds,
                1,
                3600,
            ),
            ("shutdown_grace_seconds", l.shutdown_grace_seconds, 0, 3600),
            ("idle_timeout_seconds", l.idle_timeout_seconds, 1, 86_400),
            (
                "max_connection_age_seconds",
                l.max_connection_age_seconds,
                1,
                30 * 86_400,
            ),
            (
                "max_requests_in_progress",
                l.max_requests_in_progress as u64,
                1,
                1_000_000,
            ),
            (
                "max_requests_in_progress_per_address",
                l.max_requests_in_progress_per_address as u64,
                1,
                1_000_000,
            ),
            ("max_streams", l.max_streams as u64, 1, 1_000_000),
            (
                "max_streams_per_reader",
                l.max_streams_per_reader as u64,
                1,
                1_000_000,
            ),
            ("stream_max_seconds", l.stream_max_seconds, 1, 30 * 86_400),
            ("linger_bytes", l.linger_bytes, 0, 1 << 30),
            ("linger_seconds", l.linger_seconds, 1, 60),
            ("max_header_bytes", l.max_header_bytes as u64, 0, 1 << 20),
            ("store_timeout_seconds", l.store_timeout_seconds, 1, 600),
        ];
        for &(name, value, least, most) in ranges {
            if value < least {
                problems.push(format!("key `limits.{name}` must be greater than 0"));
            } else if value > most {
                problems.push(format!("key `limits.{name}` must be at most {most}"));
            }
        }
        let (default_read, default_write, api_read, metrics_read) = self.check_auth(&mut problems);
        let mut datapoints = self.check_datapoints((&default_read, &default_write), &mut problems);
        let endpoints = self.check_endpoints(&mut datapoints, &mut problems);
        let issuers = self.check_issuers(clock, &mut problems);
        let protected = endpoints
            .iter()
            .flat_map(|e| [&e.read_policy, &e.write_policy])
            .chain(datapoints.iter().flat_map(|d| [&d.read, &d.write]))
            .chain([&api_read, &metrics_read])
            .any(|policy| !policy.is_open());
        if protected && issuers.is_empty() && !self.idp.enabled {
            problems.push(
                "a policy requires a token, but no `[[issuer]]` is configured to verify one and \
                 the built-in identity provider is off (`idp.enabled = false`)"
                    .into(),
            );
        }
        problems.extend(self.idp.problems());
        let endpoint_paths: Vec<String> = endpoints.iter().map(|e| e.path.clone()).collect();
        let targets = crate::net::targets::Targets::new(
            IpNets::parse(
                "openendpoints.allow_targets",
                &self.openendpoints.allow_targets,
            )
            .unwrap_or_default(),
            "openendpoints.allow_targets",
        );
        let signed = crate::openendpoints::SignedEndpoints::check(
            &self.openendpoints,
            &self.applications,
            &crate::openendpoints::Context {
                datapoints: &datapoints,
                endpoint_paths: &endpoint_paths,
                xrtc: self.xrtc.enabled,
                reserved: RESERVED_PATHS,
                targets: &targets,
            },
        )
        .unwrap_or_else(|found| {
            problems.extend(found);
            Default::default()
        });
        if problems.is_empty() {
            Ok(Catalog {
                datapoints,
                endpoints,
                issuers,
                api_read,
                metrics_read,
                signed: Arc::new(signed),
            })
        } else {
            Err(ConfigError { problems })
        }
    }

    fn check_auth(&self, problems: &mut Vec<String>) -> (Policy, Policy, Policy, Policy) {
        let auth = &self.auth;
        if auth.realm.is_empty()
            || !auth
                .realm
                .bytes()
                .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
        {
            problems.push(
                "key `auth.realm` must be printable ASCII without quotes or backslashes".into(),
            );
        }
        if !(1024..=64 * 1024).contains(&auth.max_token_bytes) {
            problems.push("key `auth.max_token_bytes` must be between 1024 and 65536".into());
        }
        if auth.token_cache_entries > 10_000_000 {
            problems.push("key `auth.token_cache_entries` must be at most 10000000".into());
        }
        let mut policy = |name: &str, config: &PolicyConfig| {
            config.check().unwrap_or_else(|e| {
                problems.push(format!("key `auth.{name}`: {e}"));
                Policy::Open
            })
        };
        let read = policy("default_read", &auth.default_read);
        let write = policy("default_write", &auth.default_write);
        let api_read = match &auth.api_read {
            Some(config) => policy("api_read", config),
            None => Policy::Open,
        };
        let metrics_read = match &auth.metrics_read {
            Some(config) => policy("metrics_read", config),
            None => Policy::Open,
        };
        if !(1..=3600).contains(&auth.revocation_check_seconds) {
            problems.push("key `auth.revocation_check_seconds` must be between 1 and 3600".into());
        }
        (read, write, api_read, metrics_read)
    }

    fn check_issuers(&self, clock: Arc<dyn Clock>, problems: &mut Vec<String>) -> Vec<Arc<Issuer>> {
        let mut seen = HashSet::new();
        let mut issuers = Vec::new();
        for (n, raw) in self.issuers.iter().enumerate() {
            let at = format!("issuer[{n}]");
            if !seen.insert(raw.issuer.as_str()) {
                problems.push(format!(
                    "key `{at}.issuer`: `{}` is configured twice",
                    raw.issuer
                ));
            }
            match Issuer::from_config(raw, &at, clock.clone()) {
                Ok(issuer) => issuers.push(Arc::new(issuer)),
                Err(found) => problems.extend(found),
            }
        }
        issuers
    }
}

/// Deserializes the merged table, naming the key of any error (and the environment variable
/// that set it, if one did); `place` prefixes the message, e.g. the file name.
fn from_table(
    table: toml::Table,
    place: &str,
    from_env: &[(String, String)],
) -> Result<Config, ConfigError> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|error| {
        let key = error.path().to_string();
        let origin = from_env
            .iter()
            .find(|(path, _)| key == *path || key.starts_with(&format!("{path}.")))
            .map(|(_, var)| format!(" (set by environment variable {var})"))
            .unwrap_or_default();
        ConfigError::one(format!(
            "{place}key `{key}`{origin}: {}",
            error.into_inner()
        ))
    })
}

/// Applies `PORTICO_*` variables to `table`; returns each (key path, variable) applied.
fn overlay_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut applied = Vec::new();
    let mut vars: Vec<_> = env
        .into_iter()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX))
        .filter(|(name, _)| !ENV_NOT_CONFIG.iter().any(|skip| name.starts_with(skip)))
        .collect();
    vars.sort();
    for (name, raw) in vars {
        let path: Vec<String> = name[ENV_PREFIX.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if path.iter().any(String::is_empty) {
            return Err(ConfigError::one(format!(
                "environment variable {name}: empty key part"
            )));
        }
        if matches!(path[0].as_str(), "datapoint" | "endpoint") {
            return Err(ConfigError::one(format!(
                "environment variable {name}: [[{}]] entries can only be declared in the file",
                path[0]
            )));
        }
        let mut node = &mut *table;
        for part in &path[..path.len() - 1] {
            let entry = node
                .entry(part.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            node = match entry {
                toml::Value::Table(inner) => inner,
                _ => {
                    return Err(ConfigError::one(format!(
                        "environment variable {name}: `{part}` is not a section"
                    )));
                }
            };
        }
        node.insert(path[path.len() - 1].clone(), env_value(&raw));
        applied.push((path.join("."), name));
    }
    Ok(applied)
}

/// Reads an environment value as a TOML value when it is one (`true`, `42`, `1.5`, `"text"`,
/// `["a", "b"]`), else as a plain string.
fn env_value(raw: &str) -> toml::Value {
    match toml::from_str::<toml::Table>(&format!("v = {raw}")).map(|mut t| t.remove("v")) {
        Ok(Some(
            value @ (toml::Value::Boolean(_)
            | toml::Value::Integer(_)
            | toml::Value::Float(_)
            | toml::Value::String(_)
            | toml::Value::Array(_)),
        )) => value,
        _ => toml::Value::String(raw.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_environment_overrides_and_nests() {
        let config = Config::load(
            None,
            env(&[
                ("PORTICO_TLS__ENABLED", "false"),
                ("PORTICO_LIMITS__MAX_BODY_BYTES", "1024"),
                ("PORTICO_DATABASE_URL", "postgres://u:pw@db/portico"),
                ("PORTICO_TEST_DATABASE_URL", "ignored"),
                ("HOME", "/root"),
            ]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(!config.tls.enabled);
        assert_eq!(config.limits.max_body_bytes, 1024);
        assert_eq!(
            config.database_url.as_ref().map(Secret::expose),
            Some("postgres://u:pw@db/portico")
        );
    }

    #[test]
    fn unknown_and_mistyped_keys_are_named() {
        let err = Config::from_toml_str("[tls]\nenabld = false")
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|e| e.contains("tls.enabld")),
            "{err:?}"
        );
        let err = Config::from_toml_str("[tls]\nenabled = \"yes\"")
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|e| e.contains("`tls.enabled`")),
            "{err:?}"
        );
        let err = Config::load(None, env(&[("PORTICO_TLS__ENABLED", "maybe")]))
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("PORTICO_TLS__ENABLED")),
            "{err:?}"
        );
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let config = Config::load(
            None,
            env(&[("PORTICO_DATABASE_URL", "postgres://u:hunter2@db/x")]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
