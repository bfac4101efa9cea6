//! JOSE: verifying signed tokens (JWS, RFC 7515) from trusted issuers.
//!
//! Built in layers. [`primitive`] verifies one signature with one key pinned to one algorithm,
//! using aws-lc-rs; nothing above it does cryptographic arithmetic. Compact JWS parsing, JWK and
//! PEM key loading, claims and issuers are built on top of it.

pub mod primitive;
