//! The declarative catalogue: `[[datapoint]]` and `[[endpoint]]` as written, and their checks
//! into datapoints with their policies and routed endpoints.

use super::*;

/// `[[datapoint]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatapointConfig {
    /// The primary key.
    pub key: String,
    /// `bool`, `int`, `float` or `string`.
    #[serde(rename = "type")]
    pub value_type: ValueType,
    /// `read`, `write` or `read-write` (the default).
    #[serde(default = "read_write")]
    pub access: Access,
    /// Unit, for display.
    pub unit: Option<String>,
    /// Description, for display and the OpenAPI document.
    pub description: Option<String>,
    /// Smallest accepted number (int, float).
    pub min: Option<f64>,
    /// Largest accepted number (int, float).
    pub max: Option<f64>,
    /// Most characters in a string (default 4096).
    pub max_length: Option<usize>,
    /// Who may read its value, by any surface; default `auth.default_read`.
    pub read: Option<PolicyConfig>,
    /// Who may write it, by any surface; default `auth.default_write`.
    pub write: Option<PolicyConfig>,
}

fn read_write() -> Access {
    Access::ReadWrite
}

/// `[[endpoint]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// The URL path, e.g. `/api/v1/boiler/temperature`.
    pub path: String,
    /// The key of the datapoint it reads and writes.
    pub datapoint: String,
    /// Description, for the OpenAPI document.
    pub description: Option<String>,
    /// Who may read (`GET`), on top of the datapoint's own `read` policy. A datapoint takes
    /// the read policies of all its endpoints, so this protects it on every surface.
    pub read: Option<PolicyConfig>,
    /// Who may write (`PUT`/`POST`), on top of the datapoint's own `write` policy.
    pub write: Option<PolicyConfig>,
}

/// A checked endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The URL path.
    pub path: String,
    /// The datapoint it serves.
    pub datapoint: DatapointKey,
    /// Description.
    pub description: Option<String>,
    /// Who may read.
    pub read_policy: Policy,
    /// Who may write.
    pub write_policy: Policy,
}

/// The checked declarative resources of a configuration.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// Datapoints, in declaration order.
    pub datapoints: Vec<Datapoint>,
    /// Endpoints, in declaration order.
    pub endpoints: Vec<Endpoint>,
    /// Trusted issuers, keys loaded (remote ones not yet fetched).
    pub issuers: Vec<Arc<Issuer>>,
    /// The native datapoint API's read policy.
    pub api_read: Policy,
    /// Who may read `/metrics`.
    pub metrics_read: Policy,
    /// Signed (OpenEndpoints-style) endpoints.
    pub signed: Arc<crate::openendpoints::SignedEndpoints>,
}

/// Paths (and everything below them) that belong to Portico itself and its compatibility
/// surfaces, present or planned; a configured endpoint may not take them.
pub const RESERVED_PATHS: &[&str] = &[
    "/healthz",
    "/readyz",
    "/metrics",
    "/api/openapi.json",
    "/api/docs",
    "/api/v1/datapoints",
    "/api/v1/events",
    "/api/v1/admin",
    "/api/v1/webhooks",
    "/api/v1/portals",
    "/realms",
    "/authentication",
    "/v1/auth",
    "/v1/item",
    "/console",
];

impl Config {
    pub(super) fn check_datapoints(
        &self,
        defaults: (&Policy, &Policy),
        problems: &mut Vec<String>,
    ) -> Vec<Datapoint> {
        let mut seen = HashSet::new();
        let mut checked = Vec::new();
        for (n, raw) in self.datapoints.iter().enumerate() {
            let at = format!("datapoint[{n}]");
            let key = match DatapointKey::parse(&raw.key) {
                Ok(key) => key,
                Err(e) => {
                    problems.push(format!("key `{at}.key`: {e}"));
                    continue;
                }
            };
            if !seen.insert(key.clone()) {
                problems.push(format!(
                    "key `{at}.key`: datapoint `{key}` is declared twice"
                ));
            }
            if raw.min.is_some_and(|b| !b.is_finite()) || raw.max.is_some_and(|b| !b.is_finite()) {
                problems.push(format!(
                    "key `{at}`: `min` and `max` must be finite numbers"
                ));
            }
            let numeric = matches!(raw.value_type, ValueType::Int | ValueType::Float);
            if !numeric && (raw.min.is_some() || raw.max.is_some()) {
                problems.push(format!(
                    "key `{at}`: `min`/`max` apply only to int and float"
                ));
            }
            if let (Some(min), Some(max)) = (raw.min, raw.max)
                && min > max
            {
                problems.push(format!(
                    "key `{at}`: `min` ({min}) is greater than `max` ({max})"
                ));
            }
            if raw.max_length.is_some() && raw.value_type != ValueType::String {
                problems.push(format!(
                    "key `{at}.max_length`: applies only to string datapoints"
                ));
            }
            if raw.max_length == Some(0) {
                problems.push(format!("key `{at}.max_length` must be greater than 0"));
            }
            checked.push(Datapoint {
                key,
                value_type: raw.value_type,
                access: raw.access,
                unit: raw.unit.clone(),
                description: raw.description.clone(),
                min: raw.min,
                max: raw.max,
                max_length: raw.max_length.unwrap_or(Datapoint::DEFAULT_MAX_LENGTH),
                read: policy_or(&raw.read, defaults.0, &format!("{at}.read"), problems),
                write: policy_or(&raw.write, defaults.1, &format!("{at}.write"), problems),
            });
        }
        checked
    }

    /// Checks the endpoints, and gives each datapoint the read policies of the endpoints that
    /// serve it (a configuration that protects only the endpoint protects the datapoint).
    pub(super) fn check_endpoints(
        &self,
        datapoints: &mut [Datapoint],
        problems: &mut Vec<String>,
    ) -> Vec<Endpoint> {
        let mut paths = BTreeSet::new();
        let mut checked = Vec::new();
        for (n, raw) in self.endpoints.iter().enumerate() {
            let at = format!("endpoint[{n}]");
            if let Err(e) = check_endpoint_path(&raw.path) {
                problems.push(format!("key `{at}.path`: {e}"));
                continue;
            }
            if !paths.insert(raw.path.as_str()) {
                problems.push(format!(
                    "key `{at}.path`: `{}` is used by two endpoints",
                    raw.path
                ));
            }
            let Some(datapoint) = datapoints
                .iter_mut()
                .find(|d| d.key.as_str() == raw.datapoint)
            else {
                problems.push(format!(
                    "key `{at}.datapoint`: no datapoint `{}` is declared",
                    raw.datapoint
                ));
                continue;
            };
            let read = policy_or(&raw.read, &Policy::Open, &format!("{at}.read"), problems);
            let write = policy_or(&raw.write, &Policy::Open, &format!("{at}.write"), problems);
            datapoint.read = datapoint.read.and(&read);
            checked.push(Endpoint {
                path: raw.path.clone(),
                datapoint: datapoint.key.clone(),
                description: raw.description.clone(),
                read_policy: read,
                write_policy: datapoint.write.and(&write),
            });
        }
        // Every endpoint reads with its datapoint's final policy, which includes its own.
        for endpoint in &mut checked {
            if let Some(datapoint) = datapoints.iter().find(|d| d.key == endpoint.datapoint) {
                endpoint.read_policy = datapoint.read.clone();
            }
        }
        checked
    }
}

/// The policy `config` names, `default` when it names none; a bad one is a problem at `at`.
fn policy_or(
    config: &Option<PolicyConfig>,
    default: &Policy,
    at: &str,
    problems: &mut Vec<String>,
) -> Policy {
    match config.as_ref().map(PolicyConfig::check) {
        None => default.clone(),
        Some(Ok(policy)) => policy,
        Some(Err(e)) => {
            problems.push(format!("key `{at}`: {e}"));
            Policy::Open
        }
    }
}

/// An endpoint path is a plain absolute path: no query, no pattern syntax, no dot segments, and
/// nothing that belongs to Portico.
pub(super) fn check_endpoint_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') || path.len() > 512 {
        return Err(format!(
            "`{path}` must start with / and have at most 512 characters"
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "/-._~".contains(c);
    if let Some(bad) = path.chars().find(|&c| !allowed(c)) {
        return Err(format!(
            "`{path}` contains {bad:?}; allowed are ASCII letters, digits and / - . _ ~"
        ));
    }
    if path.len() > 1 && path.ends_with('/') {
        return Err(format!("`{path}` must not end with /"));
    }
    if path[1..]
        .split('/')
        .any(|segment| matches!(segment, "" | "." | ".."))
        && path != "/"
    {
        return Err(format!("`{path}` has an empty, `.` or `..` segment"));
    }
    if let Some(taken) = RESERVED_PATHS
        .iter()
        .find(|r| path == **r || path.starts_with(&format!("{r}/")))
    {
        return Err(format!(
            "`{path}` is inside `{taken}`, which belongs to Portico"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_paths_are_checked() {
        assert!(check_endpoint_path("/api/v1/boiler/temperature").is_ok());
        for bad in [
            "api",
            "/a//b",
            "/a/../b",
            "/a/",
            "/a/{id}",
            "/healthz",
            "/api/v1/datapoints/x",
            "/a?b",
        ] {
            assert!(check_endpoint_path(bad).is_err(), "{bad}");
        }
    }
}
