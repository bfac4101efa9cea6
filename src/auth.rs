//! Who is calling ([`Caller`]) and what an operation requires ([`Policy`]).
//!
//! The caller is decided once per request by [`authenticate`], before routing to a handler;
//! handlers only ask a policy whether that caller may proceed. Today every caller is anonymous
//! and every policy open; bearer tokens and their permissions plug in here.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

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

/// Decides the request's [`Caller`] and stores it in the request extensions.
pub async fn authenticate(mut request: Request, next: Next) -> Response {
    request.extensions_mut().insert(Caller::Anonymous);
    next.run(request).await
}
