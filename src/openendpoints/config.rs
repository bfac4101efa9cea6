//! The `[openendpoints]` settings and `[[application]]` declarations, and their check into
//! [`SignedEndpoints`]: names, mount paths that stay clear of Portico's own, secrets (inline or
//! from files), parameters, templates that name declared parameters only, actions, and answers
//! whose URLs have fixed hosts.

use std::collections::HashSet;
use std::sync::Arc;

use crate::datapoint::Datapoint;

pub use super::settings::*;
use super::template::{Escape, Template};
use super::{
    Action, Answer, ENVIRONMENT_PARAMETER, HASH_PARAMETER, Parameter, Secrets, SignedEndpoint,
    SignedEndpoints,
};

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
    /// What `http-request` actions may reach (`openendpoints.allow_targets`).
    pub targets: &'a crate::net::targets::Targets,
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
            crate::net::IpNets::parse("openendpoints.allow_targets", &settings.allow_targets)
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
            ("calls_burst", u64::from(settings.calls_burst), 1_000_000),
            (
                "calls_refill_seconds",
                settings.calls_refill_seconds,
                86_400,
            ),
            (
                "calls_max_addresses",
                settings.calls_max_addresses as u64,
                10_000_000,
            ),
            (
                "max_concurrent_calls",
                settings.max_concurrent_calls as u64,
                100_000,
            ),
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
            for (n, origin) in app.cors_origins.iter().enumerate() {
                if !is_origin(origin) {
                    problems.push(format!(
                        "key `{at}.cors_origins[{n}]`: `{origin}` is not an origin like \
                         https://shop.example or http://localhost:8080 (no path, no *)"
                    ));
                }
            }
            let cors_origins: Arc<[String]> = app.cors_origins.iter().cloned().collect();
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
                let shared = Shared {
                    app,
                    path,
                    secrets: secrets.clone(),
                    cors_origins: cors_origins.clone(),
                };
                if let Some(endpoint) = check_endpoint(raw, shared, &at, context, &mut problems) {
                    endpoints.push(Arc::new(endpoint));
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
}

/// The shortest secret key accepted without `allow_weak_secret`: 128 bits.
pub const MIN_SECRET_BYTES: usize = 16;

/// An application's secret keys as bytes (inline and from files); `problems` names what is
/// wrong with them.
fn secret_bytes(app: &ApplicationConfig, at: &str, problems: &mut Vec<String>) -> Vec<Vec<u8>> {
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
    secrets
}

fn read_secrets(app: &ApplicationConfig, at: &str, problems: &mut Vec<String>) -> Secrets {
    let secrets = secret_bytes(app, at, problems);
    if secrets.is_empty() {
        problems.push(format!(
            "key `{at}.secrets`: an application needs at least one secret key (or secret_files)"
        ));
    }
    if secrets.iter().any(Vec::is_empty) {
        problems.push(format!("key `{at}.secrets`: a secret key is empty"));
    } else if !app.allow_weak_secret && secrets.iter().any(|s| s.len() < MIN_SECRET_BYTES) {
        problems.push(format!(
            "key `{at}.secrets`: a secret key is shorter than {MIN_SECRET_BYTES} bytes (128 bits), \
             so its hashes can be forged by trying keys; make one with `portico keys generate \
             --alg HS256`, or set `allow_weak_secret = true` to keep it"
        ));
    }
    Secrets(secrets)
}

/// What an endpoint takes from its application.
struct Shared<'a> {
    app: &'a ApplicationConfig,
    path: String,
    secrets: Arc<Secrets>,
    cors_origins: Arc<[String]>,
}

fn check_endpoint(
    raw: &SignedEndpointConfig,
    shared: Shared<'_>,
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
                let account = crate::xrtc::AccountId::parse(account);
                if account.is_none() {
                    problems.push(format!(
                        "key `{at}.account`: not an XRTC account id (AC and 16 digits)"
                    ));
                }
                let portal = crate::portal::PortalId::parse(portal);
                if let Err(e) = &portal {
                    problems.push(format!("key `{at}.portal`: {e}"));
                }
                let payload = match payload {
                    Some(text) => template(format!("{at}.payload"), text, problems).map(Some),
                    None => Some(None),
                };
                if let (Some(payload), Some(account), Ok(portal)) = (payload, account, portal) {
                    actions.push(Action::PublishPortal {
                        account,
                        portal,
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
                    // Its form and any IP literal, with sample values.
                    let sample = url.render(&vec!["x".to_owned(); names.len()], Escape::Url);
                    if let Err(refused) = context.targets.check_url(&sample) {
                        problems.push(format!("key `{at}.url`: {refused}"));
                    }
                }
                let content_type = content_type
                    .clone()
                    .unwrap_or_else(|| "application/json".into());
                if reqwest::header::HeaderValue::from_str(&content_type).is_err() {
                    problems.push(format!(
                        "key `{at}.content_type`: `{content_type}` is not a header value"
                    ));
                }
                let body = match body {
                    Some(text) => template(format!("{at}.body"), text, problems).map(Some),
                    None => Some(None),
                };
                if let Some(Some(body)) = &body
                    && body.has_values()
                {
                    let fits = match super::run::body_escape(&content_type) {
                        Escape::Json => body.values_inside_json_strings(),
                        Escape::Form | Escape::Url => true,
                        Escape::None => content_type.to_ascii_lowercase().starts_with("text/plain"),
                    };
                    if !fits {
                        problems.push(format!(
                            "key `{at}.body`: a ${{parameter}} may only stand inside a JSON \
                             string, in a form or in text/plain, where it is escaped (or kept) \
                             safely"
                        ));
                    }
                }
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
                        content_type,
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
                let hashed: Vec<&str> = names
                    .iter()
                    .enumerate()
                    .map(|(i, name)| match include_in_hash.contains(&i) {
                        true => *name,
                        false => "",
                    })
                    .collect();
                // A recipient from an unhashed value would let anyone mail anyone.
                let to = match Template::parse(to, &hashed) {
                    Ok(t) if t.has_values() || crate::mail::Address::parse(to).is_some() => Some(t),
                    Ok(_) => {
                        problems.push(format!("key `{at}.to`: `{to}` is not an e-mail address"));
                        None
                    }
                    Err(e) => {
                        problems.push(format!(
                            "key `{at}.to`: {e}; a recipient may only use parameters listed in \
                             include_in_hash"
                        ));
                        None
                    }
                };
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
            if shared.app.static_dir.is_none() {
                problems.push(format!(
                    "key `{at}.static_file`: the application has no `static_dir`"
                ));
            }
            let name = template(format!("{at}.static_file"), file, problems);
            if name.as_ref().is_some_and(|n| !n.has_values()) && !super::plain_relative_path(file) {
                problems.push(format!(
                    "key `{at}.static_file`: `{file}` must be a relative path of plain names \
                     inside static_dir"
                ));
            }
            name.map_or(Answer::Called, Answer::StaticFile)
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
    let mut methods = (false, false);
    for method in &raw.methods {
        match method.to_ascii_uppercase().as_str() {
            "GET" => methods.0 = true,
            "POST" => methods.1 = true,
            _ => problems.push(format!("key `{at}.methods`: `{method}` is not GET or POST")),
        }
    }
    if methods == (false, false) {
        problems.push(format!("key `{at}.methods`: name GET, POST or both"));
    }
    if problems.len() > before {
        return None;
    }
    Some(SignedEndpoint {
        get: methods.0,
        post: methods.1,
        application: shared.app.name.clone(),
        name: raw.name.clone(),
        path: shared.path,
        description: raw.description.clone(),
        parameters,
        include_in_hash,
        actions,
        answer,
        error_redirect: raw.error_redirect.clone(),
        secrets: shared.secrets,
        static_dir: shared.app.static_dir.clone(),
        preview: shared.app.preview,
        cors_origins: shared.cors_origins,
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

/// A web origin as browsers send it: `scheme://host[:port]`, lowercase, nothing after.
fn is_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    else {
        return false;
    };
    !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.:[]".contains(c))
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
