//! The HTTP side of [`Actor`]s and [`Policy`]s: the extractor that turns a request's
//! `Authorization` header into an [`Actor`] once per request, and RFC 6750 answers for a
//! [`Refused`].
//!
//! No header (or another scheme) is [`Actor::Anonymous`]; `Bearer <token>` is verified by the
//! configured issuers into [`Actor::Token`], and a token that fails is refused at once with 401
//! (even on open routes that consult the actor: a client that sends a bad token should learn
//! so; operational routes such as `/healthz` never look). A malformed header is 400. Handlers
//! then ask a [`Policy`]: 401 if credentials are needed and none were given, 403
//! `insufficient_scope` if the token lacks a permission, 403 `forbidden` otherwise.
//!
//! Responses follow RFC 6750 section 3: `WWW-Authenticate: Bearer realm="…"` plus `error`,
//! `error_description` (and `scope` for 403). A request with no credentials gets no `error`
//! attribute, as section 3.1 says it should not.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};

use super::AppState;
use std::sync::Arc;

use crate::access::{Actor, Credential, Ending, Policy, Refused, TokenCredential, Unending};
use crate::api::error::{ApiError, ErrorCode};

/// The answer for a refusal, naming `realm` in `WWW-Authenticate`.
pub fn refusal(refused: Refused, realm: &str) -> ApiError {
    match refused {
        Refused::NoCredentials => ApiError::new(
            ErrorCode::Unauthenticated,
            "This resource needs a bearer token (Authorization: Bearer …).",
        )
        .with_header(header::WWW_AUTHENTICATE, challenge(realm, None)),
        Refused::InsufficientScope(missing) => {
            let detail = format!(
                "The token does not grant the permission(s) this needs: {}.",
                missing.join(", ")
            );
            let value = format!(
                "{}, scope=\"{}\"",
                challenge_text(realm, Some(("insufficient_scope", &detail))),
                quotable(&missing.join(" "))
            );
            ApiError::new(ErrorCode::InsufficientScope, detail).with_header(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_str(&value)
                    .unwrap_or_else(|_| HeaderValue::from_static("Bearer")),
            )
        }
        Refused::Forbidden(why) => ApiError::new(ErrorCode::Forbidden, why),
    }
}

/// Asks `policy` about `actor`, answering a refusal as RFC 6750 says.
pub fn authorize(state: &AppState, policy: &Policy, actor: &Actor) -> Result<(), ApiError> {
    policy
        .authorize(actor)
        .map_err(|refused| refusal(refused, &state.auth.realm))
}

/// `Bearer realm="…"[, error="…", error_description="…"]`.
fn challenge(realm: &str, error: Option<(&str, &str)>) -> HeaderValue {
    HeaderValue::from_str(&challenge_text(realm, error))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}

fn challenge_text(realm: &str, error: Option<(&str, &str)>) -> String {
    let mut text = format!("Bearer realm=\"{}\"", quotable(realm));
    if let Some((code, description)) = error {
        text.push_str(&format!(
            ", error=\"{code}\", error_description=\"{}\"",
            quotable(description)
        ));
    }
    text
}

/// RFC 6750 section 3: attribute values use %x20-21 / %x23-5B / %x5D-7E (no `"` or `\`).
fn quotable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

/// A 401 for a token that did not verify.
pub fn invalid_token(realm: &str, reason: &str) -> ApiError {
    let detail = format!("The bearer token was refused: {reason}.");
    ApiError::new(ErrorCode::InvalidToken, detail).with_header(
        header::WWW_AUTHENTICATE,
        challenge(realm, Some(("invalid_token", reason))),
    )
}

/// A 400 for an `Authorization` header that is not well-formed.
pub(crate) fn invalid_request(realm: &str, reason: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidAuthorization,
        format!("The Authorization header is malformed: {reason}."),
    )
    .with_header(
        header::WWW_AUTHENTICATE,
        challenge(realm, Some(("invalid_request", reason))),
    )
}

/// The bearer token in `headers`, `None` without one, or why the header is malformed.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, &'static str> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err("the header appears more than once");
    }
    let value = value
        .to_str()
        .map_err(|_| "the header is not visible ASCII")?;
    let (scheme, credentials) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        // Another scheme (Basic, …) is not a bearer credential; policies treat it as none.
        return Ok(None);
    }
    // RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    // RFC 7235 allows one or more spaces after the scheme.
    let token = credentials.trim_start_matches(' ');
    let body = token.trim_end_matches('=');
    let well_formed = !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
    if !well_formed {
        return Err("expected `Bearer ` followed by one token (RFC 6750 section 2.1)");
    }
    Ok(Some(token))
}

impl FromRequestParts<AppState> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let realm = state.auth.realm.as_str();
        let token = match bearer_token(&parts.headers) {
            Ok(Some(token)) => token,
            Ok(None) => return Ok(Actor::Anonymous),
            Err(reason) => return Err(invalid_request(realm, reason)),
        };
        let now = state.clock.now().unix_timestamp();
        match state.auth.verifier.verify(token, now).await {
            Ok(verified) => Ok(Actor::Token(verified)),
            Err(error) => Err(invalid_token(realm, &error.to_string())),
        }
    }
}

/// The authentication settings handlers need.
#[derive(Debug)]
pub struct Auth {
    /// The `realm` of `WWW-Authenticate` challenges.
    pub realm: String,
    /// The token verifier (shared with the identity provider, which publishes its realms).
    pub verifier: std::sync::Arc<crate::jose::verifier::Verifier>,
    /// The policy of the native datapoint API's reads (with each datapoint's own).
    pub api_read: Policy,
    /// Who may read `/metrics`.
    pub metrics_read: Policy,
    /// How often streams ask their credential again.
    pub revocation_check: std::time::Duration,
    /// Who may use the admin API: a token of the admin realm with `portico:admin`.
    pub admin: Policy,
    /// Who may manage webhooks: a token of the admin realm with `portico:admin` or
    /// `portico:webhooks`.
    pub webhook_managers: Policy,
    /// Who may read through `/demeter/api` (`[tributech] read`).
    pub tributech_read: Policy,
    /// Who may write through `/demeter/api` (`[tributech] write`).
    pub tributech_write: Policy,
}

/// Opens a stream for `actor` reading from `client` within the stream limits: it ends with the
/// actor's token, if it has one, or at the stream's maximum lifetime.
pub fn stream_ending(
    state: &AppState,
    actor: &Actor,
    client: std::net::IpAddr,
) -> Result<Ending, ApiError> {
    let credential: Arc<dyn Credential> = match actor {
        Actor::Token(token) => Arc::new(TokenCredential {
            verifier: state.auth.verifier.clone(),
            token: token.clone(),
            clock: state.clock.clone(),
        }),
        _ => Arc::new(Unending),
    };
    let reader = super::streams::Reader::of(actor, client);
    Ok(state.streams.open(reader, credential, None)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_quote_safely() {
        assert_eq!(
            challenge_text("portico", Some(("invalid_token", "bad \"x\" \\ é"))),
            "Bearer realm=\"portico\", error=\"invalid_token\", error_description=\"bad 'x' / ?\""
        );
    }
}
