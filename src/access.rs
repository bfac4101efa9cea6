//! Who is acting ([`Actor`]) and what an operation requires ([`Policy`]): the one principal and
//! the one decision every surface uses.
//!
//! Every surface turns its credential into an [`Actor`] once per request (a bearer token, an
//! XRTC session cookie, a signed endpoint's hash), and Portico's own tasks are actors too. A
//! [`Policy`] then decides; [`Refused`] says why not, and each surface renders it in its own
//! wire shape (RFC 6750 challenges for the native API, the seed's error bodies elsewhere).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::jose::verifier::Verified;

/// Who is acting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// No credentials were presented.
    Anonymous,
    /// A verified bearer token (an external issuer's, or a realm's of Portico's own identity
    /// provider: a client, a user or an app).
    Token(Arc<Verified>),
    /// An XRTC session: an account, logged in with one of its API keys.
    Xrtc(Arc<XrtcActor>),
    /// A signed (OpenEndpoints-style) endpoint's call, authentic by its hash.
    Signed(Arc<SignedCall>),
    /// Portico itself: a named internal task (the webhook dispatcher, the upkeep).
    Internal(&'static str),
}

/// An XRTC session's principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XrtcActor {
    /// The account.
    pub account: Arc<str>,
    /// The first characters of the hex SHA-256 of the API key the session logged in with: names
    /// the key in logs and events without revealing it.
    pub key: String,
}

/// A signed call's principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCall {
    /// The application.
    pub application: Arc<str>,
    /// The endpoint.
    pub endpoint: Arc<str>,
    /// `live` or `preview`.
    pub environment: &'static str,
}

/// An actor as events and the journal name it: who, through which scheme. Never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActorRef {
    /// `anonymous`, `token`, `xrtc`, `signed` or `portico`.
    pub kind: &'static str,
    /// Who: the token's subject (or issuer when it has none), the XRTC account, the signed
    /// call's `application/endpoint`, or the internal task's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The token's issuer, for `token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

/// The stored form of an actor.
#[derive(Debug, Default, Serialize, serde::Deserialize)]
struct Record {
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    realm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    permissions: Vec<String>,
}

impl Actor {
    /// Whether the actor holds `permission` (only tokens hold permissions).
    pub fn has(&self, permission: &str) -> bool {
        match self {
            Actor::Token(token) => token.has(permission),
            _ => false,
        }
    }

    /// The verified token, for a token actor.
    pub fn token(&self) -> Option<&Arc<Verified>> {
        match self {
            Actor::Token(token) => Some(token),
            _ => None,
        }
    }

    /// The actor as a stored record (JSON), for what outlives the request that made it: a
    /// webhook subscription reads events as the token that made it. Only a token's identity and
    /// permissions are kept (never the token); other actors are kept by kind alone.
    pub fn to_record(&self) -> String {
        let record = match self {
            Actor::Token(token) => Record {
                kind: "token".into(),
                issuer: Some(token.issuer.clone()),
                realm: token.realm.clone(),
                subject: token.subject.clone(),
                permissions: token.permissions.clone(),
            },
            other => Record {
                kind: other.reference().kind.into(),
                ..Record::default()
            },
        };
        serde_json::to_string(&record).unwrap_or_default()
    }

    /// An actor from [`Self::to_record`]; anything unreadable is [`Actor::Anonymous`].
    pub fn from_record(text: &str) -> Actor {
        match serde_json::from_str::<Record>(text) {
            Ok(record) if record.kind == "token" => {
                let mut permissions = record.permissions;
                permissions.sort();
                Actor::Token(Arc::new(Verified {
                    issuer: record.issuer.unwrap_or_default(),
                    realm: record.realm,
                    subject: record.subject,
                    token_id: None,
                    expires: None,
                    valid_until: None,
                    permissions,
                }))
            }
            _ => Actor::Anonymous,
        }
    }

    /// How events name this actor.
    pub fn reference(&self) -> ActorRef {
        let (kind, id, issuer) = match self {
            Actor::Anonymous => ("anonymous", None, None),
            Actor::Token(token) => (
                "token",
                Some(
                    token
                        .subject
                        .clone()
                        .unwrap_or_else(|| token.issuer.clone()),
                ),
                Some(token.issuer.clone()),
            ),
            Actor::Xrtc(session) => ("xrtc", Some(session.account.to_string()), None),
            Actor::Signed(call) => (
                "signed",
                Some(format!("{}/{}", call.application, call.endpoint)),
                None,
            ),
            Actor::Internal(task) => ("portico", Some((*task).to_owned()), None),
        };
        ActorRef { kind, id, issuer }
    }
}

/// What an actor needs to perform an operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Policy {
    /// Anyone may.
    #[default]
    Open,
    /// Any authenticated actor (a verified token, an XRTC session, a signed call).
    Authenticated,
    /// A verified token granting every one of these permissions.
    AllOf(Arc<[String]>),
    /// A token of this realm of Portico's identity provider granting any one of these roles
    /// (the admin and webhook APIs' gates).
    RealmRole {
        /// The realm.
        realm: Arc<str>,
        /// The roles, any one of which suffices.
        any_of: Arc<[&'static str]>,
    },
    /// Both policies.
    Both(Arc<(Policy, Policy)>),
}

/// A policy as written: `"open"`, `"authenticated"`, or a list of permissions all required.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum PolicyConfig {
    /// `"open"` or `"authenticated"`.
    Named(String),
    /// Permissions, every one required.
    Permissions(Vec<String>),
}

impl utoipa::PartialSchema for PolicyConfig {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["open", "authenticated"])),
            )
            .item(
                ArrayBuilder::new()
                    .items(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .min_length(Some(1)),
                    )
                    .min_items(Some(1)),
            )
            .description(Some(
                "`\"open\"`, `\"authenticated\"`, or permissions a token must all grant.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for PolicyConfig {}

impl PolicyConfig {
    /// The policy, or why this is not one.
    pub fn check(&self) -> Result<Policy, String> {
        match self {
            Self::Named(name) if name == "open" => Ok(Policy::Open),
            Self::Named(name) if name == "authenticated" => Ok(Policy::Authenticated),
            Self::Named(name) => Err(format!(
                "`{name}` is not a policy: use \"open\", \"authenticated\" or a list of \
                 permissions such as [\"plant:read\"]"
            )),
            Self::Permissions(list) if list.is_empty() || list.iter().any(|p| p.is_empty()) => {
                Err("a permission list needs at least one permission, none of them empty".into())
            }
            Self::Permissions(list) => Ok(Policy::AllOf(list.clone().into())),
        }
    }
}

/// Why a policy refused an actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Credentials are needed and none were presented.
    NoCredentials,
    /// The token lacks these permissions.
    InsufficientScope(Vec<String>),
    /// The actor is known but may not do this (the sentence says why).
    Forbidden(String),
}

impl Policy {
    /// Decides whether `actor` may proceed.
    ///
    /// Portico's own tasks and signed calls act with the authority the operator's configuration
    /// gives them (a signed endpoint's actions are written in the configuration, and its hash is
    /// its credential), so no policy stops them; they never read through a policy.
    pub fn authorize(&self, actor: &Actor) -> Result<(), Refused> {
        match (self, actor) {
            (Policy::Open, _) | (_, Actor::Internal(_) | Actor::Signed(_)) => Ok(()),
            (Policy::Both(both), _) => {
                both.0.authorize(actor)?;
                both.1.authorize(actor)
            }
            (_, Actor::Anonymous) => Err(Refused::NoCredentials),
            (Policy::Authenticated, _) => Ok(()),
            (Policy::AllOf(needed), _) => {
                let missing: Vec<String> =
                    needed.iter().filter(|p| !actor.has(p)).cloned().collect();
                if missing.is_empty() {
                    Ok(())
                } else {
                    Err(Refused::InsufficientScope(missing))
                }
            }
            (Policy::RealmRole { realm, any_of }, _) => {
                let in_realm = actor
                    .token()
                    .is_some_and(|token| token.realm.as_deref() == Some(&**realm));
                if in_realm && any_of.iter().any(|role| actor.has(role)) {
                    Ok(())
                } else {
                    Err(Refused::Forbidden(format!(
                        "This needs a token of realm `{realm}` with the {} role.",
                        any_of
                            .iter()
                            .map(|r| format!("`{r}`"))
                            .collect::<Vec<_>>()
                            .join(" or ")
                    )))
                }
            }
        }
    }

    /// Whether `actor` may proceed.
    pub fn allows(&self, actor: &Actor) -> bool {
        self.authorize(actor).is_ok()
    }

    /// Whether anyone may, without credentials.
    pub fn is_open(&self) -> bool {
        matches!(self, Policy::Open)
    }

    /// The policy as written, when it can be (a realm-role gate, or one combined with it,
    /// cannot).
    pub fn config(&self) -> Option<PolicyConfig> {
        match self {
            Policy::Open => Some(PolicyConfig::Named("open".into())),
            Policy::Authenticated => Some(PolicyConfig::Named("authenticated".into())),
            Policy::AllOf(all) => Some(PolicyConfig::Permissions(all.to_vec())),
            Policy::RealmRole { .. } | Policy::Both(_) => None,
        }
    }

    /// The policy that needs both `self` and `other`: the stricter of two, or their union.
    pub fn and(&self, other: &Policy) -> Policy {
        match (self, other) {
            (Policy::Open, p) | (p, Policy::Open) => p.clone(),
            (Policy::Authenticated, p) | (p, Policy::Authenticated) => p.clone(),
            (Policy::AllOf(a), Policy::AllOf(b)) => {
                let mut all: Vec<String> = a.iter().chain(b.iter()).cloned().collect();
                all.sort();
                all.dedup();
                Policy::AllOf(all.into())
            }
            (a, b) if a == b => a.clone(),
            (a, b) => Policy::Both(Arc::new((a.clone(), b.clone()))),
        }
    }
}

/// A credential a long-lived answer (a stream) was authorized with, asked again while the
/// answer lasts: a stream ends with its token, its session or its key.
pub trait Credential: Send + Sync {
    /// Whether the credential still holds; `Err` says why not.
    fn check(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>;

    /// How long until it certainly ends (a token's `exp` plus leeway), if known.
    fn remaining(&self) -> Option<Duration> {
        None
    }
}

/// A credential that never ends (anonymous readers of open data).
#[derive(Debug, Clone, Copy)]
pub struct Unending;

impl Credential for Unending {
    fn check(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Resolves once `credential` no longer holds (with the reason): it is asked every `every`,
/// and at its known end. A stream keeps this one future and ends when it resolves.
pub type Ending = Pin<Box<dyn Future<Output = String> + Send>>;

/// The [`Ending`] of `credential`.
pub fn ending(credential: Arc<dyn Credential>, every: Duration) -> Ending {
    Box::pin(async move {
        loop {
            let wait = credential.remaining().map_or(every, |left| left.min(every));
            tokio::time::sleep(wait).await;
            if let Err(why) = credential.check().await {
                return why;
            }
        }
    })
}

/// A verified token as a stream's [`Credential`]: it holds until its `exp` plus leeway, a
/// revocation, or its issuer's removal.
#[derive(Debug, Clone)]
pub struct TokenCredential {
    /// The verifier that knows revocations and issuers.
    pub verifier: Arc<crate::jose::verifier::Verifier>,
    /// The token.
    pub token: Arc<Verified>,
    /// The source of "now".
    pub clock: Arc<dyn crate::clock::Clock>,
}

impl Credential for TokenCredential {
    fn check(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>> {
        let now = self.clock.now().unix_timestamp();
        let result = self
            .verifier
            .still_valid(&self.token, now)
            .map_err(|e| e.to_string());
        Box::pin(std::future::ready(result))
    }

    fn remaining(&self) -> Option<std::time::Duration> {
        let until = self.token.valid_until?;
        let now = self.clock.now().unix_timestamp();
        // One second past the last accepted one.
        Some(std::time::Duration::from_secs(
            u64::try_from(until.saturating_sub(now).saturating_add(1)).unwrap_or(0),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(realm: Option<&str>, permissions: &[&str]) -> Actor {
        let mut permissions: Vec<String> = permissions.iter().map(|p| p.to_string()).collect();
        permissions.sort();
        Actor::Token(Arc::new(Verified {
            issuer: "i".into(),
            realm: realm.map(str::to_owned),
            subject: None,
            token_id: None,
            expires: None,
            valid_until: None,
            permissions,
        }))
    }

    fn all_of(list: &[&str]) -> Policy {
        Policy::AllOf(
            list.iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .into(),
        )
    }

    #[test]
    fn policies_decide_by_credentials_and_permissions() {
        let needs = all_of(&["a", "b"]);
        assert_eq!(Policy::Open.authorize(&Actor::Anonymous), Ok(()));
        assert_eq!(
            Policy::Authenticated.authorize(&Actor::Anonymous),
            Err(Refused::NoCredentials)
        );
        assert_eq!(Policy::Authenticated.authorize(&token(None, &[])), Ok(()));
        assert_eq!(needs.authorize(&token(None, &["a", "b", "c"])), Ok(()));
        assert_eq!(
            needs.authorize(&token(None, &["a"])),
            Err(Refused::InsufficientScope(vec!["b".into()]))
        );
        let xrtc = Actor::Xrtc(Arc::new(XrtcActor {
            account: "AC1".into(),
            key: "ab".into(),
        }));
        assert_eq!(Policy::Authenticated.authorize(&xrtc), Ok(()));
        assert!(!needs.allows(&xrtc));
        assert!(needs.allows(&Actor::Internal("test")));
    }

    #[test]
    fn realm_roles_need_the_realm_and_one_role() {
        let gate = Policy::RealmRole {
            realm: "admin".into(),
            any_of: vec!["portico:admin", "portico:webhooks"].into(),
        };
        assert!(gate.allows(&token(Some("admin"), &["portico:webhooks"])));
        assert!(!gate.allows(&token(Some("node"), &["portico:admin"])));
        assert!(!gate.allows(&token(None, &["portico:admin"])));
        assert!(matches!(
            gate.authorize(&token(Some("admin"), &["x"])),
            Err(Refused::Forbidden(_))
        ));
        assert_eq!(
            gate.authorize(&Actor::Anonymous),
            Err(Refused::NoCredentials)
        );
    }

    #[test]
    fn a_token_actor_is_stored_without_its_token() {
        let actor = token(Some("admin"), &["b", "a"]);
        let record = actor.to_record();
        assert_eq!(Actor::from_record(&record), actor);
        assert_eq!(Actor::from_record("{"), Actor::Anonymous);
        assert_eq!(
            Actor::from_record(&Actor::Internal("x").to_record()),
            Actor::Anonymous
        );
    }

    #[test]
    fn and_is_never_more_open_than_either() {
        let a = all_of(&["a"]);
        let b = all_of(&["b", "a"]);
        assert_eq!(Policy::Open.and(&a), a);
        assert_eq!(
            Policy::Authenticated.and(&Policy::Open),
            Policy::Authenticated
        );
        assert_eq!(a.and(&b), all_of(&["a", "b"]));
        let gate = Policy::RealmRole {
            realm: "r".into(),
            any_of: vec!["x"].into(),
        };
        let both = gate.and(&a);
        assert!(!both.allows(&token(Some("r"), &["x"])));
        assert!(both.allows(&token(Some("r"), &["x", "a"])));
    }
}
