//! Conformance of the signature primitives with Wycheproof (read in place from
//! `../shared/vectors`, or `PORTICO_VECTORS`). Every `valid`/`invalid` verdict must match; each
//! case Portico decides differently by policy is counted and explained where it is decided.

use portico::jose::primitive::{Algorithm, VerifyingKey};
use serde_json::Value as Json;

use crate::helpers::vectors::wycheproof;

fn hex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

fn field<'a>(value: &'a Json, name: &str) -> &'a str {
    value[name]
        .as_str()
        .unwrap_or_else(|| panic!("missing {name}"))
}

/// Runs every test of every group; `key_of` builds the group's key. Returns the cases run.
/// A `valid` case must verify, an `invalid` one must not (or its key must be refused), and an
/// `acceptable` one must get the answer `acceptable` gives for it.
fn check(
    file: &str,
    key_of: impl Fn(&Json) -> Option<VerifyingKey>,
    acceptable: impl Fn(&Json) -> bool,
) -> usize {
    let data = wycheproof(file);
    let mut mismatches = Vec::new();
    let mut cases = 0;
    for group in data["testGroups"].as_array().expect("groups") {
        let key = key_of(group);
        for test in group["tests"].as_array().expect("tests") {
            cases += 1;
            let verified = key
                .as_ref()
                .is_some_and(|key| key.verify(&hex(field(test, "msg")), &hex(field(test, "sig"))));
            let expected = match field(test, "result") {
                "valid" => true,
                "invalid" => false,
                _ => acceptable(test),
            };
            if verified != expected {
                mismatches.push(format!(
                    "tc{} {:?}: {}",
                    test["tcId"],
                    test["flags"],
                    field(test, "comment")
                ));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{file}: {} disagreements:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    cases
}

fn ec_key(alg: Algorithm) -> impl Fn(&Json) -> Option<VerifyingKey> {
    move |group| VerifyingKey::ec(alg, &hex(field(&group["publicKey"], "uncompressed"))).ok()
}

fn rsa_key(alg: Algorithm) -> impl Fn(&Json) -> Option<VerifyingKey> {
    move |group| {
        let key = &group["publicKey"];
        VerifyingKey::rsa(
            alg,
            &hex(field(key, "modulus")),
            &hex(field(key, "publicExponent")),
        )
        .ok()
    }
}

fn no_acceptable_cases(test: &Json) -> bool {
    panic!("unexpected acceptable case tc{}", test["tcId"])
}

#[test]
fn ecdsa_p1363_vectors_agree_including_high_s_on_secp256k1() {
    let cases = check("ecdsa_secp256r1_sha256_p1363_test.json", ec_key(Algorithm::Es256), no_acceptable_cases)
        + check("ecdsa_secp384r1_sha384_p1363_test.json", ec_key(Algorithm::Es384), no_acceptable_cases)
        + check("ecdsa_secp521r1_sha512_p1363_test.json", ec_key(Algorithm::Es512), no_acceptable_cases)
        // Wycheproof counts high-S secp256k1 signatures valid; so does Portico (module docs).
        + check("ecdsa_secp256k1_sha256_p1363_test.json", ec_key(Algorithm::Es256k), no_acceptable_cases);
    assert_eq!(cases, 262 + 280 + 318 + 252);
}

#[test]
fn ed25519_vectors_agree() {
    let key = |group: &Json| VerifyingKey::ed25519(&hex(field(&group["publicKey"], "pk"))).ok();
    assert_eq!(check("ed25519_test.json", key, no_acceptable_cases), 151);
}

#[test]
fn ed448_vectors_agree_including_non_canonical_encodings() {
    let key = |group: &Json| VerifyingKey::ed448(&hex(field(&group["publicKey"], "pk"))).ok();
    assert_eq!(check("ed448_test.json", key, no_acceptable_cases), 87);
}

#[test]
fn rsa_pkcs1_vectors_agree() {
    // The one `acceptable` case per file is a DigestInfo without the NULL parameter. RFC 8017
    // allows verifiers to accept it; aws-lc-rs refuses it, and so does Portico: JWS signers
    // (RFC 7518 section 3.3) always encode the NULL.
    let missing_null_refused = |test: &Json| {
        assert!(
            test["flags"].to_string().contains("MissingNull"),
            "tc{}",
            test["tcId"]
        );
        false
    };
    let mut cases = 0;
    for bits in [2048, 3072, 4096] {
        for (sha, alg) in [
            (256, Algorithm::Rs256),
            (384, Algorithm::Rs384),
            (512, Algorithm::Rs512),
        ] {
            cases += check(
                &format!("rsa_signature_{bits}_sha{sha}_test.json"),
                rsa_key(alg),
                missing_null_refused,
            );
        }
    }
    assert!(cases > 2000, "{cases}");
}

#[test]
fn rsa_pss_vectors_agree() {
    let cases = check(
        "rsa_pss_2048_sha256_mgf1_32_test.json",
        rsa_key(Algorithm::Ps256),
        no_acceptable_cases,
    ) + check(
        "rsa_pss_2048_sha384_mgf1_48_test.json",
        rsa_key(Algorithm::Ps384),
        no_acceptable_cases,
    ) + check(
        "rsa_pss_4096_sha512_mgf1_64_test.json",
        rsa_key(Algorithm::Ps512),
        no_acceptable_cases,
    );
    assert_eq!(cases, 108 + 141 + 179);
}

#[test]
fn hmac_vectors_agree_where_jws_applies() {
    for (file, alg, hash_bits) in [
        ("hmac_sha256_test.json", Algorithm::Hs256, 256),
        ("hmac_sha384_test.json", Algorithm::Hs384, 384),
        ("hmac_sha512_test.json", Algorithm::Hs512, 512),
    ] {
        let data = wycheproof(file);
        let (mut agreed, mut refused_short_key, mut refused_truncated) = (0, 0, 0);
        for group in data["testGroups"].as_array().expect("groups") {
            let tag_bits = group["tagSize"].as_u64().expect("tagSize");
            for test in group["tests"].as_array().expect("tests") {
                let key = VerifyingKey::hmac(alg, &hex(field(test, "key")));
                let verified = key.as_ref().is_ok_and(|key| {
                    key.verify(&hex(field(test, "msg")), &hex(field(test, "tag")))
                });
                let valid = field(test, "result") == "valid";
                if group["keySize"].as_u64() < Some(hash_bits) {
                    // Policy (RFC 7518 section 3.2): a secret shorter than the hash is refused.
                    assert!(key.is_err(), "{file} tc{}", test["tcId"]);
                    refused_short_key += 1;
                } else if tag_bits < hash_bits {
                    // Policy: JWS tags are whole; a truncated tag never verifies.
                    assert!(!verified, "{file} tc{}", test["tcId"]);
                    refused_truncated += 1;
                } else {
                    assert_eq!(
                        verified,
                        valid,
                        "{file} tc{}: {}",
                        test["tcId"],
                        field(test, "comment")
                    );
                    agreed += 1;
                }
            }
        }
        assert!(
            agreed >= 80 && refused_short_key >= 3 && refused_truncated >= 80,
            "{file}: {agreed} {refused_short_key} {refused_truncated}"
        );
    }
}
