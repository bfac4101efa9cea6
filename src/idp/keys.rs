//! Realm signing keys: made, sealed, rotated.

use super::*;

impl Idp {
    /// Rotates a realm's keys: each `next` key starts signing, each active key retires (still
    /// published until the tokens it signed have expired), and new `next` keys are published.
    pub async fn rotate_keys(&self, realm: &RealmName) -> Result<(), IdpError> {
        let current = self
            .realm(realm)
            .ok_or_else(|| IdpError::NotFound(format!("realm `{realm}`")))?;
        let now = self.clock.now();
        let settings = &current.settings;
        let mut next = Vec::new();
        for (purpose, alg) in [
            ("access", &settings.access_token_alg),
            ("id", &settings.id_token_alg),
        ] {
            next.push(self.new_key(realm, purpose, alg, "next", now)?);
        }
        // Retired keys stay published until every token they signed has expired: the realm's
        // lifetimes, clients' overrides and app tokens.
        let mut longest = settings
            .access_token_seconds
            .max(settings.id_token_seconds)
            .max(self.app_token_seconds);
        for client in self.store.clients(realm.as_str()).await? {
            if let Ok(client) = serde_json::from_str::<ClientSettings>(&client.settings) {
                longest = longest.max(client.access_token_seconds.unwrap_or(0));
            }
        }
        let longest = longest.saturating_add(120).min(i64::MAX as u64);
        let retire_at = now + time::Duration::seconds(longest as i64);
        self.store
            .rotate_realm_keys(realm.as_str(), &next, retire_at, now)
            .await?;
        self.reload().await
    }

    pub(super) fn new_key(
        &self,
        realm: &RealmName,
        purpose: &str,
        alg: &str,
        state: &str,
        now: OffsetDateTime,
    ) -> Result<RealmKeyRow, IdpError> {
        let algorithm = realm_algorithm(alg).map_err(IdpError::Invalid)?;
        let generated = keygen::generate(algorithm, 2048).map_err(IdpError::Keys)?;
        let der = ::pem::parse(&generated.private)
            .map_err(|e| IdpError::Keys(e.to_string()))?
            .into_contents();
        let mut jwk = generated.jwk;
        if let Value::Object(members) = &mut jwk {
            // `EdDSA` is what most verifiers expect (PyJWT, jose); RFC 9864's `Ed25519` is newer.
            members.insert("alg".into(), alg_name(algorithm).into());
            members.insert("use".into(), "sig".into());
        }
        Ok(RealmKeyRow {
            realm: realm.to_string(),
            kid: generated.kid.clone(),
            purpose: purpose.to_owned(),
            alg: alg_name(algorithm).to_owned(),
            state: state.to_owned(),
            public_jwk: jwk.to_string(),
            sealed_private: self
                .sealer
                .seal(&key_identity(realm.as_str(), &generated.kid), &der),
            created: now,
            retire_at: None,
        })
    }
}

/// The associated data sealing a realm key: its realm and kid.
pub(super) fn key_identity(realm: &str, kid: &str) -> String {
    format!("realm-key:{realm}:{kid}")
}

/// A realm signing algorithm by name (`EdDSA` is Ed25519).
pub(super) fn realm_algorithm(name: &str) -> Result<Algorithm, String> {
    let alg = match name {
        "EdDSA" => Some(Algorithm::Ed25519),
        other => Algorithm::parse(other),
    };
    alg.filter(|a| REALM_ALGORITHMS.contains(a)).ok_or_else(|| {
        format!("`{name}` is not a realm signing algorithm (ES256, ES384, RS256, PS256, EdDSA)")
    })
}

pub(super) fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::Ed25519 => "EdDSA",
        other => other.name(),
    }
}
