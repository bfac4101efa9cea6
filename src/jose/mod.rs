//! JOSE: verifying signed tokens (JWS, RFC 7515; JWT, RFC 7519) from trusted issuers.
//!
//! Built in layers. [`primitive`] verifies one signature with one key pinned to one algorithm,
//! using aws-lc-rs (and `ed448-goldilocks` for Ed448); nothing above it does cryptographic
//! arithmetic. [`jws`] parses compact tokens strictly (and [`json`] their JSON objects); [`keys`] and [`pem`] load keys and pin
//! them; [`claims`] checks claims; [`issuer`] holds the trusted issuers and fetches remote key
//! sets; [`verifier`] puts it together with a cache of verified tokens.

pub mod claims;
pub mod issuer;
pub mod json;
pub mod jws;
pub mod keygen;
pub mod keys;
pub mod pem;
pub mod primitive;
pub mod signer;
pub mod verifier;
