//! The token parser on arbitrary input: compact-JWS parsing, claims, JWK sets and PEM keys
//! must never panic, and whatever parses must verify (or not) without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico::jose::claims::Claims;
use portico::jose::jws::CompactJws;
use portico::jose::keys::KeySet;
use portico::jose::pem::public_key_from_pem;
use portico::jose::primitive::Algorithm;

/// One fixed key set, so parsed tokens reach signature checks (HS256, ES256 and Ed25519 keys).
const JWKS: &str = r#"{"keys":[
 {"kty":"EC","kid":"e","crv":"P-256","x":"04N0xi21hshyvBp7I167sbE_bXqyqkAPfefdklMO7wY","y":"UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgmw"},
 {"kty":"OKP","kid":"o","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(jws) = CompactJws::parse(text, 8192) {
            let _ = Claims::parse(jws.payload());
            if let Ok(set) = KeySet::from_jwks(JWKS.as_bytes(), Algorithm::ALL) {
                let _ = set.verify(&jws);
            }
        }
    }
    let _ = KeySet::from_jwks(data, Algorithm::ALL);
    let _ = public_key_from_pem(data);
});
