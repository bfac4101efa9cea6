//! Public keys from PEM: SubjectPublicKeyInfo (`PUBLIC KEY`), PKCS#1 (`RSA PUBLIC KEY`) and
//! X.509 certificates (`CERTIFICATE`, whose subject key is used; the certificate's validity and
//! chain are not checked: the operator pins the key by configuring it).
//!
//! The DER reader here is a tag-length-value walker for these three fixed shapes; it refuses
//! indefinite and non-minimal lengths and trailing bytes.

use super::keys::{Curve, PublicKey};

/// Why a PEM file gave no usable public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    /// No PEM block, or a broken one.
    #[error("not a PEM file: {0}")]
    NotPem(String),
    /// A private key where a public key belongs.
    #[error("this is a private key ({0}); configure the public key, never the private one")]
    PrivateKey(String),
    /// No block of a supported kind.
    #[error("no PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE block (found {0})")]
    NoPublicKey(String),
    /// The DER inside is malformed.
    #[error("the {0} is malformed")]
    Malformed(&'static str),
    /// A key algorithm or curve that JWS does not use.
    #[error("unsupported key algorithm {0}")]
    Unsupported(&'static str),
}

const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
const OID_SECP256K1: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x0a];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const OID_ED448: &[u8] = &[0x2b, 0x65, 0x71];

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const NULL: u8 = 0x05;
const OID: u8 = 0x06;

/// The first public key in `text`.
pub fn public_key_from_pem(text: &[u8]) -> Result<PublicKey, PemError> {
    let blocks = ::pem::parse_many(text).map_err(|e| PemError::NotPem(e.to_string()))?;
    if blocks.is_empty() {
        return Err(PemError::NotPem("no -----BEGIN …----- block".into()));
    }
    let mut found = Vec::new();
    for block in &blocks {
        match block.tag() {
            "PUBLIC KEY" => return from_spki(block.contents()),
            "RSA PUBLIC KEY" => return rsa_public_key(block.contents()),
            "CERTIFICATE" => {
                let der = rustls::pki_types::CertificateDer::from(block.contents());
                let cert = webpki::EndEntityCert::try_from(&der)
                    .map_err(|_| PemError::Malformed("certificate"))?;
                return from_spki(cert.subject_public_key_info().as_ref());
            }
            tag if tag.contains("PRIVATE KEY") => return Err(PemError::PrivateKey(tag.into())),
            tag => found.push(tag.to_owned()),
        }
    }
    Err(PemError::NoPublicKey(found.join(", ")))
}

/// A DER `SubjectPublicKeyInfo`.
pub fn from_spki(der: &[u8]) -> Result<PublicKey, PemError> {
    const WHAT: &str = "SubjectPublicKeyInfo";
    let mut outer = Der::new(der);
    let mut spki = Der::new(outer.take(SEQUENCE).ok_or(PemError::Malformed(WHAT))?);
    outer.end().ok_or(PemError::Malformed(WHAT))?;
    let mut algorithm = Der::new(spki.take(SEQUENCE).ok_or(PemError::Malformed(WHAT))?);
    let bits = spki.take(BIT_STRING).ok_or(PemError::Malformed(WHAT))?;
    spki.end().ok_or(PemError::Malformed(WHAT))?;
    // The first byte of a BIT STRING counts unused bits; a key has none.
    let key = match bits.split_first() {
        Some((0, key)) => key,
        _ => return Err(PemError::Malformed(WHAT)),
    };
    let oid = algorithm.take(OID).ok_or(PemError::Malformed(WHAT))?;
    match oid {
        OID_RSA => {
            // Parameters are NULL (RFC 3279), sometimes omitted.
            if !algorithm.is_empty() {
                algorithm.take(NULL).ok_or(PemError::Malformed(WHAT))?;
            }
            algorithm.end().ok_or(PemError::Malformed(WHAT))?;
            rsa_public_key(key)
        }
        OID_EC => {
            let curve = match algorithm.take(OID).ok_or(PemError::Malformed(WHAT))? {
                OID_P256 => Curve::P256,
                OID_P384 => Curve::P384,
                OID_P521 => Curve::P521,
                OID_SECP256K1 => Curve::Secp256k1,
                _ => return Err(PemError::Unsupported("(an EC curve JWS does not use)")),
            };
            algorithm.end().ok_or(PemError::Malformed(WHAT))?;
            if key.first() != Some(&0x04) {
                return Err(PemError::Unsupported("(a compressed EC point)"));
            }
            Ok(PublicKey::Ec {
                curve,
                point: key.to_vec(),
            })
        }
        OID_ED25519 | OID_ED448 => {
            algorithm.end().ok_or(PemError::Malformed(WHAT))?;
            Ok(if oid == OID_ED25519 {
                PublicKey::Ed25519(key.to_vec())
            } else {
                PublicKey::Ed448(key.to_vec())
            })
        }
        _ => Err(PemError::Unsupported("(not RSA, EC, Ed25519 or Ed448)")),
    }
}

/// A DER PKCS#1 `RSAPublicKey`.
fn rsa_public_key(der: &[u8]) -> Result<PublicKey, PemError> {
    const WHAT: &str = "RSA public key";
    let mut outer = Der::new(der);
    let mut sequence = Der::new(outer.take(SEQUENCE).ok_or(PemError::Malformed(WHAT))?);
    outer.end().ok_or(PemError::Malformed(WHAT))?;
    let n = positive(sequence.take(INTEGER).ok_or(PemError::Malformed(WHAT))?)
        .ok_or(PemError::Malformed(WHAT))?;
    let e = positive(sequence.take(INTEGER).ok_or(PemError::Malformed(WHAT))?)
        .ok_or(PemError::Malformed(WHAT))?;
    sequence.end().ok_or(PemError::Malformed(WHAT))?;
    Ok(PublicKey::Rsa {
        n: n.to_vec(),
        e: e.to_vec(),
    })
}

/// The magnitude of a DER INTEGER that must be positive (a sign byte 0 is dropped).
fn positive(integer: &[u8]) -> Option<&[u8]> {
    match integer {
        [] => None,
        [first, ..] if first & 0x80 != 0 => None,
        [0, rest @ ..] => Some(rest),
        all => Some(all),
    }
}

/// A forward-only DER reader.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self(bytes)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Some(())` when everything was read.
    fn end(&self) -> Option<()> {
        self.0.is_empty().then_some(())
    }

    /// The contents of the next element, which must have `tag`.
    fn take(&mut self, tag: u8) -> Option<&'a [u8]> {
        let (&found, rest) = self.0.split_first()?;
        if found != tag {
            return None;
        }
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 || rest.len() < count {
                return None; // indefinite or absurd
            }
            let (digits, rest) = rest.split_at(count);
            if digits[0] == 0 {
                return None; // non-minimal
            }
            let len = digits
                .iter()
                .fold(0usize, |len, &d| (len << 8) | usize::from(d));
            if len < 0x80 {
                return None; // long form for a short length
            }
            (len, rest)
        };
        if rest.len() < len {
            return None;
        }
        let (contents, rest) = rest.split_at(len);
        self.0 = rest;
        Some(contents)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_keys_and_other_blocks_are_named() {
        let private = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert_eq!(
            public_key_from_pem(private.as_bytes()),
            Err(PemError::PrivateKey("PRIVATE KEY".into()))
        );
        let other = "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n";
        assert_eq!(
            public_key_from_pem(other.as_bytes()),
            Err(PemError::NoPublicKey("X509 CRL".into()))
        );
        assert!(matches!(
            public_key_from_pem(b"hello"),
            Err(PemError::NotPem(_))
        ));
    }

    #[test]
    fn der_lengths_must_be_minimal_and_complete() {
        assert_eq!(
            Der::new(&[0x02, 0x01, 0x05]).take(INTEGER),
            Some(&[5u8][..])
        );
        assert_eq!(Der::new(&[0x02, 0x81, 0x01, 0x05]).take(INTEGER), None);
        assert_eq!(
            Der::new(&[0x02, 0x80, 0x05, 0x00, 0x00]).take(INTEGER),
            None
        );
        assert_eq!(Der::new(&[0x02, 0x02, 0x05]).take(INTEGER), None);
        assert_eq!(Der::new(&[0x30, 0x00]).take(INTEGER), None);
        assert_eq!(positive(&[0x00, 0x80]), Some(&[0x80u8][..]));
        assert_eq!(positive(&[0x80]), None);
    }
}
