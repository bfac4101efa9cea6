//! Signature verification for each JWS algorithm with a key pinned to it.
//!
//! A [`VerifyingKey`] is built for exactly one [`Algorithm`] and refuses keys that the JOSE
//! specifications forbid (HMAC keys shorter than the hash, RSA moduli under 2048 bits, EC points
//! of the wrong length or encoding). The algorithm is never taken from the token: callers pick
//! the key, the key decides the algorithm.
//!
//! Policy choices (each pinned by the Wycheproof conformance test):
//! - ES256K accepts high-S signatures (s > n/2), as ECDSA and RFC 8812 do: other
//!   implementations produce them about half the time, and refusing them breaks interoperability.
//!   A signature is not a unique token identifier; nothing in Portico relies on that.
//! - HMAC tags are compared whole, in constant time; JWS never truncates them.
//! - Ed448 (which aws-lc-rs lacks) uses `ed448-goldilocks`, whose point decoding ignores the
//!   unused low bits of the last byte and does not check y < p. RFC 8032 section 5.2.3 requires
//!   refusing such encodings, so [`VerifyingKey::ed448`] and the verifier check both for the
//!   public key and for R before the crate sees them (Wycheproof ed448 tc63 to tc65).

use std::fmt;

use aws_lc_rs::{hmac, signature};

/// A JWS signature algorithm (RFC 7518, RFC 8812 for ES256K, RFC 9864 for Ed25519/Ed448).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// HMAC with SHA-256.
    Hs256,
    /// HMAC with SHA-384.
    Hs384,
    /// HMAC with SHA-512.
    Hs512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256 and MGF1 with SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384 and MGF1 with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512 and MGF1 with SHA-512.
    Ps512,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// ECDSA on secp256k1 with SHA-256.
    Es256k,
    /// ECDSA on P-384 with SHA-384.
    Es384,
    /// ECDSA on P-521 with SHA-512.
    Es512,
    /// EdDSA on Ed25519.
    Ed25519,
    /// EdDSA on Ed448.
    Ed448,
}

impl Algorithm {
    /// Every algorithm, in a stable order.
    pub const ALL: &'static [Algorithm] = &[
        Self::Hs256,
        Self::Hs384,
        Self::Hs512,
        Self::Rs256,
        Self::Rs384,
        Self::Rs512,
        Self::Ps256,
        Self::Ps384,
        Self::Ps512,
        Self::Es256,
        Self::Es256k,
        Self::Es384,
        Self::Es512,
        Self::Ed25519,
        Self::Ed448,
    ];

    /// The `alg` name. (`EdDSA` in a token header names the family; the key's curve picks
    /// [`Algorithm::Ed25519`] or [`Algorithm::Ed448`].)
    pub fn name(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::Hs384 => "HS384",
            Self::Hs512 => "HS512",
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es256k => "ES256K",
            Self::Es384 => "ES384",
            Self::Es512 => "ES512",
            Self::Ed25519 => "Ed25519",
            Self::Ed448 => "Ed448",
        }
    }

    /// Parses an exact `alg` name (case-sensitive, as RFC 7515 requires). `none` and every
    /// unknown name are `None`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|alg| alg.name() == name)
    }

    /// For HMAC algorithms, the hash length in bytes (the shortest key allowed).
    fn hmac_len(self) -> Option<usize> {
        match self {
            Self::Hs256 => Some(32),
            Self::Hs384 => Some(48),
            Self::Hs512 => Some(64),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key's type does not go with the algorithm.
    #[error("a {kind} key cannot be used with {alg}")]
    WrongKind {
        /// The kind of key offered.
        kind: &'static str,
        /// The algorithm it was pinned to.
        alg: Algorithm,
    },
    /// An HMAC secret shorter than the hash (RFC 7518 section 3.2).
    #[error("an {alg} secret needs at least {min} bytes; this one has {len}")]
    HmacKeyTooShort {
        /// The algorithm.
        alg: Algorithm,
        /// Bytes given.
        len: usize,
        /// Bytes required.
        min: usize,
    },
    /// An RSA modulus outside 2048..=8192 bits.
    #[error("RSA keys must have 2048 to 8192 bits; this one has {bits}")]
    RsaKeySize {
        /// The modulus size.
        bits: usize,
    },
    /// A malformed public key.
    #[error("{0}")]
    Malformed(&'static str),
}

/// A key pinned to one algorithm, ready to verify signatures.
pub struct VerifyingKey {
    alg: Algorithm,
    inner: Inner,
}

enum Inner {
    /// Boxed: an aws-lc HMAC key holds its precomputed contexts (over a kilobyte).
    Hmac(Box<hmac::Key>),
    /// RSA, ECDSA and Ed25519 keys, parsed and checked once when the key is built.
    Parsed(signature::ParsedPublicKey),
    Ed448(Box<ed448_goldilocks::VerifyingKey>),
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material: an HMAC key is a secret.
        f.debug_struct("VerifyingKey")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// An HMAC secret for `alg` (HS256/384/512); at least as long as the hash.
    pub fn hmac(alg: Algorithm, secret: &[u8]) -> Result<Self, KeyError> {
        let (Some(min), Some(algorithm)) = (alg.hmac_len(), hmac_algorithm(alg)) else {
            return Err(KeyError::WrongKind {
                kind: "symmetric",
                alg,
            });
        };
        if secret.len() < min {
            return Err(KeyError::HmacKeyTooShort {
                alg,
                len: secret.len(),
                min,
            });
        }
        Ok(Self {
            alg,
            inner: Inner::Hmac(Box::new(hmac::Key::new(algorithm, secret))),
        })
    }

    /// An RSA public key from its modulus and exponent (big-endian) for RS* or PS*.
    pub fn rsa(alg: Algorithm, modulus: &[u8], exponent: &[u8]) -> Result<Self, KeyError> {
        if rsa_algorithm(alg).is_none() {
            return Err(KeyError::WrongKind { kind: "RSA", alg });
        }
        let n = strip_leading_zeros(modulus);
        let e = strip_leading_zeros(exponent);
        let bits = n
            .first()
            .map_or(0, |top| n.len() * 8 - top.leading_zeros() as usize);
        if !(2048..=8192).contains(&bits) {
            return Err(KeyError::RsaKeySize { bits });
        }
        // e = 1 makes every "signature" its own message (Wycheproof's exponentOne key).
        if e.is_empty() || e.len() > 4 || e[e.len() - 1] & 1 == 0 || e == [1] {
            return Err(KeyError::Malformed(
                "the RSA exponent must be odd, at least 3 and fit in 32 bits",
            ));
        }
        if is_roca_modulus(n) {
            return Err(KeyError::Malformed(
                "the RSA key was made by a generator with the ROCA flaw (CVE-2017-15361); its \
                 private key can be computed from it",
            ));
        }
        let params = rsa_algorithm(alg).ok_or(KeyError::WrongKind { kind: "RSA", alg })?;
        let key = signature::ParsedPublicKey::new(params, rsa_public_key_der(n, e))
            .map_err(|_| KeyError::Malformed("the RSA public key is not valid"))?;
        Ok(Self {
            alg,
            inner: Inner::Parsed(key),
        })
    }

    /// An EC public key as an uncompressed SEC1 point (`04 ‖ x ‖ y`) for ES256/ES256K/ES384/ES512.
    pub fn ec(alg: Algorithm, point: &[u8]) -> Result<Self, KeyError> {
        let (algorithm, coordinate) = match alg {
            Algorithm::Es256 => (&signature::ECDSA_P256_SHA256_FIXED, 32),
            Algorithm::Es256k => (&signature::ECDSA_P256K1_SHA256_FIXED, 32),
            Algorithm::Es384 => (&signature::ECDSA_P384_SHA384_FIXED, 48),
            Algorithm::Es512 => (&signature::ECDSA_P521_SHA512_FIXED, 66),
            _ => return Err(KeyError::WrongKind { kind: "EC", alg }),
        };
        if point.len() != 1 + 2 * coordinate || point[0] != 0x04 {
            return Err(KeyError::Malformed(
                "an EC key must be an uncompressed point of its curve",
            ));
        }
        let key = signature::ParsedPublicKey::new(algorithm, point)
            .map_err(|_| KeyError::Malformed("the EC public key is not a point of its curve"))?;
        Ok(Self {
            alg,
            inner: Inner::Parsed(key),
        })
    }

    /// An Ed25519 public key (32 bytes).
    pub fn ed25519(public: &[u8]) -> Result<Self, KeyError> {
        if public.len() != 32 {
            return Err(KeyError::Malformed("an Ed25519 public key has 32 bytes"));
        }
        let key = signature::ParsedPublicKey::new(&signature::ED25519, public)
            .map_err(|_| KeyError::Malformed("the Ed25519 public key is not valid"))?;
        Ok(Self {
            alg: Algorithm::Ed25519,
            inner: Inner::Parsed(key),
        })
    }

    /// An Ed448 public key (57 bytes, RFC 8032 encoding).
    pub fn ed448(public: &[u8]) -> Result<Self, KeyError> {
        let encoding: &[u8; ED448_LEN] = public
            .try_into()
            .map_err(|_| KeyError::Malformed("an Ed448 public key has 57 bytes"))?;
        if !is_canonical_ed448_point(encoding) {
            return Err(KeyError::Malformed(
                "the Ed448 public key is not a canonical encoding",
            ));
        }
        let key = ed448_goldilocks::VerifyingKey::from_bytes(encoding)
            .map_err(|_| KeyError::Malformed("the Ed448 public key is not a point of the curve"))?;
        Ok(Self {
            alg: Algorithm::Ed448,
            inner: Inner::Ed448(Box::new(key)),
        })
    }

    /// The algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Whether `signature` is this key's signature of `message` under its algorithm. ECDSA
    /// signatures are the fixed-size `r ‖ s` JWS uses; DER-encoded ones do not verify.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.inner {
            Inner::Hmac(key) => hmac::verify(key, message, signature).is_ok(),
            Inner::Parsed(key) => key.verify_sig(message, signature).is_ok(),
            Inner::Ed448(key) => {
                let Some(r) = signature
                    .get(..ED448_LEN)
                    .and_then(|r| <&[u8; ED448_LEN]>::try_from(r).ok())
                else {
                    return false;
                };
                signature.len() == 2 * ED448_LEN
                    && is_canonical_ed448_point(r)
                    && ed448_goldilocks::Signature::from_slice(signature)
                        .is_ok_and(|signature| key.verify_raw(&signature, message).is_ok())
            }
        }
    }
}

fn hmac_algorithm(alg: Algorithm) -> Option<hmac::Algorithm> {
    match alg {
        Algorithm::Hs256 => Some(hmac::HMAC_SHA256),
        Algorithm::Hs384 => Some(hmac::HMAC_SHA384),
        Algorithm::Hs512 => Some(hmac::HMAC_SHA512),
        _ => None,
    }
}

fn rsa_algorithm(alg: Algorithm) -> Option<&'static signature::RsaParameters> {
    match alg {
        Algorithm::Rs256 => Some(&signature::RSA_PKCS1_2048_8192_SHA256),
        Algorithm::Rs384 => Some(&signature::RSA_PKCS1_2048_8192_SHA384),
        Algorithm::Rs512 => Some(&signature::RSA_PKCS1_2048_8192_SHA512),
        Algorithm::Ps256 => Some(&signature::RSA_PSS_2048_8192_SHA256),
        Algorithm::Ps384 => Some(&signature::RSA_PSS_2048_8192_SHA384),
        Algorithm::Ps512 => Some(&signature::RSA_PSS_2048_8192_SHA512),
        _ => None,
    }
}

/// Bytes in an encoded Ed448 point (and in each half of a signature).
const ED448_LEN: usize = 57;

/// RFC 8032 section 5.2.3: the last byte holds only the sign bit of x, and y (the first 56
/// bytes, little-endian) is below p = 2^448 - 2^224 - 1.
fn is_canonical_ed448_point(encoding: &[u8; ED448_LEN]) -> bool {
    if encoding[56] & 0x7f != 0 {
        return false;
    }
    // p in little-endian bytes: 28 x 0xff, 0xfe, 27 x 0xff. Compare from the top byte down.
    let p_byte = |i: usize| if i == 28 { 0xfe } else { 0xff };
    for i in (0..56).rev() {
        match encoding[i].cmp(&p_byte(i)) {
            std::cmp::Ordering::Less => return true,
            std::cmp::Ordering::Greater => return false,
            std::cmp::Ordering::Equal => {}
        }
    }
    false // y == p
}

/// PKCS#1 `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }` in DER, from
/// big-endian magnitudes without leading zeros.
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn integer(out: &mut Vec<u8>, magnitude: &[u8]) {
        let pad = magnitude.first().is_some_and(|b| b & 0x80 != 0);
        out.push(0x02);
        push_len(out, magnitude.len() + usize::from(pad));
        if pad {
            out.push(0);
        }
        out.extend_from_slice(magnitude);
    }
    let mut body = Vec::with_capacity(n.len() + e.len() + 16);
    integer(&mut body, n);
    integer(&mut body, e);
    let mut der = vec![0x30];
    push_len(&mut der, body.len());
    der.extend_from_slice(&body);
    der
}

/// A DER length (definite, minimal form).
pub(crate) fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes
            .iter()
            .position(|&b| b != 0)
            .unwrap_or(bytes.len() - 1);
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// The ROCA fingerprint (Nemec et al., CCS 2017): keys from the flawed Infineon generator have a
/// modulus that, modulo each small prime below, lies in the subgroup generated by 65537. A random
/// modulus passes all of these tests with negligible probability. This is a check on the key's
/// structure, not cryptographic arithmetic: a handful of remainders of small numbers.
fn is_roca_modulus(n: &[u8]) -> bool {
    const PRIMES: [u64; 38] = [
        3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89,
        97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
    ];
    PRIMES.iter().all(|&p| {
        let remainder = n.iter().fold(0u64, |r, &b| (r * 256 + u64::from(b)) % p);
        // Walk the powers of 65537 mod p until they cycle back to 1.
        let generator = 65537 % p;
        let mut power = 1u64;
        loop {
            if power == remainder {
                return true;
            }
            power = power * generator % p;
            if power == 1 {
                return false;
            }
        }
    })
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_exact_and_none_is_not_an_algorithm() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::parse(alg.name()), Some(*alg));
        }
        for bad in [
            "none", "None", "NONE", "nOnE", "hs256", "EdDSA", "ES256k", "", "RS1",
        ] {
            assert_eq!(Algorithm::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn keys_are_pinned_to_their_algorithm_family() {
        assert!(matches!(
            VerifyingKey::hmac(Algorithm::Rs256, &[7; 64]),
            Err(KeyError::WrongKind { .. })
        ));
        assert!(matches!(
            VerifyingKey::ec(Algorithm::Hs256, &[4; 65]),
            Err(KeyError::WrongKind { .. })
        ));
        assert!(matches!(
            VerifyingKey::rsa(Algorithm::Es256, &[1; 256], &[1, 0, 1]),
            Err(KeyError::WrongKind { .. })
        ));
    }

    #[test]
    fn short_hmac_secrets_and_small_rsa_keys_are_refused() {
        assert_eq!(
            VerifyingKey::hmac(Algorithm::Hs512, &[7; 63]).err(),
            Some(KeyError::HmacKeyTooShort {
                alg: Algorithm::Hs512,
                len: 63,
                min: 64
            })
        );
        assert!(VerifyingKey::hmac(Algorithm::Hs256, &[7; 32]).is_ok());
        let mut modulus = vec![0xff; 128]; // 1024 bits
        assert_eq!(
            VerifyingKey::rsa(Algorithm::Rs256, &modulus, &[1, 0, 1]).err(),
            Some(KeyError::RsaKeySize { bits: 1024 })
        );
        modulus = vec![0xff; 256];
        assert!(VerifyingKey::rsa(Algorithm::Ps256, &modulus, &[1, 0, 1]).is_ok());
        assert!(
            VerifyingKey::rsa(Algorithm::Ps256, &modulus, &[1, 0, 0]).is_err(),
            "even exponent"
        );
    }

    #[test]
    fn non_canonical_ed448_encodings_are_refused() {
        let mut y = [0u8; ED448_LEN];
        y[0] = 1;
        assert!(is_canonical_ed448_point(&y));
        y[56] = 0x80; // the sign bit is allowed
        assert!(is_canonical_ed448_point(&y));
        y[56] = 0x81; // an unused bit is not
        assert!(!is_canonical_ed448_point(&y));
        let mut p = [0xffu8; ED448_LEN];
        p[28] = 0xfe;
        p[56] = 0;
        assert!(!is_canonical_ed448_point(&p), "y = p");
        p[0] = 0xfe;
        assert!(is_canonical_ed448_point(&p), "y = p - 1");
    }

    #[test]
    fn rsa_public_key_der_is_pkcs1() {
        let der = rsa_public_key_der(&[0x80; 3], &[1, 0, 1]);
        assert_eq!(
            der,
            [
                0x30, 0x0b, 0x02, 0x04, 0, 0x80, 0x80, 0x80, 0x02, 0x03, 1, 0, 1
            ]
        );
        let mut long = Vec::new();
        push_len(&mut long, 257);
        assert_eq!(long, [0x82, 0x01, 0x01]);
    }

    #[test]
    fn roca_fingerprint_is_membership_in_every_subgroup() {
        // 1 is a power of 65537 modulo every prime: a fingerprint.
        assert!(is_roca_modulus(&[1]));
        // 0 is in no multiplicative subgroup: a multiple of 3 is not.
        assert!(!is_roca_modulus(&[3]));
    }

    #[test]
    fn debug_never_shows_key_material() {
        let key = VerifyingKey::hmac(Algorithm::Hs256, b"a very secret shared key of 32 b")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!format!("{key:?}").contains("secret"));
    }
}
