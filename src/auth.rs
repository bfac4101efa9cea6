//! Who is calling ([`Caller`]) and what an operation requires ([`Policy`]).
//!
//! The [`Caller`] extractor decides once per request, from its `Authorization` header: none (or
//! another scheme) is [`Caller::Anonymous`]; `Bearer <token>` is verified by the configured
//! issuers into [`Caller::Bearer`], and a token that fails is refused at once with 401 (even on
//! open routes that consult the caller: a client that sends a bad token should learn so;
//! operational routes such as `/healthz` never look). A malformed header is 400.
//! Handlers then ask a [`Policy`] whether the caller may proceed: 401 if a token is needed and
//! none was given, 403 `insufficient_scope` if the token lacks a permission.
//!
//! Responses follow RFC 6750 section 3: `WWW-Authenticate: Bearer realm="…"` plus `error`,
//! `error_description` (and `scope` for 403). A request with no credentials gets no `error`
//! attribute, as section 3.1 says it should not.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};

use crate::api::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::jose::verifier::Verified;

/// The authenticated identity of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No credentials were presented.
    Anonymous,
    /// A verified bearer token.
    Bearer(Arc<Verified>),
}

/// What a caller needs to perform an operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Policy {
    /// Anyone may.
    #[default]
    Open,
    /// Any verified token.
    Authenticated,
    /// A verified token granting every one of these permissions.
    AllOf(Arc<[String]>),
}

/// Why a policy refused a caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// A token is needed and none was presented.
    NoCredentials,
    /// The token lacks these permissions.
    InsufficientScope(Vec<String>),
}

impl Policy {
    /// Decides whether `caller` may proceed.
    pub fn authorize(&self, caller: &Caller) -> Result<(), Refused> {
        match (self, caller) {
            (Policy::Open, _) => Ok(()),
            (_, Caller::Anonymous) => Err(Refused::NoCredentials),
            (Policy::Authenticated, Caller::Bearer(_)) => Ok(()),
            (Policy::AllOf(needed), Caller::Bearer(token)) => {
                let missing: Vec<String> =
                    needed.iter().filter(|p| !token.has(p)).cloned().collect();
                if missing.is_empty() {
                    Ok(())
                } else {
                    Err(Refused::InsufficientScope(missing))
                }
            }
        }
    }

    /// Whether anyone may, without a token.
    pub fn is_open(&self) -> bool {
        matches!(self, Policy::Open)
    }
}

impl Refused {
    /// The answer for this refusal, naming `realm` in `WWW-Authenticate`.
    pub fn into_error(self, realm: &str) -> ApiError {
        match self {
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
        }
    }
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

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let realm = state.auth.realm.as_str();
        let token = match bearer_token(&parts.headers) {
            Ok(Some(token)) => token,
            Ok(None) => return Ok(Caller::Anonymous),
            Err(reason) => return Err(invalid_request(realm, reason)),
        };
        let now = state.clock.now().unix_timestamp();
        match state.auth.verifier.verify(token, now).await {
            Ok(verified) => Ok(Caller::Bearer(verified)),
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
    /// The policy of the native datapoint API's reads.
    pub api_read: Policy,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(permissions: &[&str]) -> Caller {
        Caller::Bearer(Arc::new(Verified {
            issuer: "i".into(),
            realm: None,
            subject: None,
            token_id: None,
            expires: None,
            permissions: permissions.iter().map(|p| p.to_string()).collect(),
        }))
    }

    #[test]
    fn policies_decide_by_credentials_and_permissions() {
        let needs = Policy::AllOf(vec!["a".to_owned(), "b".to_owned()].into());
        assert_eq!(Policy::Open.authorize(&Caller::Anonymous), Ok(()));
        assert_eq!(
            Policy::Authenticated.authorize(&Caller::Anonymous),
            Err(Refused::NoCredentials)
        );
        assert_eq!(Policy::Authenticated.authorize(&token(&[])), Ok(()));
        assert_eq!(needs.authorize(&token(&["a", "b", "c"])), Ok(()));
        assert_eq!(
            needs.authorize(&token(&["a"])),
            Err(Refused::InsufficientScope(vec!["b".into()]))
        );
    }

    #[test]
    fn challenges_quote_safely() {
        assert_eq!(
            challenge_text("portico", Some(("invalid_token", "bad \"x\" \\ é"))),
            "Bearer realm=\"portico\", error=\"invalid_token\", error_description=\"bad 'x' / ?\""
        );
    }
}
