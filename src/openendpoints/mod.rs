//! OpenEndpoints-style signed endpoints (the `openendpoints-authentication` seed): applications
//! declared in the config, each with secrets and endpoints; a request to
//! `{prefix}/{application}/{endpoint}` is authentic when its `hash` is the hex SHA-256 of the
//! endpoint's name, its `include_in_hash` values in order, the environment (`live` or
//! `preview`) and one of the application's secrets. An authentic call runs the endpoint's
//! actions and answers with a file, a redirect or a short JSON document.
//!
//! This module owns the configuration, the hash and what a request's parameters resolve to;
//! [`run`] performs the actions, `api::openendpoints` speaks HTTP.

pub mod form;
pub mod run;
pub mod template;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use crate::config::Secret;
use crate::datapoint::{Datapoint, DatapointKey};
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

/// `[openendpoints]`: where signed endpoints are mounted and what bounds their requests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenEndpointsSettings {
    /// The mount point: `""` serves `/{application}/{endpoint}` at the root, as OpenEndpoints
    /// does; `/forms` serves `/forms/{application}/{endpoint}`.
    pub prefix: String,
    /// Largest request body (form, multipart with files, JSON), in bytes.
    pub max_body_bytes: usize,
    /// Most parameters (name/value pairs) in one request.
    pub max_parameters: usize,
    /// Most bytes in one text value.
    pub max_value_bytes: usize,
    /// Joins the values of a name sent several times (checkboxes, multiple selects).
    pub multiple_value_separator: String,
    /// Largest static file answered, in bytes.
    pub max_file_bytes: u64,
    /// How long an `http-request` action may take to connect.
    pub connect_timeout_ms: u64,
    /// How long an `http-request` action may take in all.
    pub request_timeout_ms: u64,
    /// Addresses `http-request` actions may reach although they are not global (loopback,
    /// private, ...): IP addresses or CIDR blocks, as `webhooks.allow_targets`.
    pub allow_targets: Vec<String>,
}

impl Default for OpenEndpointsSettings {
    fn default() -> Self {
        Self {
            prefix: String::new(),
            max_body_bytes: 1024 * 1024,
            max_parameters: 64,
            max_value_bytes: 16 * 1024,
            multiple_value_separator: "||".into(),
            max_file_bytes: 16 * 1024 * 1024,
            connect_timeout_ms: 5_000,
            request_timeout_ms: 10_000,
            allow_targets: Vec::new(),
        }
    }
}

/// `[[application]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationConfig {
    /// The application's name: the first path segment after the prefix.
    pub name: String,
    /// Secret keys, any one valid (rotate: add the new one, move clients, remove the old one).
    #[serde(default)]
    pub secrets: Vec<Secret>,
    /// Files each holding one secret key (surrounding whitespace ignored), with `secrets`.
    #[serde(default)]
    pub secret_files: Vec<PathBuf>,
    /// The folder `static_file` answers come from.
    pub static_dir: Option<PathBuf>,
    /// Whether `environment=preview` is accepted (default true).
    #[serde(default = "yes")]
    pub preview: bool,
    /// The endpoints (`[[application.endpoint]]`).
    #[serde(default, rename = "endpoint")]
    pub endpoints: Vec<SignedEndpointConfig>,
}

fn yes() -> bool {
    true
}

/// `[[application.endpoint]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedEndpointConfig {
    /// The endpoint's name: hashed first, and the last path segment.
    pub name: String,
    /// Description, for the OpenAPI document.
    pub description: Option<String>,
    /// The parameters a request may send; any other is refused.
    #[serde(default)]
    pub parameters: Vec<ParameterConfig>,
    /// Parameters whose values are hashed, in this order.
    #[serde(default)]
    pub include_in_hash: Vec<String>,
    /// What an authentic call does, in order; the first failure stops it.
    #[serde(default)]
    pub actions: Vec<ActionConfig>,
    /// Answer with this file from the application's `static_dir` (`${parameter}` allowed).
    pub static_file: Option<String>,
    /// Answer with a redirect (303) to this URL (`${parameter}` values are percent-encoded):
    /// a web form's success page.
    pub redirect: Option<String>,
    /// On any refusal or failure, redirect (303) here with `error=<code>` added to the query:
    /// a web form's error page.
    pub error_redirect: Option<String>,
}

/// A declared parameter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParameterConfig {
    /// The name (case-sensitive).
    pub name: String,
    /// The value when none is sent; without it, the parameter is required.
    pub default: Option<String>,
    /// Applied in order before the value is hashed or used.
    #[serde(default)]
    pub transform: Vec<Transform>,
    /// Most characters after transformation.
    pub max_length: Option<usize>,
    /// A file upload (multipart only), optional; never hashed.
    #[serde(default)]
    pub file: bool,
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

/// An action as configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ActionConfig {
    /// Writes a datapoint (its type decides how the text is read).
    WriteDatapoint {
        /// The datapoint's key.
        datapoint: String,
        /// The value, usually `${parameter}`.
        value: String,
    },
    /// Sets an item in an XRTC portal of an account.
    PublishPortal {
        /// The account (`AC…`) whose portal it is.
        account: String,
        /// The portal.
        portal: String,
        /// The item's payload; default: the parameters as a JSON object.
        payload: Option<String>,
    },
    /// Calls a URL (with the webhooks' protection against request forgery).
    HttpRequest {
        /// The URL; `${parameter}` values are percent-encoded.
        url: String,
        /// `GET`, `POST` (default), `PUT`, `PATCH` or `DELETE`.
        #[serde(default = "post")]
        method: String,
        /// The body's type (default `application/json`); decides how values are escaped.
        content_type: Option<String>,
        /// The body; default for methods with a body: the parameters as a JSON object.
        body: Option<String>,
        /// Extra request headers (such as an API key; never logged).
        #[serde(default)]
        headers: BTreeMap<String, Secret>,
    },
    /// Sends an e-mail through `[mail]`.
    Email {
        /// The recipient (`${parameter}` allowed; one address).
        to: String,
        /// The subject.
        subject: String,
        /// The text.
        body: String,
        /// Attach the request's uploaded files.
        #[serde(default)]
        attach_uploads: bool,
    },
}

fn post() -> String {
    "POST".into()
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
        account: Arc<str>,
        /// The portal.
        portal: String,
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
}

/// Every signed endpoint of the configuration, with the settings.
#[derive(Debug, Clone, Default)]
pub struct SignedEndpoints {
    /// `[openendpoints]`.
    pub settings: OpenEndpointsSettings,
    /// The endpoints, in declaration order.
    pub endpoints: Vec<Arc<SignedEndpoint>>,
}

/// A name for an application or endpoint: one path segment of letters, digits and `-._~`.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c))
        && name != "."
        && name != "..";
    match ok {
        true => Ok(()),
        false => Err(format!(
            "`{name}` must be 1 to 100 ASCII letters, digits and - . _ ~ (one path segment)"
        )),
    }
}

/// What the rest of the configuration tells the check.
#[derive(Debug)]
pub struct Context<'a> {
    /// Declared datapoints.
    pub datapoints: &'a [Datapoint],
    /// Paths of configured `[[endpoint]]`s.
    pub endpoint_paths: &'a [String],
    /// Whether XRTC (portals) is on.
    pub xrtc: bool,
    /// Paths that belong to Portico.
    pub reserved: &'a [&'a str],
}

impl SignedEndpoints {
    /// Checks `[openendpoints]` and `[[application]]`, reading secret files; every problem
    /// names its key.
    pub fn check(
        settings: &OpenEndpointsSettings,
        applications: &[ApplicationConfig],
        context: &Context<'_>,
    ) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let mut prefix = settings.prefix.as_str();
        if !prefix.is_empty()
            && (!prefix.starts_with('/')
                || prefix.ends_with('/')
                || prefix[1..].split('/').any(|s| check_name(s).is_err()))
        {
            problems.push(format!(
                "key `openendpoints.prefix`: `{prefix}` must be empty or like /forms (segments \
                 of letters, digits and - . _ ~, no trailing /)"
            ));
            prefix = "";
        }
        if let Err(more) =
            crate::config::IpNets::parse("openendpoints.allow_targets", &settings.allow_targets)
        {
            problems.extend(more);
        }
        let bounds = [
            ("max_body_bytes", settings.max_body_bytes as u64, 64 << 20),
            ("max_parameters", settings.max_parameters as u64, 10_000),
            ("max_value_bytes", settings.max_value_bytes as u64, 1 << 20),
            ("max_file_bytes", settings.max_file_bytes, 1 << 30),
            ("connect_timeout_ms", settings.connect_timeout_ms, 60_000),
            ("request_timeout_ms", settings.request_timeout_ms, 300_000),
        ];
        for (key, value, ceiling) in bounds {
            if value == 0 || value > ceiling {
                problems.push(format!(
                    "key `openendpoints.{key}` must be between 1 and {ceiling}"
                ));
            }
        }
        if settings.multiple_value_separator.is_empty() {
            problems.push("key `openendpoints.multiple_value_separator` must not be empty".into());
        }
        let mut endpoints = Vec::new();
        let mut names = HashSet::new();
        for (a, app) in applications.iter().enumerate() {
            let at = format!("application[{a}]");
            if let Err(e) = check_name(&app.name) {
                problems.push(format!("key `{at}.name`: {e}"));
                continue;
            }
            if !names.insert(app.name.as_str()) {
                problems.push(format!(
                    "key `{at}.name`: `{}` names two applications",
                    app.name
                ));
            }
            let mount = format!("{prefix}/{}", app.name);
            if let Some(taken) = context.reserved.iter().find(|r| {
                mount == **r
                    || mount.starts_with(&format!("{r}/"))
                    || r.starts_with(&format!("{mount}/"))
            }) {
                problems.push(format!(
                    "key `{at}.name`: `{mount}` would share `{taken}` with Portico; rename the \
                     application or set `openendpoints.prefix`"
                ));
            }
            let secrets = read_secrets(app, &at, &mut problems);
            if let Some(dir) = &app.static_dir
                && !dir.is_dir()
            {
                problems.push(format!(
                    "key `{at}.static_dir`: {} is not a folder",
                    dir.display()
                ));
            }
            let secrets = Arc::new(secrets);
            let mut endpoint_names = HashSet::new();
            for (e, raw) in app.endpoints.iter().enumerate() {
                let at = format!("{at}.endpoint[{e}]");
                if let Err(problem) = check_name(&raw.name) {
                    problems.push(format!("key `{at}.name`: {problem}"));
                    continue;
                }
                if !endpoint_names.insert(raw.name.as_str()) {
                    problems.push(format!(
                        "key `{at}.name`: `{}` names two endpoints of `{}`",
                        raw.name, app.name
                    ));
                }
                let path = format!("{mount}/{}", raw.name);
                if context.endpoint_paths.contains(&path) {
                    problems.push(format!(
                        "key `{at}.name`: `{path}` is also a configured [[endpoint]] path"
                    ));
                }
                if let Some(endpoint) = check_endpoint(raw, app, &at, context, &mut problems) {
                    endpoints.push(Arc::new(SignedEndpoint {
                        application: app.name.clone(),
                        path,
                        secrets: secrets.clone(),
                        static_dir: app.static_dir.clone(),
                        preview: app.preview,
                        ..endpoint
                    }));
                }
            }
        }
        match problems.is_empty() {
            true => Ok(Self {
                settings: settings.clone(),
                endpoints,
            }),
            false => Err(problems),
        }
    }

    /// The endpoint `name` of `application`.
    pub fn find(&self, application: &str, name: &str) -> Option<&Arc<SignedEndpoint>> {
        self.endpoints
            .iter()
            .find(|e| e.application == application && e.name == name)
    }
}

fn read_secrets(app: &ApplicationConfig, at: &str, problems: &mut Vec<String>) -> Secrets {
    let mut secrets: Vec<Vec<u8>> = app
        .secrets
        .iter()
        .map(|s| s.expose().as_bytes().to_vec())
        .collect();
    for (n, path) in app.secret_files.iter().enumerate() {
        match std::fs::read_to_string(path) {
            Ok(text) => secrets.push(text.trim().as_bytes().to_vec()),
            Err(e) => problems.push(format!(
                "key `{at}.secret_files[{n}]`: {}: {e}",
                path.display()
            )),
        }
    }
    if secrets.is_empty() {
        problems.push(format!(
            "key `{at}.secrets`: an application needs at least one secret key (or secret_files)"
        ));
    }
    if secrets.iter().any(Vec::is_empty) {
        problems.push(format!("key `{at}.secrets`: a secret key is empty"));
    }
    Secrets(secrets)
}

fn check_endpoint(
    raw: &SignedEndpointConfig,
    app: &ApplicationConfig,
    at: &str,
    context: &Context<'_>,
    problems: &mut Vec<String>,
) -> Option<SignedEndpoint> {
    let before = problems.len();
    let mut parameters = Vec::new();
    for (p, param) in raw.parameters.iter().enumerate() {
        if check_name(&param.name).is_err()
            || [HASH_PARAMETER, ENVIRONMENT_PARAMETER].contains(&param.name.as_str())
        {
            problems.push(format!(
                "key `{at}.parameters[{p}].name`: `{}` is not a parameter name (letters, digits, \
                 - . _ ~; not `hash` or `environment`)",
                param.name
            ));
        }
        if parameters.iter().any(|q: &Parameter| q.name == param.name) {
            problems.push(format!(
                "key `{at}.parameters[{p}].name`: `{}` is declared twice",
                param.name
            ));
        }
        if param.file && (param.default.is_some() || !param.transform.is_empty()) {
            problems.push(format!(
                "key `{at}.parameters[{p}]`: a file parameter has no default and no transform"
            ));
        }
        parameters.push(Parameter {
            name: param.name.clone(),
            default: param.default.clone(),
            transform: param.transform.clone(),
            max_length: param.max_length,
            file: param.file,
        });
    }
    // Templates see text parameters only; a file parameter's name resolves to nothing.
    let names: Vec<&str> = parameters
        .iter()
        .map(|p| if p.file { "" } else { p.name.as_str() })
        .collect();
    let mut include_in_hash = Vec::new();
    for (n, name) in raw.include_in_hash.iter().enumerate() {
        match names.iter().position(|p| !p.is_empty() && p == name) {
            Some(index) => include_in_hash.push(index),
            None => problems.push(format!(
                "key `{at}.include_in_hash[{n}]`: `{name}` is not a declared text parameter"
            )),
        }
    }
    let template = |key: String, text: &str, problems: &mut Vec<String>| {
        Template::parse(text, &names)
            .map_err(|e| problems.push(format!("key `{key}`: {e}")))
            .ok()
    };
    let mut actions = Vec::new();
    for (n, action) in raw.actions.iter().enumerate() {
        let at = format!("{at}.actions[{n}]");
        match action {
            ActionConfig::WriteDatapoint { datapoint, value } => {
                let declared = context
                    .datapoints
                    .iter()
                    .find(|d| d.key.as_str() == datapoint);
                match declared {
                    None => problems.push(format!(
                        "key `{at}.datapoint`: no datapoint `{datapoint}` is declared"
                    )),
                    Some(d) if !d.access.writable() => {
                        problems.push(format!("key `{at}.datapoint`: `{datapoint}` is read-only"))
                    }
                    Some(d) => {
                        if let Some(value) = template(format!("{at}.value"), value, problems) {
                            actions.push(Action::WriteDatapoint {
                                datapoint: d.key.clone(),
                                value,
                            });
                        }
                    }
                }
            }
            ActionConfig::PublishPortal {
                account,
                portal,
                payload,
            } => {
                if !context.xrtc {
                    problems.push(format!(
                        "key `{at}`: publish-portal needs XRTC (`xrtc.enabled`)"
                    ));
                }
                let account_ok = account.len() == 18
                    && account.starts_with("AC")
                    && account[2..].bytes().all(|b| b.is_ascii_digit());
                if !account_ok {
                    problems.push(format!(
                        "key `{at}.account`: `{account}` is not an XRTC account id (AC and 16 \
                         digits)"
                    ));
                }
                if !crate::xrtc::valid_portal_id(portal) {
                    problems.push(format!("key `{at}.portal`: `{portal}` is not a portal id"));
                }
                let payload = match payload {
                    Some(text) => template(format!("{at}.payload"), text, problems).map(Some),
                    None => Some(None),
                };
                if let Some(payload) = payload {
                    actions.push(Action::PublishPortal {
                        account: Arc::from(account.as_str()),
                        portal: portal.clone(),
                        payload,
                    });
                }
            }
            ActionConfig::HttpRequest {
                url,
                method,
                content_type,
                body,
                headers,
            } => {
                let method = match method.to_ascii_uppercase().as_str() {
                    "GET" => Some(reqwest::Method::GET),
                    "POST" => Some(reqwest::Method::POST),
                    "PUT" => Some(reqwest::Method::PUT),
                    "PATCH" => Some(reqwest::Method::PATCH),
                    "DELETE" => Some(reqwest::Method::DELETE),
                    _ => {
                        problems.push(format!(
                            "key `{at}.method`: `{method}` is not GET, POST, PUT, PATCH or DELETE"
                        ));
                        None
                    }
                };
                let url = template(format!("{at}.url"), url, problems);
                if let Some(url) = &url {
                    check_absolute_url(url, &format!("{at}.url"), problems);
                }
                let body = match body {
                    Some(text) => template(format!("{at}.body"), text, problems).map(Some),
                    None => Some(None),
                };
                let mut parsed_headers = Vec::new();
                for (name, value) in headers {
                    match reqwest::header::HeaderName::from_bytes(name.as_bytes()) {
                        Ok(header)
                            if reqwest::header::HeaderValue::from_str(value.expose()).is_ok() =>
                        {
                            parsed_headers.push((header, value.clone()));
                        }
                        _ => problems.push(format!(
                            "key `{at}.headers`: `{name}` is not a header name with a valid value"
                        )),
                    }
                }
                if let (Some(method), Some(url), Some(body)) = (method, url, body) {
                    actions.push(Action::HttpRequest {
                        url,
                        method,
                        content_type: content_type
                            .clone()
                            .unwrap_or_else(|| "application/json".into()),
                        body,
                        headers: parsed_headers,
                    });
                }
            }
            ActionConfig::Email {
                to,
                subject,
                body,
                attach_uploads,
            } => {
                let to = template(format!("{at}.to"), to, problems);
                let subject = template(format!("{at}.subject"), subject, problems);
                let body = template(format!("{at}.body"), body, problems);
                if let (Some(to), Some(subject), Some(body)) = (to, subject, body) {
                    actions.push(Action::Email {
                        to,
                        subject,
                        body,
                        attach_uploads: *attach_uploads,
                    });
                }
            }
        }
    }
    let answer = match (&raw.static_file, &raw.redirect) {
        (Some(_), Some(_)) => {
            problems.push(format!(
                "key `{at}`: `static_file` and `redirect` are two answers; choose one"
            ));
            Answer::Called
        }
        (Some(file), None) => {
            if app.static_dir.is_none() {
                problems.push(format!(
                    "key `{at}.static_file`: the application has no `static_dir`"
                ));
            }
            template(format!("{at}.static_file"), file, problems)
                .map_or(Answer::Called, Answer::StaticFile)
        }
        (None, Some(url)) => match template(format!("{at}.redirect"), url, problems) {
            Some(url) => {
                check_redirect(&url, &format!("{at}.redirect"), problems);
                Answer::Redirect(url)
            }
            None => Answer::Called,
        },
        (None, None) => Answer::Called,
    };
    if let Some(url) = &raw.error_redirect {
        match Template::parse(url, &[]) {
            Ok(url) => check_redirect(&url, &format!("{at}.error_redirect"), problems),
            Err(_) => problems.push(format!(
                "key `{at}.error_redirect`: `{url}` is a fixed URL; it takes no ${{parameter}}"
            )),
        }
    }
    if problems.len() > before {
        return None;
    }
    Some(SignedEndpoint {
        application: String::new(),
        name: raw.name.clone(),
        path: String::new(),
        description: raw.description.clone(),
        parameters,
        include_in_hash,
        actions,
        answer,
        error_redirect: raw.error_redirect.clone(),
        secrets: Arc::new(Secrets(Vec::new())),
        static_dir: None,
        preview: true,
    })
}

/// An absolute `http`/`https` URL whose scheme, host and port are fixed: placeholders only
/// after the authority, so a value can never choose where a request or redirect goes.
fn check_absolute_url(url: &Template, key: &str, problems: &mut Vec<String>) {
    let fixed = url.fixed_prefix();
    let authority_ends = ["https://", "http://"]
        .iter()
        .find_map(|scheme| fixed.strip_prefix(scheme))
        .map(|rest| rest.contains(['/', '?', '#']) || !url.has_values());
    match authority_ends {
        Some(true) => {}
        Some(false) => problems.push(format!(
            "key `{key}`: a ${{parameter}} may not appear before the URL's path (its host \
             must be fixed)"
        )),
        None => problems.push(format!(
            "key `{key}`: `{fixed}…` must be an absolute http:// or https:// URL"
        )),
    }
}

/// A redirect goes to an absolute URL with a fixed host, or to a path on this server.
fn check_redirect(url: &Template, key: &str, problems: &mut Vec<String>) {
    if !url.is_visible_ascii() {
        problems.push(format!(
            "key `{key}`: a redirect URL is written in visible ASCII (percent-encode the rest)"
        ));
        return;
    }
    let fixed = url.fixed_prefix();
    if fixed.starts_with('/') && !fixed.starts_with("//") && !fixed.starts_with("/\\") {
        return;
    }
    check_absolute_url(url, key, problems);
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
    /// (`portico hash`); file parameters are not needed for it.
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
