//! Key material (JWK, RFC 7517/7518/8037) and key sets, and choosing the key for a token.
//!
//! A [`KeySet`] holds verification keys, each pinned to one algorithm. A JWK without `alg` is
//! pinned to every algorithm of its family that the issuer allows (EC and OKP keys have exactly
//! one); a JWK with `alg` to that one. Keys that cannot verify signatures are skipped with a
//! reason (`use` other than `sig`, `key_ops` without `verify`, an encryption `alg`, an `alg` that
//! does not fit the key, keys that are too weak); a set that is ambiguous is refused whole
//! (two keys with one `kid`, symmetric and asymmetric keys mixed, private key members).
//!
//! Choosing: with a `kid`, only the keys with that `kid`; without, every key. Among those, only
//! keys whose algorithm the token's `alg` names may be used, so an HS256 token never meets an
//! RSA or EC key (algorithm confusion) and a key's algorithm is never taken from the token.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::json;
use super::jws::{self, CompactJws, Part};
use super::primitive::{Algorithm, KeyError, VerifyingKey};

/// The most keys a set may hold; a larger JWKS is refused (it bounds the work per token).
pub const MAX_KEYS: usize = 100;

/// The curve of an EC key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    /// NIST P-256.
    P256,
    /// NIST P-384.
    P384,
    /// NIST P-521.
    P521,
    /// secp256k1 (RFC 8812).
    Secp256k1,
}

impl Curve {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "P-256" => Some(Self::P256),
            "P-384" => Some(Self::P384),
            "P-521" => Some(Self::P521),
            "secp256k1" => Some(Self::Secp256k1),
            _ => None,
        }
    }

    /// The JWK `crv` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
            Self::P521 => "P-521",
            Self::Secp256k1 => "secp256k1",
        }
    }

    /// The one JWS algorithm for this curve.
    pub fn algorithm(self) -> Algorithm {
        match self {
            Self::P256 => Algorithm::Es256,
            Self::P384 => Algorithm::Es384,
            Self::P521 => Algorithm::Es512,
            Self::Secp256k1 => Algorithm::Es256k,
        }
    }

    /// Bytes in one coordinate.
    pub fn coordinate_len(self) -> usize {
        match self {
            Self::P256 | Self::Secp256k1 => 32,
            Self::P384 => 48,
            Self::P521 => 66,
        }
    }
}

/// Public key material (or an HMAC secret), not yet pinned to an algorithm.
#[derive(Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// RSA modulus and exponent, big-endian.
    Rsa {
        /// The modulus.
        n: Vec<u8>,
        /// The public exponent.
        e: Vec<u8>,
    },
    /// An EC point, uncompressed (`04 ‖ x ‖ y`).
    Ec {
        /// The curve.
        curve: Curve,
        /// The point.
        point: Vec<u8>,
    },
    /// An Ed25519 public key.
    Ed25519(Vec<u8>),
    /// An Ed448 public key.
    Ed448(Vec<u8>),
    /// An HMAC secret.
    Secret(Vec<u8>),
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind())
    }
}

impl PublicKey {
    /// A short name of the key's type.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Rsa { .. } => "RSA",
            Self::Ec { .. } => "EC",
            Self::Ed25519(_) => "Ed25519",
            Self::Ed448(_) => "Ed448",
            Self::Secret(_) => "symmetric",
        }
    }

    /// Every algorithm this kind of key can be used with.
    pub fn family(&self) -> &'static [Algorithm] {
        use Algorithm::*;
        match self {
            Self::Rsa { .. } => &[Rs256, Rs384, Rs512, Ps256, Ps384, Ps512],
            Self::Ec { curve, .. } => match curve {
                Curve::P256 => &[Es256],
                Curve::P384 => &[Es384],
                Curve::P521 => &[Es512],
                Curve::Secp256k1 => &[Es256k],
            },
            Self::Ed25519(_) => &[Ed25519],
            Self::Ed448(_) => &[Ed448],
            Self::Secret(_) => &[Hs256, Hs384, Hs512],
        }
    }

    /// This key pinned to `alg`.
    pub fn pin(&self, alg: Algorithm) -> Result<VerifyingKey, KeyError> {
        match self {
            Self::Rsa { n, e } => VerifyingKey::rsa(alg, n, e),
            Self::Ec { curve, point } => {
                if curve.algorithm() != alg {
                    return Err(KeyError::WrongKind {
                        kind: curve.name(),
                        alg,
                    });
                }
                VerifyingKey::ec(alg, point)
            }
            Self::Ed25519(key) if alg == Algorithm::Ed25519 => VerifyingKey::ed25519(key),
            Self::Ed448(key) if alg == Algorithm::Ed448 => VerifyingKey::ed448(key),
            Self::Secret(secret) => VerifyingKey::hmac(alg, secret),
            other => Err(KeyError::WrongKind {
                kind: other.kind(),
                alg,
            }),
        }
    }

    /// The public JWK members (no `kid`, `alg` or `use`), in RFC 7638 order.
    pub fn jwk_members(&self) -> Map<String, Value> {
        let mut members = Map::new();
        let mut put = |name: &str, value: String| {
            members.insert(name.into(), Value::String(value));
        };
        match self {
            Self::Rsa { n, e } => {
                put("e", jws::encode(e));
                put("kty", "RSA".into());
                put("n", jws::encode(n));
            }
            Self::Ec { curve, point } => {
                let half = curve.coordinate_len();
                put("crv", curve.name().into());
                put("kty", "EC".into());
                put("x", jws::encode(&point[1..1 + half]));
                put("y", jws::encode(&point[1 + half..]));
            }
            Self::Ed25519(x) | Self::Ed448(x) => {
                put(
                    "crv",
                    if matches!(self, Self::Ed25519(_)) {
                        "Ed25519"
                    } else {
                        "Ed448"
                    }
                    .into(),
                );
                put("kty", "OKP".into());
                put("x", jws::encode(x));
            }
            Self::Secret(k) => {
                put("k", jws::encode(k));
                put("kty", "oct".into());
            }
        }
        members
    }

    /// The RFC 7638 JWK thumbprint (SHA-256, base64url): a `kid` derived from the key alone.
    pub fn thumbprint(&self) -> String {
        // serde_json's Map is ordered by key (no `preserve_order`), as RFC 7638 requires.
        let canonical = Value::Object(self.jwk_members()).to_string();
        jws::encode(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref(),
        )
    }
}

/// A key of a set, pinned to one algorithm.
#[derive(Debug)]
pub struct Key {
    /// Its `kid`, if it has one.
    pub kid: Option<String>,
    /// The verifier.
    pub key: VerifyingKey,
}

/// Why a key set cannot be used at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySetError {
    /// Not JSON, or not `{"keys": [...]}`.
    #[error("not a JWK set: {0}")]
    Malformed(String),
    /// Two keys share a `kid`.
    #[error("two keys have the kid `{0}`; a key set must name each key once")]
    DuplicateKid(String),
    /// Symmetric and asymmetric keys together.
    #[error("the set mixes symmetric and asymmetric keys")]
    Mixed,
    /// More than [`MAX_KEYS`] keys.
    #[error("the set has {0} keys; at most {MAX_KEYS} are accepted")]
    TooMany(usize),
    /// A key carries private members.
    #[error("the key {0} includes private key members; publish only public keys")]
    PrivateMembers(String),
}

/// Why a token's signature was not accepted by a key set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoKey {
    /// No key has the token's `kid`.
    #[error("no key has the kid `{0}`")]
    UnknownKid(String),
    /// Keys exist but none is pinned to the token's algorithm.
    #[error("no key of this issuer may verify {0} tokens")]
    AlgorithmNotAllowed(&'static str),
    /// The signature does not verify with any candidate key.
    #[error("the signature does not verify")]
    BadSignature,
}

/// Keys that may verify tokens of one issuer.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<Key>,
    /// Keys of the source that were not loaded, with the reason (for logs and `token inspect`).
    pub skipped: Vec<String>,
}

impl KeySet {
    /// A set of one key (a PEM key or an HMAC secret) pinned to each of `algorithms`.
    pub fn single(key: &PublicKey, algorithms: &[Algorithm]) -> Result<Self, KeyError> {
        let mut keys = Vec::new();
        for &alg in algorithms {
            keys.push(Key {
                kid: None,
                key: key.pin(alg)?,
            });
        }
        Ok(Self {
            keys,
            skipped: Vec::new(),
        })
    }

    /// Parses a JWK set (`{"keys": [...]}`), pinning keys without `alg` to the algorithms of
    /// their family that `allowed` lists.
    pub fn from_jwks(json: &[u8], allowed: &[Algorithm]) -> Result<Self, KeySetError> {
        let object = json::parse_object(json).map_err(KeySetError::Malformed)?;
        let Some(Value::Array(entries)) = object.get("keys") else {
            return Err(KeySetError::Malformed("it has no `keys` array".to_owned()));
        };
        if entries.len() > MAX_KEYS {
            return Err(KeySetError::TooMany(entries.len()));
        }
        let mut kids = HashSet::new();
        let (mut symmetric, mut asymmetric) = (false, false);
        let mut set = Self::default();
        for (n, entry) in entries.iter().enumerate() {
            let Value::Object(jwk) = entry else {
                return Err(KeySetError::Malformed(format!("key {n} is not an object")));
            };
            let kid = match jwk.get("kid") {
                None => None,
                Some(Value::String(kid)) => Some(kid.clone()),
                Some(_) => {
                    set.skipped
                        .push(format!("key #{n}: its kid is not a string"));
                    continue;
                }
            };
            let label = kid.as_deref().map_or_else(
                || format!("#{n}"),
                |kid| format!("`{}`", jws::truncate(kid)),
            );
            if let Some(kid) = &kid
                && !kids.insert(kid.clone())
            {
                return Err(KeySetError::DuplicateKid(jws::truncate(kid)));
            }
            match jwk.get("kty").and_then(Value::as_str) {
                Some("oct") => symmetric = true,
                Some(_) => {
                    asymmetric = true;
                    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
                        return Err(KeySetError::PrivateMembers(label));
                    }
                }
                None => {}
            }
            match Jwk::parse(jwk).and_then(|parsed| parsed.pin(allowed)) {
                Ok(pinned) => set.keys.extend(pinned.into_iter().map(|key| Key {
                    kid: kid.clone(),
                    key,
                })),
                Err(reason) => set.skipped.push(format!("key {label}: {reason}")),
            }
        }
        if symmetric && asymmetric {
            return Err(KeySetError::Mixed);
        }
        Ok(set)
    }

    /// Whether the set has no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The usable keys.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// Whether some key has `kid`.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// Verifies `jws`'s signature and returns the key that verified it. With a `kid`: the keys
    /// with that `kid`, or, if none has it, the keys without a `kid` (a configured PEM key or
    /// secret). Without a `kid`: every key, but at most [`MAX_TRIES`] signature checks. Only keys
    /// pinned to an algorithm the token's `alg` names are tried.
    pub fn verify(&self, jws: &CompactJws<'_>) -> Result<&Key, NoKey> {
        let kid = jws.header.kid.as_deref();
        let named = kid.is_some_and(|kid| self.has_kid(kid));
        let candidates = self.keys.iter().filter(|key| match kid {
            Some(_) if named => key.kid.as_deref() == kid,
            Some(_) => key.kid.is_none(),
            None => true,
        });
        let mut admitted = 0;
        let mut any = false;
        for key in candidates {
            any = true;
            if !jws.header.alg.admits(key.key.algorithm()) {
                continue;
            }
            admitted += 1;
            if admitted > MAX_TRIES {
                break;
            }
            if key.key.verify(jws.signing_input(), jws.signature()) {
                return Ok(key);
            }
        }
        // An unknown `kid` is reported as such (a remote set is then fetched again) when no key
        // could be tried, or when the set names its keys and the unnamed ones failed.
        let uses_kids = self.keys.iter().any(|key| key.kid.is_some());
        match kid {
            Some(kid) if !named && (!any || (admitted > 0 && uses_kids)) => {
                Err(NoKey::UnknownKid(jws::truncate(kid)))
            }
            _ if admitted == 0 => Err(NoKey::AlgorithmNotAllowed(jws.header.alg.name())),
            _ => Err(NoKey::BadSignature),
        }
    }
}

/// The most signature checks one token may cost (a token without `kid` against a large set).
pub const MAX_TRIES: usize = 8;

/// JWK members that only a private key has.
const PRIVATE_MEMBERS: [&str; 6] = ["d", "p", "q", "dp", "dq", "qi"];

/// One parsed JWK.
#[derive(Debug)]
pub struct Jwk {
    /// The key.
    pub key: PublicKey,
    /// The `alg` it is restricted to, if any (`EdDSA` leaves the curve to decide).
    pub alg: Option<Algorithm>,
}

impl Jwk {
    /// Parses one JWK object, checking `use`, `key_ops` and `alg` against the key.
    pub fn parse(jwk: &Map<String, Value>) -> Result<Self, String> {
        let text = |name: &str| -> Result<Option<&str>, String> {
            match jwk.get(name) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(_) => Err(format!("`{name}` must be a string")),
            }
        };
        let bytes = |name: &str| -> Result<Vec<u8>, String> {
            let value = text(name)?.ok_or_else(|| format!("`{name}` is missing"))?;
            jws::decode(value, Part::Payload).map_err(|_| format!("`{name}` is not base64url"))
        };
        if let Some(usage) = text("use")?
            && usage != "sig"
        {
            return Err(format!("its use is `{}`, not `sig`", jws::truncate(usage)));
        }
        if let Some(ops) = jwk.get("key_ops") {
            let verifies = ops
                .as_array()
                .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")));
            if !verifies {
                return Err("its key_ops do not include `verify`".into());
            }
        }
        let key = match text("kty")? {
            Some("RSA") => PublicKey::Rsa {
                n: bytes("n")?,
                e: bytes("e")?,
            },
            Some("EC") => {
                let crv = text("crv")?.unwrap_or_default();
                let curve = Curve::parse(crv)
                    .ok_or_else(|| format!("unsupported EC curve `{}`", jws::truncate(crv)))?;
                let (x, y) = (bytes("x")?, bytes("y")?);
                let len = curve.coordinate_len();
                if x.len() != len || y.len() != len {
                    return Err(format!(
                        "{} coordinates must have exactly {len} bytes",
                        curve.name()
                    ));
                }
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                PublicKey::Ec { curve, point }
            }
            Some("OKP") => match text("crv")? {
                Some("Ed25519") => PublicKey::Ed25519(bytes("x")?),
                Some("Ed448") => PublicKey::Ed448(bytes("x")?),
                other => {
                    return Err(format!(
                        "unsupported OKP curve `{}`",
                        jws::truncate(other.unwrap_or_default())
                    ));
                }
            },
            Some("oct") => PublicKey::Secret(bytes("k")?),
            other => {
                return Err(format!(
                    "unsupported key type `{}`",
                    jws::truncate(other.unwrap_or_default())
                ));
            }
        };
        let (alg, eddsa) = match text("alg")? {
            None => (None, false),
            Some("EdDSA") => (None, true),
            // The name Wycheproof's copy of the RFC 7520 P-521 key carries; JWS calls it ES512.
            Some("ES521") => (Some(Algorithm::Es512), false),
            Some(name) => (
                Some(Algorithm::parse(name).ok_or_else(|| {
                    format!("`{}` is not a signature algorithm", jws::truncate(name))
                })?),
                false,
            ),
        };
        if eddsa && !matches!(key, PublicKey::Ed25519(_) | PublicKey::Ed448(_)) {
            return Err("EdDSA needs an OKP key".into());
        }
        if let Some(alg) = alg
            && !key.family().contains(&alg)
        {
            return Err(format!("a {} key cannot be used with {alg}", key.kind()));
        }
        Ok(Self { key, alg })
    }

    /// Pins the key to its `alg`, or without one to each algorithm of its family in `allowed`.
    pub fn pin(&self, allowed: &[Algorithm]) -> Result<Vec<VerifyingKey>, String> {
        let candidates: Vec<Algorithm> = match self.alg {
            Some(alg) => vec![alg],
            None => self
                .key
                .family()
                .iter()
                .copied()
                .filter(|alg| allowed.contains(alg))
                .collect(),
        };
        let mut pinned = Vec::new();
        let mut last_error = None;
        for alg in candidates {
            if !allowed.contains(&alg) {
                return Err(format!("{alg} is not allowed for this issuer"));
            }
            match self.key.pin(alg) {
                Ok(key) => pinned.push(key),
                Err(e) => last_error = Some(e.to_string()),
            }
        }
        if pinned.is_empty() {
            return Err(last_error.unwrap_or_else(|| {
                format!(
                    "none of the algorithms allowed for this issuer fits a {} key",
                    self.key.kind()
                )
            }));
        }
        Ok(pinned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_matches_rfc_7638() {
        // RFC 7638 section 3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let key = PublicKey::Rsa {
            n: jws::decode(n, Part::Payload).unwrap_or_default(),
            e: vec![1, 0, 1],
        };
        assert_eq!(
            key.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    fn set(json: &str) -> Result<KeySet, KeySetError> {
        KeySet::from_jwks(json.as_bytes(), Algorithm::ALL)
    }

    #[test]
    fn duplicate_kids_and_mixed_sets_are_refused() {
        let oct = r#"{"kty":"oct","kid":"a","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#;
        assert_eq!(
            set(&format!(r#"{{"keys":[{oct},{oct}]}}"#)).err(),
            Some(KeySetError::DuplicateKid("a".into()))
        );
        let ec = r#"{"kty":"EC","kid":"b","crv":"P-256","x":"04N0xi21hshyvBp7I167sbE_bXqyqkAPfefdklMO7wY","y":"UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgmw"}"#;
        assert_eq!(
            set(&format!(r#"{{"keys":[{oct},{ec}]}}"#)).err(),
            Some(KeySetError::Mixed)
        );
        let one = set(&format!(r#"{{"keys":[{ec}]}}"#)).unwrap_or_default();
        assert_eq!(one.keys().len(), 1);
        assert!(one.has_kid("b"));
    }

    #[test]
    fn unusable_keys_are_skipped_with_a_reason() {
        let ec = r#""kty":"EC","crv":"P-256","x":"04N0xi21hshyvBp7I167sbE_bXqyqkAPfefdklMO7wY","y":"UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgmw""#;
        for (extra, reason) in [
            (r#""use":"enc""#, "use"),
            (r#""key_ops":["encrypt"]"#, "key_ops"),
            (r#""alg":"ES384""#, "cannot be used"),
            (r#""alg":"A256GCM""#, "not a signature algorithm"),
        ] {
            let one = set(&format!(r#"{{"keys":[{{{ec},{extra}}}]}}"#)).expect("a set");
            assert!(one.is_empty(), "{extra}");
            assert!(one.skipped[0].contains(reason), "{:?}", one.skipped);
        }
    }

    #[test]
    fn keys_without_alg_take_the_allowed_algorithms_of_their_family() {
        let secret = jws::encode(&[7; 48]);
        let jwks = format!(r#"{{"keys":[{{"kty":"oct","k":"{secret}"}}]}}"#);
        let all = KeySet::from_jwks(jwks.as_bytes(), Algorithm::ALL).unwrap_or_default();
        // 48 bytes suit HS256 and HS384, not HS512.
        let algs: Vec<_> = all.keys().iter().map(|k| k.key.algorithm()).collect();
        assert_eq!(algs, [Algorithm::Hs256, Algorithm::Hs384]);
        let pinned = KeySet::from_jwks(jwks.as_bytes(), &[Algorithm::Hs384]).unwrap_or_default();
        assert_eq!(pinned.keys().len(), 1);
        assert!(
            KeySet::from_jwks(jwks.as_bytes(), &[Algorithm::Es256])
                .unwrap_or_default()
                .is_empty()
        );
    }

    fn hs256_token(secret: &[u8], kid: Option<&str>) -> String {
        let header = match kid {
            Some(kid) => format!(r#"{{"alg":"HS256","kid":"{kid}"}}"#),
            None => r#"{"alg":"HS256"}"#.to_owned(),
        };
        let input = format!("{}.{}", jws::encode(header.as_bytes()), jws::encode(b"{}"));
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
        let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", jws::encode(tag.as_ref()))
    }

    #[test]
    fn key_choice_follows_kid_and_bounds_the_tries() {
        let secret = |n: u8| [n; 32];
        let keys: Vec<String> = (1..=10)
            .map(|n| {
                format!(
                    r#"{{"kty":"oct","kid":"k{n}","alg":"HS256","k":"{}"}}"#,
                    jws::encode(&secret(n))
                )
            })
            .collect();
        let set = KeySet::from_jwks(
            format!(r#"{{"keys":[{}]}}"#, keys.join(",")).as_bytes(),
            Algorithm::ALL,
        )
        .expect("set");
        let verify = |token: &str| {
            let jws = CompactJws::parse(token, 8192).expect("token");
            set.verify(&jws).map(|key| key.kid.clone())
        };
        assert_eq!(
            verify(&hs256_token(&secret(10), Some("k10"))),
            Ok(Some("k10".into()))
        );
        assert_eq!(
            verify(&hs256_token(&secret(10), Some("k9"))),
            Err(NoKey::BadSignature)
        );
        assert_eq!(
            verify(&hs256_token(&secret(10), Some("k11"))),
            Err(NoKey::UnknownKid("k11".into()))
        );
        // Without a kid: at most MAX_TRIES keys are tried.
        assert_eq!(
            verify(&hs256_token(&secret(3), None)),
            Ok(Some("k3".into()))
        );
        assert_eq!(
            verify(&hs256_token(&secret(10), None)),
            Err(NoKey::BadSignature)
        );
    }
}
