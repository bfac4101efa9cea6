//! Token verification per algorithm, against the bare primitive in the same run.
//!
//! For each algorithm three measurements of one token (claims as a typical IdP issues them):
//! - `primitive`: aws-lc-rs (or `ed448-goldilocks`) verifying the signature over the signing
//!   input, nothing else: the ceiling;
//! - `uncached`: Portico's whole path (length cap, strict parsing, header and claims JSON,
//!   issuer and key choice, signature, claim checks, permissions) with the cache off;
//! - `cached`: the same token again with the verified-token cache on.
//!
//! For RS256 it also breaks the uncached overhead down: `block_on` (entering the async runtime
//! the benchmark drives `verify` with), `base64` (decoding the three parts, alone), `parse`
//! (compact JWS: base64url and the header), `claims` (the payload's claims) and `permissions`
//! (the four default claim paths). The base64 floor is why HS* cannot reach the target: an HMAC
//! over a few hundred bytes costs about as much as decoding them.
//!
//! `cargo bench --bench tokens` prints each; the issue's target is uncached ≥ 90% of the
//! primitive's rate. `cargo bench --bench tokens -- --quick` gives rough figures fast.

use std::hint::black_box;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, ParsedPublicKey, RsaKeyPair};
use criterion::{Criterion, criterion_group, criterion_main};
use portico::clock::SystemClock;
use portico::config::{Config, IssuerConfig};
use portico::jose::issuer::Issuer;
use portico::jose::jws;
use portico::jose::keygen;
use portico::jose::primitive::Algorithm;
use portico::jose::verifier::Verifier;

const ISSUER: &str = "https://idp.example/realms/plant";

/// The bare primitive: does this signature verify this message?
type Primitive = Box<dyn Fn(&[u8], &[u8]) -> bool>;

/// A signed token and a bare-primitive verifier of it.
struct Case {
    alg: Algorithm,
    token: String,
    jwks: String,
    primitive: Primitive,
}

fn case(alg: Algorithm) -> Case {
    let generated = keygen::generate(alg, 2048).expect("key");
    let now = portico::clock::Clock::now(&SystemClock).unix_timestamp();
    let header = format!(
        r#"{{"alg":"{}","typ":"at+jwt","kid":"{}"}}"#,
        alg.name(),
        generated.kid
    );
    let claims = format!(
        r#"{{"iss":"{ISSUER}","sub":"8d7c5b0e-2f0a-4c59-9a53-6c1c9f0e1d2a","aud":["portico","account"],"exp":{},"iat":{now},"jti":"b8b2e6b4-0f6e-4d0a-9d3a-2c1e0f9a8b7c","azp":"plant-gateway","scope":"profile email plant:read","realm_access":{{"roles":["operator","offline_access"]}}}}"#,
        now + 3600
    );
    let input = format!(
        "{}.{}",
        jws::encode(header.as_bytes()),
        jws::encode(claims.as_bytes())
    );
    let der = |pem: &str| ::pem::parse(pem).expect("PEM").into_contents();
    let rng = SystemRandom::new();
    use Algorithm::*;
    let (signature, primitive): (Vec<u8>, Primitive) = match alg {
        Hs256 | Hs384 | Hs512 => {
            let algorithm = match alg {
                Hs256 => aws_lc_rs::hmac::HMAC_SHA256,
                Hs384 => aws_lc_rs::hmac::HMAC_SHA384,
                _ => aws_lc_rs::hmac::HMAC_SHA512,
            };
            let key = aws_lc_rs::hmac::Key::new(algorithm, generated.private.as_bytes());
            let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes())
                .as_ref()
                .to_vec();
            (
                tag,
                Box::new(move |m, s| aws_lc_rs::hmac::verify(&key, m, s).is_ok()),
            )
        }
        Es256 | Es256k | Es384 | Es512 => {
            let (signing, verifying) = match alg {
                Es256 => (
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &signature::ECDSA_P256_SHA256_FIXED,
                ),
                Es256k => (
                    &signature::ECDSA_P256K1_SHA256_FIXED_SIGNING,
                    &signature::ECDSA_P256K1_SHA256_FIXED,
                ),
                Es384 => (
                    &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                    &signature::ECDSA_P384_SHA384_FIXED,
                ),
                _ => (
                    &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
                    &signature::ECDSA_P521_SHA512_FIXED,
                ),
            };
            let pair = EcdsaKeyPair::from_pkcs8(signing, &der(&generated.private)).expect("EC");
            let sig = pair
                .sign(&rng, input.as_bytes())
                .expect("sign")
                .as_ref()
                .to_vec();
            let public =
                ParsedPublicKey::new(verifying, signature::KeyPair::public_key(&pair).as_ref())
                    .expect("public");
            (sig, Box::new(move |m, s| public.verify_sig(m, s).is_ok()))
        }
        Rs256 | Rs384 | Rs512 | Ps256 | Ps384 | Ps512 => {
            let (padding, verifying): (
                &'static dyn signature::RsaEncoding,
                &'static signature::RsaParameters,
            ) = match alg {
                Rs256 => (
                    &signature::RSA_PKCS1_SHA256,
                    &signature::RSA_PKCS1_2048_8192_SHA256,
                ),
                Rs384 => (
                    &signature::RSA_PKCS1_SHA384,
                    &signature::RSA_PKCS1_2048_8192_SHA384,
                ),
                Rs512 => (
                    &signature::RSA_PKCS1_SHA512,
                    &signature::RSA_PKCS1_2048_8192_SHA512,
                ),
                Ps256 => (
                    &signature::RSA_PSS_SHA256,
                    &signature::RSA_PSS_2048_8192_SHA256,
                ),
                Ps384 => (
                    &signature::RSA_PSS_SHA384,
                    &signature::RSA_PSS_2048_8192_SHA384,
                ),
                _ => (
                    &signature::RSA_PSS_SHA512,
                    &signature::RSA_PSS_2048_8192_SHA512,
                ),
            };
            let pair = RsaKeyPair::from_pkcs8(&der(&generated.private)).expect("RSA");
            let mut sig = vec![0; pair.public_modulus_len()];
            pair.sign(padding, &rng, input.as_bytes(), &mut sig)
                .expect("sign");
            let public =
                ParsedPublicKey::new(verifying, signature::KeyPair::public_key(&pair).as_ref())
                    .expect("public");
            (sig, Box::new(move |m, s| public.verify_sig(m, s).is_ok()))
        }
        Ed25519 => {
            let pair = Ed25519KeyPair::from_pkcs8(&der(&generated.private)).expect("Ed25519");
            let sig = pair.sign(input.as_bytes()).as_ref().to_vec();
            let public = ParsedPublicKey::new(
                &signature::ED25519,
                signature::KeyPair::public_key(&pair).as_ref(),
            )
            .expect("public");
            (sig, Box::new(move |m, s| public.verify_sig(m, s).is_ok()))
        }
        Ed448 => {
            let seed = der(&generated.private);
            let pair =
                ed448_goldilocks::SigningKey::try_from(&seed[seed.len() - 57..]).expect("Ed448");
            let sig = pair.sign_raw(input.as_bytes()).to_bytes().to_vec();
            let public = pair.verifying_key();
            (
                sig,
                Box::new(move |m, s| {
                    ed448_goldilocks::Signature::from_slice(s)
                        .is_ok_and(|s| public.verify_raw(&s, m).is_ok())
                }),
            )
        }
    };
    let token = format!("{input}.{}", jws::encode(&signature));
    Case {
        alg,
        token,
        jwks: format!(r#"{{"keys":[{}]}}"#, generated.jwk),
        primitive,
    }
}

fn verifier(jwks: &str, cache_entries: usize) -> (Verifier, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks).expect("jwks");
    let config = Config::from_toml_str(&format!(
        "[[issuer]]\nissuer = \"{ISSUER}\"\naudience = [\"portico\"]\njwks_file = \"{}\"\n",
        path.display()
    ))
    .expect("config");
    let raw: &IssuerConfig = &config.issuers[0];
    let issuer = Issuer::from_config(raw, "issuer[0]", Arc::new(SystemClock)).expect("issuer");
    (
        Verifier::new(vec![Arc::new(issuer)], 8192, cache_entries),
        dir,
    )
}

fn tokens(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let now = portico::clock::Clock::now(&SystemClock).unix_timestamp();
    for &alg in Algorithm::ALL {
        let case = case(alg);
        let (input, signature) = case.token.rsplit_once('.').expect("token");
        let signature = jws::decode(signature, jws::Part::Signature).expect("signature");
        assert!((case.primitive)(input.as_bytes(), &signature));
        let (uncached, _dir) = verifier(&case.jwks, 0);
        let (cached, _dir2) = verifier(&case.jwks, 1024);
        runtime
            .block_on(uncached.verify(&case.token, now))
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        let mut group = c.benchmark_group(case.alg.name());
        group.bench_function("primitive", |b| {
            b.iter(|| (case.primitive)(black_box(input.as_bytes()), black_box(&signature)))
        });
        group.bench_function("uncached", |b| {
            b.iter(|| {
                runtime
                    .block_on(uncached.verify(black_box(&case.token), now))
                    .is_ok()
            })
        });
        group.bench_function("cached", |b| {
            b.iter(|| {
                runtime
                    .block_on(cached.verify(black_box(&case.token), now))
                    .is_ok()
            })
        });
        if alg == Algorithm::Rs256 {
            group.bench_function("block_on", |b| {
                b.iter(|| runtime.block_on(async { black_box(1) }))
            });
            group.bench_function("base64", |b| {
                b.iter(|| {
                    black_box(&case.token)
                        .split('.')
                        .map(|p| {
                            jws::decode(p, jws::Part::Payload)
                                .map(|v| v.len())
                                .unwrap_or(0)
                        })
                        .sum::<usize>()
                })
            });
            use portico::jose::claims::Claims;
            use portico::jose::jws::CompactJws;
            group.bench_function("parse", |b| {
                b.iter(|| CompactJws::parse(black_box(&case.token), 8192).is_ok())
            });
            let parsed = CompactJws::parse(&case.token, 8192).expect("parse");
            group.bench_function("claims", |b| {
                b.iter(|| Claims::parse(black_box(parsed.payload())).is_ok())
            });
            let claims = Claims::parse(parsed.payload()).expect("claims");
            let paths: Vec<String> = ["scope", "scp", "roles", "realm_access.roles"]
                .map(String::from)
                .into();
            group.bench_function("permissions", |b| {
                b.iter(|| claims.permissions(black_box(&paths)).len())
            });
        }
        group.finish();
    }
}

criterion_group!(benches, tokens);
criterion_main!(benches);
