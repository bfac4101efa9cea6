//! Who is calling ([`Caller`]) and what an operation requires ([`Policy`]).
//!
//! A handler that needs to know its caller takes a [`Caller`] argument; the extractor decides it
//! once per request (from the request's credentials) and handlers only ask a [`Policy`] whether
//! that caller may proceed. Routes that never ask pay nothing. Today every caller is anonymous
//! and every policy open; bearer tokens and their permissions plug in here.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// The authenticated identity of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No credentials were presented.
    Anonymous,
}

/// What a caller needs to perform an operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Policy {
    /// Anyone may.
    #[default]
    Open,
}

/// A caller that a policy refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the caller may not do this")]
pub struct Refused;

impl Policy {
    /// Decides whether `caller` may proceed.
    pub fn authorize(&self, caller: &Caller) -> Result<(), Refused> {
        match (self, caller) {
            (Policy::Open, _) => Ok(()),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Infallible;

    /// Decides the caller from the request. With no credential schemes configured yet, everyone
    /// is anonymous; a scheme that fails will reject here (401) before the handler runs.
    async fn from_request_parts(_parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Caller::Anonymous)
    }
}
