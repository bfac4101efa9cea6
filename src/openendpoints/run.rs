//! Running an authentic call in two phases. First everything is prepared and checked: each
//! action's values rendered and accepted (datapoint values, e-mail addresses, portal payload
//! sizes, URLs), the answer made (a static file read). Only then is the `endpoint.called` event
//! queued for webhooks and are the actions carried out in order, so input that cannot be used
//! changes nothing.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;

use crate::access::{Actor, SignedCall};
use crate::clock::Clock;
use crate::datapoint::registry::{DatapointId, Datapoints, WriteError};
use crate::datapoint::{Value, ValueType};
use crate::events::{Draft, EventPayload, FileInfo, Journal};
use crate::mail::{MailError, Mailer, Message};
use crate::net::targets::{Targets, VettingResolver};
use crate::portal::NewItem;
use crate::ratelimit::{Throttle, ThrottleSettings, Throttled};
use crate::store::Change;
use crate::xrtc::Xrtc;

use super::template::{Escape, Template};
use super::{Action, Answer, Resolved, SignedEndpoint, SignedEndpoints};

/// What an authentic call answers.
#[derive(Debug)]
pub enum Answered {
    /// The call was carried out; nothing else to show.
    Called,
    /// A file's bytes and media type.
    File {
        /// The media type, from the file's extension.
        content_type: &'static str,
        /// The contents.
        bytes: Vec<u8>,
    },
    /// A redirect to this URL.
    Redirect(String),
}

/// Why a call was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The hash is not right for any secret.
    #[error(
        "The hash does not match this request: check the endpoint name, the include-in-hash \
         values in order, the environment and the secret key."
    )]
    HashMismatch,
    /// A datapoint refused the value.
    #[error("{0}")]
    Value(#[from] crate::datapoint::ValueError),
    /// A value that cannot be used (an e-mail address, a file name, a payload too large).
    #[error("{0}")]
    Invalid(String),
    /// The static file does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Too many calls from this address, or in progress on this node.
    #[error("{0}")]
    TooMany(String, Duration),
    /// The store could not commit, or the server is stopping.
    #[error("{0}")]
    Unavailable(String),
    /// An outbound action (HTTP call, e-mail) failed.
    #[error("{0}")]
    ActionFailed(String),
}

/// An action, prepared: everything rendered and checked, ready to be carried out.
enum Step {
    Write(DatapointId, Value),
    Publish(crate::xrtc::AccountId, NewItem),
    Http(reqwest::RequestBuilder, String),
    Email(Message),
}

/// Everything the actions reach.
#[derive(Debug)]
pub struct Runner {
    /// The signed endpoints.
    pub endpoints: Arc<SignedEndpoints>,
    datapoints: Datapoints,
    xrtc: Option<Arc<Xrtc>>,
    mailer: Mailer,
    client: reqwest::Client,
    targets: Arc<Targets>,
    journal: Arc<Journal>,
    clock: Arc<dyn Clock>,
    calls: Throttle,
    in_progress: Arc<Semaphore>,
}

/// What [`Runner::new`] needs.
#[derive(Debug)]
pub struct Parts {
    /// The signed endpoints.
    pub endpoints: Arc<SignedEndpoints>,
    /// Datapoints, for `write-datapoint`.
    pub datapoints: Datapoints,
    /// Portals, for `publish-portal`.
    pub xrtc: Option<Arc<Xrtc>>,
    /// E-mail, for `email`.
    pub mailer: Mailer,
    /// The journal, for `endpoint.called`.
    pub journal: Arc<Journal>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
}

impl Runner {
    /// A runner; its HTTP client reaches only vetted addresses and follows no redirect.
    pub fn new(parts: Parts) -> Result<Self, String> {
        let settings = &parts.endpoints.settings;
        let allowed =
            crate::net::IpNets::parse("openendpoints.allow_targets", &settings.allow_targets)
                .map_err(|problems| problems.join("; "))?;
        let targets = Arc::new(Targets::new(allowed, "openendpoints.allow_targets"));
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(VettingResolver(targets.clone())))
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
            .timeout(Duration::from_millis(settings.request_timeout_ms))
            .user_agent(concat!("Portico-Endpoints/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("signed endpoints' HTTP client: {e}"))?;
        warn_of_ambiguous_names(&parts.endpoints);
        // Per-address call rate: the identity provider's address buckets, each call counted.
        let calls = Throttle::new(ThrottleSettings {
            ip_burst: settings.calls_burst,
            ip_refill_seconds: settings.calls_refill_seconds,
            max_entries: settings.calls_max_addresses,
            ..ThrottleSettings::default()
        });
        Ok(Self {
            in_progress: Arc::new(Semaphore::new(settings.max_concurrent_calls)),
            calls,
            endpoints: parts.endpoints,
            datapoints: parts.datapoints,
            xrtc: parts.xrtc,
            mailer: parts.mailer,
            client,
            targets,
            journal: parts.journal,
            clock: parts.clock,
        })
    }

    /// Counts a call from `client`; refused when its address has called too often.
    pub fn admit(&self, client: std::net::IpAddr) -> Result<(), CallError> {
        self.calls
            .take(client, std::time::Instant::now())
            .map_err(|Throttled(after)| {
                CallError::TooMany(
                    "Too many calls to signed endpoints from this address; retry later.".into(),
                    after,
                )
            })
    }

    /// Verifies the hash, prepares the actions and the answer, records the call, then carries
    /// the actions out.
    pub async fn call(
        &self,
        endpoint: &SignedEndpoint,
        resolved: &Resolved,
    ) -> Result<Answered, CallError> {
        if !endpoint.verify(resolved) {
            return Err(CallError::HashMismatch);
        }
        // The hash is the credential: the call acts as this endpoint, with the authority its
        // configured actions give it.
        let actor = Actor::Signed(Arc::new(SignedCall {
            application: Arc::from(endpoint.application.as_str()),
            endpoint: Arc::from(endpoint.name.as_str()),
            environment: resolved.environment.as_str(),
        }));
        let _permit = match endpoint.actions.is_empty() {
            true => None,
            false => Some(self.in_progress.clone().try_acquire_owned().map_err(|_| {
                CallError::TooMany(
                    "Too many signed calls are in progress; retry shortly.".into(),
                    Duration::from_secs(1),
                )
            })?),
        };
        let mut steps = Vec::with_capacity(endpoint.actions.len());
        for action in &endpoint.actions {
            steps.push(self.prepare(&actor, endpoint, action, resolved)?);
        }
        let answer = self.answer(endpoint, &resolved.values).await?;
        self.record(&actor, endpoint, resolved).await?;
        for (n, step) in steps.into_iter().enumerate() {
            self.carry_out(&actor, step).await.map_err(|error| {
                tracing::info!(
                    application = %endpoint.application, endpoint = %endpoint.name,
                    action = n, %error, "signed endpoint action failed"
                );
                error
            })?;
        }
        Ok(answer)
    }

    /// The `endpoint.called` event: recorded in the journal with its webhook deliveries
    /// (before anything happens, so an answered call is never lost to its subscribers), then
    /// published.
    async fn record(
        &self,
        actor: &Actor,
        endpoint: &SignedEndpoint,
        resolved: &Resolved,
    ) -> Result<(), CallError> {
        let parameters = endpoint.parameters_json(&resolved.values);
        let files: Vec<FileInfo> = resolved
            .uploads
            .iter()
            .map(|(name, upload)| FileInfo {
                parameter: name.clone(),
                file_name: upload.file_name.clone(),
                content_type: upload.content_type.clone(),
                size: upload.bytes.len(),
            })
            .collect();
        let draft = Draft {
            time: self.clock.now(),
            actor: actor.reference(),
            payload: EventPayload::EndpointCalled {
                application: Arc::from(endpoint.application.as_str()),
                endpoint: Arc::from(endpoint.name.as_str()),
                environment: resolved.environment.as_str(),
                parameters: Arc::from(parameters.as_str()),
                files: files.into(),
            },
        };
        self.journal
            .commit(vec![draft], |_| Change::default())
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "recording endpoint.called failed");
                CallError::Unavailable("The call could not be recorded; retry.".into())
            })?;
        Ok(())
    }

    /// Renders and checks one action.
    fn prepare(
        &self,
        actor: &Actor,
        endpoint: &SignedEndpoint,
        action: &Action,
        resolved: &Resolved,
    ) -> Result<Step, CallError> {
        let values = &resolved.values;
        match action {
            Action::WriteDatapoint { datapoint, value } => {
                let text = value.render(values, Escape::None);
                let id = self.datapoints.id(datapoint.as_str()).ok_or_else(|| {
                    CallError::Unavailable(format!("The datapoint `{datapoint}` is gone."))
                })?;
                let declared = self.datapoints.datapoint(id);
                // A number or boolean as typed in a form is its JSON literal; a string is quoted.
                let literal = match declared.value_type {
                    ValueType::String => serde_json::to_string(&text).unwrap_or_default(),
                    other => {
                        let literal = text.trim();
                        let scalar = serde_json::from_str::<&serde_json::value::RawValue>(literal)
                            .is_ok()
                            && !literal.starts_with(['"', '{', '[', 'n']);
                        if !scalar {
                            return Err(CallError::Value(
                                crate::datapoint::ValueError::TypeMismatch {
                                    expected: other.json_name(),
                                    found: "text that is not a number or boolean",
                                },
                            ));
                        }
                        literal.to_owned()
                    }
                };
                let value =
                    self.datapoints
                        .check_write(actor, id, &literal)
                        .map_err(|e| match e {
                            WriteError::Value(error) => CallError::Value(error),
                            other => CallError::ActionFailed(format!(
                                "The datapoint `{datapoint}` cannot be written: {other}."
                            )),
                        })?;
                Ok(Step::Write(id, value))
            }
            Action::PublishPortal {
                account,
                portal,
                payload,
            } => {
                let Some(xrtc) = &self.xrtc else {
                    return Err(CallError::Unavailable("XRTC is turned off.".into()));
                };
                let text = match payload {
                    Some(template) => template.render(values, Escape::None),
                    None => endpoint.parameters_json(values),
                };
                let literal = serde_json::to_string(&text).unwrap_or_default();
                let max = xrtc.settings().payload_size_max;
                if literal.len() > max {
                    return Err(CallError::Invalid(format!(
                        "The portal item would have {} bytes; portals take at most {max}.",
                        literal.len()
                    )));
                }
                Ok(Step::Publish(
                    account.clone(),
                    NewItem {
                        portal: portal.clone(),
                        payload: literal.into_boxed_str(),
                    },
                ))
            }
            Action::HttpRequest {
                url,
                method,
                content_type,
                body,
                headers,
            } => {
                let target = self
                    .targets
                    .check_url(&url_of(url, values)?)
                    .map_err(|refused| CallError::ActionFailed(refused.0))?;
                let host = target.host_str().unwrap_or_default().to_owned();
                let escape = body_escape(content_type);
                let body = match body {
                    Some(template) => Some(template.render(values, escape)),
                    None if matches!(
                        *method,
                        reqwest::Method::POST | reqwest::Method::PUT | reqwest::Method::PATCH
                    ) =>
                    {
                        Some(default_body(endpoint, values, escape))
                    }
                    None => None,
                };
                let mut request = self.client.request(method.clone(), target);
                for (name, value) in headers {
                    request = request.header(name, value.expose());
                }
                if let Some(body) = body {
                    request = request
                        .header(reqwest::header::CONTENT_TYPE, content_type)
                        .body(body);
                }
                Ok(Step::Http(request, host))
            }
            Action::Email {
                to,
                subject,
                body,
                attach_uploads,
            } => {
                let rendered = to.render(values, Escape::None);
                let to = crate::mail::Address::parse(&rendered).ok_or_else(|| {
                    CallError::Invalid(format!(
                        "`{}` is not an e-mail address.",
                        shorten(&rendered)
                    ))
                })?;
                let attachments = match attach_uploads {
                    true => resolved
                        .uploads
                        .iter()
                        .map(|(_, upload)| upload.clone())
                        .collect(),
                    false => Vec::new(),
                };
                Ok(Step::Email(Message {
                    to: to.as_str().to_owned(),
                    subject: subject.render(values, Escape::None),
                    body: body.render(values, Escape::None),
                    attachments,
                }))
            }
        }
    }

    /// Carries out one prepared action.
    async fn carry_out(&self, actor: &Actor, step: Step) -> Result<(), CallError> {
        match step {
            Step::Write(id, value) => {
                self.datapoints
                    .write(actor, id, value)
                    .await
                    .map_err(|e| match e {
                        WriteError::Stopped => {
                            CallError::Unavailable("The server is shutting down; retry.".into())
                        }
                        other => {
                            tracing::error!(error = %other, "a signed endpoint's write failed");
                            CallError::Unavailable(
                                "The store could not commit the write; retry.".into(),
                            )
                        }
                    })?;
                Ok(())
            }
            Step::Publish(account, item) => {
                let Some(xrtc) = &self.xrtc else {
                    return Err(CallError::Unavailable("XRTC is turned off.".into()));
                };
                xrtc.publish(actor, &account, vec![item])
                    .await
                    .map(|_| ())
                    .map_err(|e| match e.status() {
                        503 => CallError::Unavailable(e.message),
                        _ => CallError::ActionFailed(format!(
                            "The portal item was not set: {}",
                            e.message
                        )),
                    })
            }
            Step::Http(request, host) => match request.send().await {
                Ok(answer) if answer.status().is_success() => Ok(()),
                Ok(answer) => Err(CallError::ActionFailed(format!(
                    "The call to {host} answered {}.",
                    answer.status()
                ))),
                Err(error) => Err(CallError::ActionFailed(format!(
                    "The call to {host} failed: {}.",
                    if let Some(refused) = crate::net::targets::refused_in(&error) {
                        refused.0.clone()
                    } else if error.is_timeout() {
                        "it timed out".to_owned()
                    } else if error.is_connect() {
                        "no connection".to_owned()
                    } else {
                        error.without_url().to_string()
                    }
                ))),
            },
            Step::Email(message) => {
                self.mailer
                    .send(&message, self.clock.now())
                    .await
                    .map_err(|e| match e {
                        MailError::RecipientRefused(why) => CallError::ActionFailed(format!(
                            "The mail server refused the recipient: {why}"
                        )),
                        MailError::Failed(why) => {
                            CallError::ActionFailed(format!("The e-mail was not sent: {why}"))
                        }
                    })
            }
        }
    }

    /// The answer, made before anything happens (a missing file changes nothing).
    async fn answer(
        &self,
        endpoint: &SignedEndpoint,
        values: &[String],
    ) -> Result<Answered, CallError> {
        match &endpoint.answer {
            Answer::Called => Ok(Answered::Called),
            Answer::Redirect(url) => {
                let location = url_of(url, values)?;
                // An empty value next to a slash must not make `//host` (another site).
                if location.starts_with("//") || location.starts_with("/\\") {
                    return Err(CallError::Invalid(
                        "A value left the redirect without its path.".into(),
                    ));
                }
                Ok(Answered::Redirect(location))
            }
            Answer::StaticFile(name) => {
                let name = name.render(values, Escape::None);
                self.static_file(endpoint, &name).await
            }
        }
    }

    /// `name` from the application's static folder: a relative path of plain segments that
    /// stays inside the folder (symbolic links included), within `max_file_bytes`.
    async fn static_file(
        &self,
        endpoint: &SignedEndpoint,
        name: &str,
    ) -> Result<Answered, CallError> {
        let not_found =
            || CallError::NotFound(format!("There is no file `{}` to answer.", shorten(name)));
        let Some(dir) = &endpoint.static_dir else {
            return Err(not_found());
        };
        if !super::plain_relative_path(name) {
            return Err(CallError::Invalid(format!(
                "`{}` is not a file name inside the application's folder.",
                shorten(name)
            )));
        }
        let root = tokio::fs::canonicalize(dir)
            .await
            .map_err(|_| not_found())?;
        let path = tokio::fs::canonicalize(root.join(name))
            .await
            .map_err(|_| not_found())?;
        if !path.starts_with(&root) {
            return Err(not_found());
        }
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|_| not_found())?;
        let metadata = file.metadata().await.map_err(|_| not_found())?;
        if !metadata.is_file() {
            return Err(not_found());
        }
        let max = self.endpoints.settings.max_file_bytes;
        // Read from the one open file, at most one byte more than allowed.
        let mut bytes = Vec::with_capacity(metadata.len().min(max) as usize);
        file.take(max + 1)
            .read_to_end(&mut bytes)
            .await
            .map_err(|_| not_found())?;
        if bytes.len() as u64 > max {
            return Err(CallError::Invalid(format!(
                "`{}` is larger than openendpoints.max_file_bytes ({max}).",
                shorten(name)
            )));
        }
        Ok(Answered::File {
            content_type: media_type(&path),
            bytes,
        })
    }
}

/// A URL template rendered. When values stand in its path, the rendered path may hold no dot
/// segment (`.`, `..`, or their percent-encoded forms, which URL parsers resolve alike), however
/// the values and the fixed text around them combine (`/${a}${b}/` with `.` and `.`).
fn url_of(url: &Template, values: &[String]) -> Result<String, CallError> {
    let rendered = url.render(values, Escape::Url);
    if !url.path_values().is_empty() && has_dot_segment(&rendered) {
        return Err(CallError::Invalid(
            "The values would make `.` or `..` a segment of the URL's path.".into(),
        ));
    }
    Ok(rendered)
}

/// Whether the path of `url` (absolute or starting with `/`) has a `.` or `..` segment, also
/// percent-encoded (`%2e`, `.%2E`, …).
fn has_dot_segment(url: &str) -> bool {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = match url.contains("://") {
        true => after_scheme.find('/').map_or("", |at| &after_scheme[at..]),
        false => after_scheme,
    };
    let path = path.split(['?', '#']).next().unwrap_or_default();
    path.split('/').any(|segment| {
        let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
        decoded == "." || decoded == ".."
    })
}

/// At most 64 characters of `text`, for messages.
pub fn shorten(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// Warns when one endpoint's name followed by hashed values could read as another endpoint's:
/// the seed's hash has no separators, so `hello` + `worldabc` hashes as `helloworld` + `abc`.
fn warn_of_ambiguous_names(signed: &SignedEndpoints) {
    for a in &signed.endpoints {
        for b in &signed.endpoints {
            if a.application == b.application
                && a.name != b.name
                && b.name.starts_with(&a.name)
                && !a.include_in_hash.is_empty()
            {
                tracing::warn!(
                    application = %a.application,
                    "signed endpoint `{}` is a prefix of `{}`: a hash for `{}` can also be one \
                     for `{}` with other values; give one of them a distinct name or its own \
                     application (secret)",
                    a.name, b.name, b.name, a.name
                );
            }
        }
    }
}

/// How values are escaped into a body of `content_type`.
pub(crate) fn body_escape(content_type: &str) -> Escape {
    let essence = super::form::media_essence(content_type);
    if essence == "application/json" || essence.ends_with("+json") {
        Escape::Json
    } else if essence == "application/x-www-form-urlencoded" {
        Escape::Form
    } else {
        Escape::None
    }
}

/// The parameters as a JSON object, or as a form for a form body.
fn default_body(endpoint: &SignedEndpoint, values: &[String], escape: Escape) -> String {
    match escape {
        Escape::Form => {
            let mut form = form_urlencoded::Serializer::new(String::new());
            for (parameter, value) in endpoint.parameters.iter().zip(values) {
                if !parameter.file {
                    form.append_pair(&parameter.name, value);
                }
            }
            form.finish()
        }
        _ => endpoint.parameters_json(values),
    }
}

/// A media type by file extension; unknown ones are `application/octet-stream`.
fn media_type(path: &Path) -> &'static str {
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "pdf" => "application/pdf",
        "woff2" => "font/woff2",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_combination_of_values_makes_a_dot_segment() {
        let names = ["a", "b"];
        let url = |text: &str| Template::parse(text, &names).expect("template");
        let values = |a: &str, b: &str| vec![a.to_owned(), b.to_owned()];
        let adjacent = url("https://api.example/p/${a}${b}/x");
        assert!(url_of(&adjacent, &values(".", ".")).is_err());
        assert!(url_of(&adjacent, &values("..", "")).is_err());
        assert!(url_of(&url("https://api.example/p/.${a}/x"), &values(".", "")).is_err());
        // A value is escaped: `%2e` arrives as `%252e`, no dot segment; a dot inside a
        // segment, in the query or in the host is no segment either.
        assert_eq!(
            url_of(&adjacent, &values("%2e", "%2e")).ok().as_deref(),
            Some("https://api.example/p/%252e%252e/x")
        );
        assert!(url_of(&adjacent, &values("a.", ".b")).is_ok());
        assert!(url_of(&url("https://api.example/p?x=${a}"), &values("..", "")).is_ok());
        assert!(has_dot_segment("https://h/a/%2E%2e/b"));
        assert!(has_dot_segment("/a/./b"));
        assert!(!has_dot_segment("https://h.example/a.b/c"));
    }
}
