//! Logging: structured `tracing` events to standard error, as readable text or JSON lines.

use std::str::FromStr;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global subscriber (once; later calls are ignored).
pub fn init(log: &LogConfig) {
    let targets = Targets::from_str(&log.level)
        .unwrap_or_else(|_| Targets::new().with_default(tracing::Level::INFO));
    let registry = tracing_subscriber::registry().with(targets);
    let _ = match log.format {
        LogFormat::Human => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
}

/// `[log]`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `human` or `json`.
    pub format: LogFormat,
    /// A level (`info`) or per-target levels (`info,portico=debug`).
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable text.
    Human,
    /// One JSON object per line.
    Json,
}

/// Whether `spec` is a level or per-target levels (`info,portico=debug`).
pub fn check_log_level(spec: &str) -> Result<(), String> {
    use tracing_subscriber::filter::LevelFilter;
    for directive in spec.split(',').map(str::trim) {
        let level = directive
            .rsplit_once('=')
            .map_or(directive, |(_, level)| level);
        if LevelFilter::from_str(level).is_err() {
            return Err(format!(
                "`{directive}` names no level; use off, error, warn, info, debug or trace, \
                 optionally as target=level"
            ));
        }
    }
    Ok(())
}
