//! `[openendpoints]` and `[[application]]` as written.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::Transform;

use crate::secrets::Secret;

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
    /// Calls one client address (IPv6: its /64) may make at once to signed endpoints, before
    /// it must wait (429 with `Retry-After`).
    pub calls_burst: u32,
    /// Seconds for one call of an address to be forgotten (the sustained rate).
    pub calls_refill_seconds: u64,
    /// Addresses tracked for `calls_burst`.
    pub calls_max_addresses: usize,
    /// Calls with actions in progress at once on this node; more are refused (429).
    pub max_concurrent_calls: usize,
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
            calls_burst: 60,
            calls_refill_seconds: 1,
            calls_max_addresses: 65_536,
            max_concurrent_calls: 64,
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
    /// Accept secret keys shorter than 16 bytes (128 bits), such as the seed's example
    /// `openendpoints`; the server warns at every start.
    #[serde(default)]
    pub allow_weak_secret: bool,
    /// The folder `static_file` answers come from.
    pub static_dir: Option<PathBuf>,
    /// Whether `environment=preview` is accepted (default true).
    #[serde(default = "yes")]
    pub preview: bool,
    /// Web origins (`https://shop.example`) whose pages may call the endpoints from JavaScript
    /// and read the answers (CORS); none by default. Forms need no entry.
    #[serde(default)]
    pub cors_origins: Vec<String>,
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
    /// The methods accepted: `GET` and `POST` (default both). `["POST"]` keeps link checkers,
    /// which follow links with GET, from calling an endpoint with actions.
    #[serde(default = "get_and_post")]
    pub methods: Vec<String>,
}

fn get_and_post() -> Vec<String> {
    vec!["GET".into(), "POST".into()]
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
