//! `portico keys generate`: a fresh key pair (or HMAC secret) for one algorithm, as PEM and JWK.
//!
//! Private keys are PKCS#8; public keys SubjectPublicKeyInfo; the JWK carries `kid` (the RFC 7638
//! thumbprint), `alg` and `use: sig`. Randomness comes from aws-lc-rs's system generator.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use serde_json::Value;

use super::jws;
use super::keys::PublicKey;
use super::pem::from_spki;
use super::primitive::Algorithm;

/// A generated key, ready to write out.
#[derive(Debug)]
pub struct Generated {
    /// The key id (RFC 7638 thumbprint of the public key).
    pub kid: String,
    /// The private key as PEM (PKCS#8), or the HMAC secret as text.
    pub private: String,
    /// The public key as PEM (SPKI); `None` for HMAC.
    pub public_pem: Option<String>,
    /// The public JWK (for HMAC, the secret JWK).
    pub jwk: Value,
}

/// Generates a key for `alg`; `rsa_bits` sizes RSA keys (2048, 3072 or 4096).
pub fn generate(alg: Algorithm, rsa_bits: usize) -> Result<Generated, String> {
    use Algorithm::*;
    let random = SystemRandom::new();
    let (private_der, spki) = match alg {
        Hs256 | Hs384 | Hs512 => return hmac(alg, &random),
        Es256 | Es256k | Es384 | Es512 => {
            let signing = match alg {
                Es256 => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                Es256k => &signature::ECDSA_P256K1_SHA256_FIXED_SIGNING,
                Es384 => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                _ => &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
            };
            let pair = EcdsaKeyPair::generate(signing).map_err(|e| e.to_string())?;
            let private = pair.to_pkcs8v1().map_err(|e| e.to_string())?;
            let public = pair.public_key().as_der().map_err(|e| e.to_string())?;
            (private.as_ref().to_vec(), public.as_ref().to_vec())
        }
        Rs256 | Rs384 | Rs512 | Ps256 | Ps384 | Ps512 => {
            let size = match rsa_bits {
                2048 => aws_lc_rs::rsa::KeySize::Rsa2048,
                3072 => aws_lc_rs::rsa::KeySize::Rsa3072,
                4096 => aws_lc_rs::rsa::KeySize::Rsa4096,
                other => return Err(format!("RSA keys are 2048, 3072 or 4096 bits, not {other}")),
            };
            let pair = aws_lc_rs::rsa::KeyPair::generate(size).map_err(|e| e.to_string())?;
            let private: aws_lc_rs::encoding::Pkcs8V1Der<'_> =
                pair.as_der().map_err(|e| e.to_string())?;
            let public = pair.public_key().as_der().map_err(|e| e.to_string())?;
            (private.as_ref().to_vec(), public.as_ref().to_vec())
        }
        Ed25519 => {
            let pair = Ed25519KeyPair::generate().map_err(|e| e.to_string())?;
            let private = pair.to_pkcs8v1().map_err(|e| e.to_string())?;
            let mut spki = vec![
                0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
            ];
            spki.extend_from_slice(pair.public_key().as_ref());
            (private.as_ref().to_vec(), spki)
        }
        Ed448 => {
            let mut seed = [0u8; 57];
            random.fill(&mut seed).map_err(|e| e.to_string())?;
            let pair = ed448_goldilocks::SigningKey::try_from(&seed[..])?;
            // PKCS#8 (RFC 8410): version 0, algorithm id-Ed448, the 57-byte seed as an OCTET STRING.
            let mut private = vec![
                0x30, 0x47, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x71, 0x04, 0x3b,
                0x04, 0x39,
            ];
            private.extend_from_slice(&seed);
            let mut spki = vec![
                0x30, 0x43, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x71, 0x03, 0x3a, 0x00,
            ];
            spki.extend_from_slice(pair.verifying_key().as_bytes().as_ref());
            (private, spki)
        }
    };
    let public = from_spki(&spki).map_err(|e| e.to_string())?;
    // Check the pair by pinning the public key as Portico would.
    public.pin(alg).map_err(|e| e.to_string())?;
    let kid = public.thumbprint();
    Ok(Generated {
        jwk: jwk(&public, alg, &kid),
        kid,
        private: pem_text("PRIVATE KEY", &private_der),
        public_pem: Some(pem_text("PUBLIC KEY", &spki)),
    })
}

/// An HMAC secret: 256 bits or more (the hash length) as base64url text, whose UTF-8 bytes are
/// the key (what `hmac_secret` takes).
fn hmac(alg: Algorithm, random: &SystemRandom) -> Result<Generated, String> {
    let bytes = match alg {
        Algorithm::Hs256 => 32,
        Algorithm::Hs384 => 48,
        _ => 64,
    };
    let mut raw = vec![0u8; bytes];
    random.fill(&mut raw).map_err(|e| e.to_string())?;
    let secret = jws::encode(&raw);
    let key = PublicKey::Secret(secret.as_bytes().to_vec());
    let kid = key.thumbprint();
    Ok(Generated {
        jwk: jwk(&key, alg, &kid),
        kid,
        private: secret,
        public_pem: None,
    })
}

fn jwk(key: &PublicKey, alg: Algorithm, kid: &str) -> Value {
    let mut members = key.jwk_members();
    let alg = match alg {
        // RFC 8037: OKP signature keys are `EdDSA`.
        Algorithm::Ed25519 | Algorithm::Ed448 => "EdDSA",
        other => other.name(),
    };
    members.insert("alg".into(), alg.into());
    members.insert("kid".into(), kid.into());
    members.insert("use".into(), "sig".into());
    Value::Object(members)
}

fn pem_text(tag: &str, der: &[u8]) -> String {
    let config = ::pem::EncodeConfig::new().set_line_ending(::pem::LineEnding::LF);
    ::pem::encode_config(&::pem::Pem::new(tag, der.to_vec()), config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::keys::KeySet;

    #[test]
    fn every_algorithm_generates_a_key_its_own_jwk_set_accepts() {
        for &alg in Algorithm::ALL {
            let generated = generate(alg, 2048).unwrap_or_else(|e| panic!("{alg}: {e}"));
            let set = format!(r#"{{"keys":[{}]}}"#, generated.jwk);
            let keys = KeySet::from_jwks(set.as_bytes(), Algorithm::ALL)
                .unwrap_or_else(|e| panic!("{alg}: {e}"));
            assert_eq!(keys.keys().len(), 1, "{alg}: {:?}", keys.skipped);
            assert_eq!(keys.keys()[0].key.algorithm(), alg);
            assert!(keys.has_kid(&generated.kid));
            if let Some(public) = &generated.public_pem {
                assert!(crate::jose::pem::public_key_from_pem(public.as_bytes()).is_ok());
                assert!(generated.private.starts_with("-----BEGIN PRIVATE KEY-----"));
            }
        }
    }
}
