//! Signing tokens (compact JWS) with a private key held by Portico: the identity provider's
//! realm keys. aws-lc-rs does the signing; ECDSA signatures are the fixed-size `r ‖ s` of JWS.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use serde_json::{Map, Value};

use super::jws;
use super::primitive::Algorithm;

/// The algorithms a realm may sign with.
pub const REALM_ALGORITHMS: &[Algorithm] = &[
    Algorithm::Es256,
    Algorithm::Es384,
    Algorithm::Rs256,
    Algorithm::Ps256,
    Algorithm::Ed25519,
];

/// A private key pinned to one algorithm, with its `kid`.
pub struct SigningKey {
    alg: Algorithm,
    kid: String,
    inner: Inner,
}

enum Inner {
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair, &'static dyn signature::RsaEncoding),
    Ed25519(Ed25519KeyPair),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Loads a PKCS#8 private key for `alg`.
    pub fn from_pkcs8(alg: Algorithm, kid: &str, der: &[u8]) -> Result<Self, String> {
        use Algorithm::*;
        let bad = |e: aws_lc_rs::error::KeyRejected| format!("the {alg} private key: {e}");
        let inner = match alg {
            Es256 => Inner::Ecdsa(
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(bad)?,
            ),
            Es384 => Inner::Ecdsa(
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, der)
                    .map_err(bad)?,
            ),
            Rs256 => Inner::Rsa(
                RsaKeyPair::from_pkcs8(der).map_err(bad)?,
                &signature::RSA_PKCS1_SHA256,
            ),
            Ps256 => Inner::Rsa(
                RsaKeyPair::from_pkcs8(der).map_err(bad)?,
                &signature::RSA_PSS_SHA256,
            ),
            Ed25519 => Inner::Ed25519(Ed25519KeyPair::from_pkcs8(der).map_err(bad)?),
            other => return Err(format!("Portico does not sign with {other}")),
        };
        Ok(Self {
            alg,
            kid: kid.to_owned(),
            inner,
        })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The `alg` header value: `EdDSA` for Ed25519, as most verifiers expect (RFC 8037).
    pub fn header_alg(&self) -> &'static str {
        match self.alg {
            Algorithm::Ed25519 => "EdDSA",
            other => other.name(),
        }
    }

    /// Signs `claims` as a compact JWS with header `alg`, `kid` and `typ`.
    pub fn sign(&self, typ: &str, claims: &Map<String, Value>) -> Result<String, String> {
        let header = serde_json::json!({ "alg": self.header_alg(), "kid": self.kid, "typ": typ });
        let input = format!(
            "{}.{}",
            jws::encode(header.to_string().as_bytes()),
            jws::encode(Value::Object(claims.clone()).to_string().as_bytes())
        );
        let signature = self.sign_bytes(input.as_bytes())?;
        Ok(format!("{input}.{}", jws::encode(&signature)))
    }

    fn sign_bytes(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        let random = SystemRandom::new();
        match &self.inner {
            Inner::Ecdsa(pair) => pair
                .sign(&random, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| "ECDSA signing failed".to_owned()),
            Inner::Rsa(pair, padding) => {
                let mut out = vec![0; pair.public_modulus_len()];
                pair.sign(*padding, &random, message, &mut out)
                    .map_err(|_| "RSA signing failed".to_owned())?;
                Ok(out)
            }
            Inner::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::jws::CompactJws;
    use crate::jose::keygen;
    use crate::jose::keys::KeySet;

    #[test]
    fn every_realm_algorithm_signs_what_the_verifier_accepts() {
        for &alg in REALM_ALGORITHMS {
            let generated = keygen::generate(alg, 2048).unwrap_or_else(|e| panic!("{e}"));
            let der = ::pem::parse(&generated.private)
                .unwrap_or_else(|e| panic!("{e}"))
                .into_contents();
            let key =
                SigningKey::from_pkcs8(alg, &generated.kid, &der).unwrap_or_else(|e| panic!("{e}"));
            let mut claims = Map::new();
            claims.insert("sub".into(), "x".into());
            let token = key
                .sign("at+jwt", &claims)
                .unwrap_or_else(|e| panic!("{e}"));
            let jws = CompactJws::parse(&token, 8192).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(jws.header.typ.as_deref(), Some("at+jwt"));
            assert_eq!(jws.header.kid.as_deref(), Some(generated.kid.as_str()));
            let set = KeySet::from_jwks(
                format!(r#"{{"keys":[{}]}}"#, generated.jwk).as_bytes(),
                Algorithm::ALL,
            )
            .unwrap_or_else(|e| panic!("{e}"));
            assert!(set.verify(&jws).is_ok(), "{alg}");
        }
    }
}
