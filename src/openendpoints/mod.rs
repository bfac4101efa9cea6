//! OpenEndpoints-style signed endpoints (the `openendpoints-authentication` seed): applications
//! declared in the config, each with secrets and endpoints; a request to
//! `{prefix}/{application}/{endpoint}` is authentic when its `hash` is the hex SHA-256 of the
//! endpoint's name, its `include_in_hash` values in order, the environment (`live` or
//! `preview`) and one of the application's secrets. An authentic call runs the endpoint's
//! actions and answers with a file, a redirect or a short JSON document.
//!
//! This module owns the configuration, the hash and what a request's parameters resolve to;
//! [`run`] performs the actions, `api::openendpoints` speaks HTTP.

mod config;
pub mod form;
pub mod run;
mod settings;
pub mod template;

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use crate::datapoint::DatapointKey;
use crate::secrets::Secret;
pub use config::{
    ActionConfig, ApplicationConfig, Context, OpenEndpointsSettings, ParameterConfig,
    SignedEndpointConfig,
};
use form::{Field, Upload};
use template::Template;

/// The request parameter carrying the hash.
pub const HASH_PARAMETER: &str = "hash";
/// The request parameter selecting the environment (`environment=preview`, as in OpenEndpoints).
pub const ENVIRONMENT_PARAMETER: &str = "environment";

/// The environment a request is for; part of the hash, so a preview link never works live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// The default.
    Live,
    /// Selected with `environment=preview`.
    Preview,
}

impl Environment {
    /// The name hashed and reported: `live` or `preview`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Preview => "preview",
        }
    }

    /// `live` or `preview`, exactly.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "live" => Some(Self::Live),
            "preview" => Some(Self::Preview),
            _ => None,
        }
    }
}

/// The seed's hash: SHA-256 over the endpoint name, the include-in-hash values in order, the
/// environment name and the secret, concatenated without separators.
pub fn hash(endpoint: &str, values: &[&str], environment: Environment, secret: &[u8]) -> [u8; 32] {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    context.update(endpoint.as_bytes());
    for value in values {
        context.update(value.as_bytes());
    }
    context.update(environment.as_str().as_bytes());
    context.update(secret);
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

/// Whether `name` is a relative path of plain names (no `..`, no root, no hidden names), as
/// a static file's name must be.
pub fn plain_relative_path(name: &str) -> bool {
    use std::path::Component;
    !name.is_empty()
        && !name.contains('\\')
        && std::path::Path::new(name).components().all(|c| match c {
            Component::Normal(segment) => !segment.to_string_lossy().starts_with('.'),
            _ => false,
        })
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// 64 hex digits, either case, as 32 bytes.
fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let text = text.as_bytes();
    if text.len() != 64 {
        return None;
    }
    let digit = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// A parameter transformation. As the seed warns, the hash covers the transformed value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transform {
    /// Leading and trailing whitespace removed.
    Trim,
    /// Lowercased.
    Lowercase,
    /// Uppercased.
    Uppercase,
}

impl Transform {
    fn apply(self, value: String) -> String {
        match self {
            Self::Trim => value.trim().to_owned(),
            Self::Lowercase => value.to_lowercase(),
            Self::Uppercase => value.to_uppercase(),
        }
    }
}

/// A checked parameter.
#[derive(Debug, Clone)]
pub struct Parameter {
    /// The name.
    pub name: String,
    /// The default value.
    pub default: Option<String>,
    /// Transformations, in order.
    pub transform: Vec<Transform>,
    /// Most characters.
    pub max_length: Option<usize>,
    /// Whether it is a file.
    pub file: bool,
}

/// A checked action; templates index the endpoint's text parameters.
#[derive(Debug, Clone)]
pub enum Action {
    /// See [`ActionConfig::WriteDatapoint`].
    WriteDatapoint {
        /// The datapoint.
        datapoint: DatapointKey,
        /// The value.
        value: Template,
    },
    /// See [`ActionConfig::PublishPortal`].
    PublishPortal {
        /// The account.
        account: crate::xrtc::AccountId,
        /// The portal.
        portal: crate::portal::PortalId,
        /// The payload, or the parameters as JSON.
        payload: Option<Template>,
    },
    /// See [`ActionConfig::HttpRequest`].
    HttpRequest {
        /// The URL.
        url: Template,
        /// The method.
        method: reqwest::Method,
        /// The body's content type.
        content_type: String,
        /// The body (none for GET and DELETE unless configured).
        body: Option<Template>,
        /// Extra headers.
        headers: Vec<(reqwest::header::HeaderName, Secret)>,
    },
    /// See [`ActionConfig::Email`].
    Email {
        /// The recipient.
        to: Template,
        /// The subject.
        subject: Template,
        /// The text.
        body: Template,
        /// Whether uploads are attached.
        attach_uploads: bool,
    },
}

impl Action {
    /// The action's type as configured, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::WriteDatapoint { .. } => "write-datapoint",
            Self::PublishPortal { .. } => "publish-portal",
            Self::HttpRequest { .. } => "http-request",
            Self::Email { .. } => "email",
        }
    }
}

/// What an authentic call answers.
#[derive(Debug, Clone)]
pub enum Answer {
    /// `200 {"application", "endpoint", "environment"}`.
    Called,
    /// A file from the application's static folder.
    StaticFile(Template),
    /// `303` to a URL.
    Redirect(Template),
}

/// An application's secrets (never printed).
#[derive(Clone)]
pub struct Secrets(Vec<Vec<u8>>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{} redacted]", self.0.len())
    }
}

impl Secrets {
    /// The newest secret (the last listed): the one new links are made with.
    pub fn newest(&self) -> &[u8] {
        self.0.last().map_or(&[], Vec::as_slice)
    }
}

/// A checked endpoint.
#[derive(Debug, Clone)]
pub struct SignedEndpoint {
    /// Its application's name.
    pub application: String,
    /// Its name.
    pub name: String,
    /// Its URL path.
    pub path: String,
    /// Description.
    pub description: Option<String>,
    /// Declared parameters.
    pub parameters: Vec<Parameter>,
    /// Indices of the hashed parameters, in hash order.
    pub include_in_hash: Vec<usize>,
    /// Actions, in order.
    pub actions: Vec<Action>,
    /// The answer.
    pub answer: Answer,
    /// Where errors redirect to.
    pub error_redirect: Option<String>,
    /// The application's secrets.
    pub secrets: Arc<Secrets>,
    /// The application's static folder.
    pub static_dir: Option<PathBuf>,
    /// Whether `preview` is accepted.
    pub preview: bool,
    /// Origins whose scripts may call it and read the answer (CORS).
    pub cors_origins: Arc<[String]>,
    /// Whether GET calls it.
    pub get: bool,
    /// Whether POST calls it.
    pub post: bool,
}

/// Every signed endpoint of the configuration, with the settings.
#[derive(Debug, Clone, Default)]
pub struct SignedEndpoints {
    /// `[openendpoints]`.
    pub settings: OpenEndpointsSettings,
    /// The endpoints, in declaration order.
    pub endpoints: Vec<Arc<SignedEndpoint>>,
}

impl SignedEndpoints {
    /// The endpoint `name` of `application`.
    pub fn find(&self, application: &str, name: &str) -> Option<&Arc<SignedEndpoint>> {
        self.endpoints
            .iter()
            .find(|e| e.application == application && e.name == name)
    }
}

/// Why a request's parameters were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamError {
    /// A parameter the endpoint does not declare.
    Unknown(String),
    /// A required parameter was not sent.
    Missing(String),
    /// A value is not acceptable (too long, a file where text is expected, ...).
    Invalid(String),
    /// No `hash`.
    HashMissing,
    /// `environment` is not `live` or `preview`, or preview is off.
    Environment(String),
}

/// A request's parameters, resolved against its endpoint.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Per declared parameter (by index), its value after defaults and transformations (empty
    /// for files).
    pub values: Vec<String>,
    /// Uploaded files, with the parameter they came in.
    pub uploads: Vec<(String, Upload)>,
    /// The environment.
    pub environment: Environment,
    /// The hash as sent.
    pub hash: String,
}

impl SignedEndpoint {
    /// The hash a request with the text `pairs` needs in `environment`, with the newest secret
    /// (`portico hash`); only the hashed parameters must be among them.
    pub fn hash_for(
        &self,
        pairs: &[(String, String)],
        environment: Environment,
        settings: &OpenEndpointsSettings,
    ) -> Result<[u8; 32], ParamError> {
        let mut submitted: Vec<(String, Field)> = pairs
            .iter()
            .map(|(name, value)| (name.clone(), Field::Text(value.clone())))
            .collect();
        // Values that are not hashed (what a form's visitor types) need not be known yet.
        for (index, parameter) in self.parameters.iter().enumerate() {
            let hashed = self.include_in_hash.contains(&index);
            if !hashed && !parameter.file && !pairs.iter().any(|(n, _)| *n == parameter.name) {
                submitted.push((parameter.name.clone(), Field::Text(String::new())));
            }
        }
        submitted.push((HASH_PARAMETER.into(), Field::Text(String::new())));
        submitted.push((
            ENVIRONMENT_PARAMETER.into(),
            Field::Text(environment.as_str().into()),
        ));
        let resolved = self.resolve(submitted, settings)?;
        Ok(self.expected_hash(&resolved.values, environment))
    }

    /// Resolves `submitted` (query pairs, then body pairs) against the declaration.
    pub fn resolve(
        &self,
        submitted: Vec<(String, Field)>,
        settings: &OpenEndpointsSettings,
    ) -> Result<Resolved, ParamError> {
        if submitted.len() > settings.max_parameters {
            return Err(ParamError::Invalid(format!(
                "the request has {} parameters; at most {} are accepted",
                submitted.len(),
                settings.max_parameters
            )));
        }
        let mut hash = None;
        let mut environment = None;
        let mut sent: Vec<Vec<String>> = vec![Vec::new(); self.parameters.len()];
        let mut uploads = Vec::new();
        for (name, field) in submitted {
            let text = |field: Field| match field {
                Field::Text(text) if text.len() <= settings.max_value_bytes => Ok(text),
                Field::Text(_) => Err(ParamError::Invalid(format!(
                    "`{name}` is longer than {} bytes",
                    settings.max_value_bytes
                ))),
                Field::File(_) => Err(ParamError::Invalid(format!(
                    "`{name}` is a file, but a text value is expected"
                ))),
            };
            if name == HASH_PARAMETER || name == ENVIRONMENT_PARAMETER {
                let value = text(field)?;
                let slot = match name.as_str() {
                    HASH_PARAMETER => &mut hash,
                    _ => &mut environment,
                };
                if slot.replace(value).is_some() {
                    return Err(ParamError::Invalid(format!("`{name}` is sent twice")));
                }
                continue;
            }
            let Some(index) = self.parameters.iter().position(|p| p.name == name) else {
                return Err(ParamError::Unknown(name));
            };
            match (self.parameters[index].file, field) {
                // A browser sends an empty part for a file input left empty.
                (true, Field::File(upload))
                    if upload.file_name.is_empty() && upload.bytes.is_empty() => {}
                (true, Field::File(upload)) => uploads.push((name, upload)),
                (true, Field::Text(_)) => {
                    return Err(ParamError::Invalid(format!(
                        "`{name}` must be a file, sent as multipart/form-data"
                    )));
                }
                (false, field) => sent[index].push(text(field)?),
            }
        }
        let hash = hash.ok_or(ParamError::HashMissing)?;
        let environment = match environment.as_deref() {
            None => Environment::Live,
            Some(name) => match Environment::parse(name) {
                Some(Environment::Preview) if !self.preview => {
                    return Err(ParamError::Environment(format!(
                        "the application `{}` accepts no preview requests",
                        self.application
                    )));
                }
                Some(environment) => environment,
                None => {
                    return Err(ParamError::Environment(format!(
                        "`environment` is `{name}`; it must be `live` or `preview`"
                    )));
                }
            },
        };
        let mut values = Vec::with_capacity(self.parameters.len());
        for (parameter, sent) in self.parameters.iter().zip(sent) {
            if parameter.file {
                values.push(String::new());
                continue;
            }
            let mut value = match (sent.is_empty(), &parameter.default) {
                (false, _) => sent.join(&settings.multiple_value_separator),
                (true, Some(default)) => default.clone(),
                (true, None) => return Err(ParamError::Missing(parameter.name.clone())),
            };
            for transform in &parameter.transform {
                value = transform.apply(value);
            }
            if let Some(max) = parameter.max_length
                && value.chars().count() > max
            {
                return Err(ParamError::Invalid(format!(
                    "`{}` has more than {max} characters",
                    parameter.name
                )));
            }
            values.push(value);
        }
        Ok(Resolved {
            values,
            uploads,
            environment,
            hash,
        })
    }

    /// The expected hash for `values` in `environment` with the newest secret (for links).
    pub fn expected_hash(&self, values: &[String], environment: Environment) -> [u8; 32] {
        let hashed: Vec<&str> = self
            .include_in_hash
            .iter()
            .map(|&i| values[i].as_str())
            .collect();
        hash(&self.name, &hashed, environment, self.secrets.newest())
    }

    /// Whether `resolved.hash` is right for one of the secrets; compared in constant time.
    pub fn verify(&self, resolved: &Resolved) -> bool {
        let Some(sent) = parse_hash(&resolved.hash) else {
            return false;
        };
        let hashed: Vec<&str> = self
            .include_in_hash
            .iter()
            .map(|&i| resolved.values[i].as_str())
            .collect();
        let mut matched = false;
        for secret in &self.secrets.0 {
            let expected = hash(&self.name, &hashed, resolved.environment, secret);
            matched |= aws_lc_rs::constant_time::verify_slices_are_equal(&expected, &sent).is_ok();
        }
        matched
    }

    /// The methods it takes, as an `Allow` header lists them.
    pub fn allow(&self) -> &'static str {
        match (self.get, self.post) {
            (true, true) => "GET, POST",
            (true, false) => "GET",
            _ => "POST",
        }
    }

    /// The parameters as a JSON object (text values by name), for default bodies and events.
    pub fn parameters_json(&self, values: &[String]) -> String {
        let object: serde_json::Map<String, serde_json::Value> = self
            .parameters
            .iter()
            .zip(values)
            .filter(|(p, _)| !p.file)
            .map(|(p, v)| (p.name.clone(), serde_json::Value::String(v.clone())))
            .collect();
        serde_json::Value::Object(object).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_example_hashes_as_published() {
        let live = hash(
            "helloworld",
            &["abc", "def"],
            Environment::Live,
            b"openendpoints",
        );
        assert_eq!(
            hex(&live),
            "82bb6e7f675a8d872688cb593a64f615b37f88478d7fed8705496d3e7a1c2699"
        );
        let preview = hash(
            "helloworld",
            &["abc", "def"],
            Environment::Preview,
            b"openendpoints",
        );
        assert_eq!(
            hex(&preview),
            "4afcbe21891e5be6762f495958659a25950a83e7c52f13594cbebe43cfdd9bf4"
        );
        let upper = hex(&live).to_uppercase();
        assert_eq!(parse_hash(&upper), Some(live));
        assert_eq!(parse_hash(&upper[1..]), None);
        assert_eq!(parse_hash(&format!("{}g", &upper[1..])), None);
    }
}
