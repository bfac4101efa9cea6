//! The token verifier: from a bearer token to a [`Verified`] caller, or a reason why not.
//!
//! Steps: the length cap; the verified-token cache; strict compact-JWS parsing; the issuer named
//! by the (not yet trusted) `iss` claim; that issuer's key by `kid` and pinned algorithm (for a
//! remote key set, one single-flight refresh on an unknown `kid`); the signature; the claims.
//! Only then is anything in the payload believed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use aws_lc_rs::digest;

use super::claims::{ClaimError, Claims};
use super::issuer::{Issuer, Keys};
use super::jws::{self, CompactJws, JwsError};
use super::keys::NoKey;

/// A token that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The issuer's configured name.
    pub issuer: String,
    /// For a token of Portico's own identity provider, its realm.
    pub realm: Option<String>,
    /// `sub`.
    pub subject: Option<String>,
    /// `jti`.
    pub token_id: Option<String>,
    /// `exp`.
    pub expires: Option<i64>,
    /// `exp` plus the issuer's leeway: the last second the token is accepted.
    pub valid_until: Option<i64>,
    /// The permissions the token grants, sorted.
    pub permissions: Vec<String>,
}

impl Verified {
    /// Whether the token grants `permission`.
    pub fn has(&self, permission: &str) -> bool {
        self.permissions
            .binary_search_by(|p| p.as_str().cmp(permission))
            .is_ok()
    }
}

/// Why a token was refused. The messages are safe to show to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not an acceptable compact JWS.
    #[error(transparent)]
    Jws(#[from] JwsError),
    /// The claims do not pass.
    #[error(transparent)]
    Claims(#[from] ClaimError),
    /// No configured issuer has this `iss`.
    #[error("the token's issuer is not trusted here")]
    UntrustedIssuer,
    /// The identity provider revoked the token (RFC 7009).
    #[error("the token has been revoked")]
    Revoked,
    /// The header's `typ` is not one the issuer uses for access tokens.
    #[error("the token's type (`typ`) is not an access token's")]
    WrongType,
    /// An OpenID Connect ID token, which its issuer does not let pass as a bearer token.
    #[error(
        "the token is an ID token (it carries `nonce`, `at_hash` or `typ: ID`), not an access token"
    )]
    IdToken,
    /// No key verified it.
    #[error(transparent)]
    Key(#[from] NoKey),
}

/// Verifies bearer tokens against the configured issuers.
#[derive(Debug)]
pub struct Verifier {
    /// The `[[issuer]]`s of the configuration, fixed for the server's life.
    issuers: Vec<Arc<Issuer>>,
    /// The built-in identity provider's realms, replaced whenever they change.
    local: ArcSwap<Vec<Arc<Issuer>>>,
    /// The `jti`s of the realms' access tokens revoked before they expire.
    revoked: ArcSwap<HashSet<String>>,
    max_token_bytes: usize,
    cache: TokenCache,
}

impl Verifier {
    /// A verifier for `issuers`, refusing tokens over `max_token_bytes` and caching up to
    /// `cache_entries` verified tokens.
    pub fn new(issuers: Vec<Arc<Issuer>>, max_token_bytes: usize, cache_entries: usize) -> Self {
        Self {
            issuers,
            local: ArcSwap::default(),
            revoked: ArcSwap::default(),
            max_token_bytes,
            cache: TokenCache::new(cache_entries),
        }
    }

    /// The configured issuers.
    pub fn issuers(&self) -> &[Arc<Issuer>] {
        &self.issuers
    }

    /// Replaces the identity provider's realms. Cached tokens of the realms replaced verify
    /// again on their next use.
    pub fn set_local(&self, issuers: Vec<Arc<Issuer>>) {
        self.local.store(Arc::new(issuers));
    }

    /// Replaces the set of revoked realm access tokens (by `jti`).
    pub fn set_revoked(&self, revoked: HashSet<String>) {
        self.revoked.store(Arc::new(revoked));
    }

    /// The issuer whose tokens carry `iss`.
    fn find(&self, iss: Option<&str>) -> Option<Arc<Issuer>> {
        let iss = iss?;
        let named = |issuer: &&Arc<Issuer>| issuer.rules.issuer == iss;
        match self.issuers.iter().find(named) {
            Some(issuer) => Some(issuer.clone()),
            None => self.local.load().iter().find(named).cloned(),
        }
    }

    /// Whether `issuer` is still trusted with the key set generation a token was verified at.
    fn still_current(&self, issuer: &Arc<Issuer>, generation: u64) -> bool {
        let present = |list: &[Arc<Issuer>]| list.iter().any(|i| Arc::ptr_eq(i, issuer));
        issuer.keys.generation() == generation
            && (present(&self.issuers) || present(&self.local.load()))
    }

    /// Verifies `token` at `now` (seconds since the epoch).
    pub async fn verify(&self, token: &str, now: i64) -> Result<Arc<Verified>, TokenError> {
        let verified = self.verify_signed(token, now).await?;
        if verified.realm.is_some()
            && let Some(jti) = &verified.token_id
            && self.revoked.load().contains(jti)
        {
            return Err(TokenError::Revoked);
        }
        Ok(verified)
    }

    /// Whether a token verified earlier is still good at `now`: not expired (with leeway), not
    /// revoked, and its issuer still trusted. Long-lived streams ask this again and again.
    pub fn still_valid(&self, verified: &Verified, now: i64) -> Result<(), TokenError> {
        if verified.valid_until.is_some_and(|until| now > until) {
            return Err(TokenError::Claims(crate::jose::claims::ClaimError::Expired));
        }
        if verified.realm.is_some()
            && let Some(jti) = &verified.token_id
            && self.revoked.load().contains(jti)
        {
            return Err(TokenError::Revoked);
        }
        let trusted = |list: &[Arc<Issuer>]| list.iter().any(|i| i.name == verified.issuer);
        if !trusted(&self.issuers) && !trusted(&self.local.load()) {
            return Err(TokenError::UntrustedIssuer);
        }
        Ok(())
    }

    /// Verifies `token`'s signature and claims (through the cache).
    async fn verify_signed(&self, token: &str, now: i64) -> Result<Arc<Verified>, TokenError> {
        if token.len() > self.max_token_bytes {
            return Err(JwsError::TooLong {
                len: token.len(),
                max: self.max_token_bytes,
            }
            .into());
        }
        let fingerprint = self.cache.enabled().then(|| TokenCache::fingerprint(token));
        if let Some(key) = &fingerprint
            && let Some(verified) = self.cache.get(key, now, |issuer, generation| {
                self.still_current(issuer, generation)
            })
        {
            return Ok(verified);
        }
        let jws = CompactJws::parse(token, self.max_token_bytes)?;
        let claims = Claims::parse(jws.payload())?;
        let issuer = self
            .find(claims.iss.as_deref())
            .ok_or(TokenError::UntrustedIssuer)?;
        if !issuer.token_types.is_empty()
            && !jws.header.typ.as_deref().is_some_and(|typ| {
                issuer
                    .token_types
                    .iter()
                    .any(|accepted| same_media_type(typ, accepted))
            })
        {
            return Err(TokenError::WrongType);
        }
        let generation = check_signature(&issuer, &jws).await?;
        if !issuer.accept_id_tokens && claims.is_id_token() {
            return Err(TokenError::IdToken);
        }
        claims.check(&issuer.rules, now)?;
        let verified = Arc::new(Verified {
            issuer: issuer.name.clone(),
            realm: issuer.realm.clone(),
            subject: claims.sub.as_deref().map(str::to_owned),
            token_id: claims.jti.as_deref().map(str::to_owned),
            expires: claims.exp,
            valid_until: claims
                .exp
                .map(|exp| exp.saturating_add(issuer.rules.leeway_seconds)),
            permissions: claims.permissions(&issuer.permission_claims),
        });
        if let (Some(key), Some(exp)) = (fingerprint, claims.exp)
            && claims.nbf.is_none_or(|nbf| nbf <= now)
        {
            let until = exp.saturating_add(issuer.rules.leeway_seconds);
            self.cache
                .put(key, now, until, (issuer, generation), verified.clone());
        }
        Ok(verified)
    }
}

/// Whether two `typ` values name the same media type: case-insensitive, and `application/` may
/// be left out (RFC 7515 section 4.1.9).
fn same_media_type(a: &str, b: &str) -> bool {
    let short = |t: &str| {
        let t = t.trim();
        match t.get(..12) {
            Some(prefix) if prefix.eq_ignore_ascii_case("application/") => t[12..].to_owned(),
            _ => t.to_owned(),
        }
    };
    short(a).eq_ignore_ascii_case(&short(b))
}

/// Checks the signature with the issuer's keys; returns the key set generation used.
async fn check_signature(issuer: &Issuer, jws: &CompactJws<'_>) -> Result<u64, TokenError> {
    let (set, generation) = issuer.keys.current();
    match set.verify(jws) {
        Ok(_) => Ok(generation),
        Err(NoKey::UnknownKid(kid)) => {
            let Keys::Remote(remote) = &issuer.keys else {
                return Err(NoKey::UnknownKid(kid).into());
            };
            if !remote.refresh_for_unknown_kid(generation).await {
                return Err(NoKey::UnknownKid(kid).into());
            }
            let (set, generation) = issuer.keys.current();
            set.verify(jws).map(|_| generation).map_err(Into::into)
        }
        Err(other) => Err(other.into()),
    }
}

/// Verified tokens by the SHA-256 of their text, until their `exp` (plus leeway). Bounded: a
/// full shard drops its expired entries and, if still full, an eighth of its entries. An entry
/// is also dropped when its issuer's key set has changed since it was verified.
#[derive(Debug)]
struct TokenCache {
    shards: Vec<Mutex<HashMap<[u8; 32], Entry>>>,
    per_shard: usize,
}

#[derive(Debug)]
struct Entry {
    until: i64,
    issuer: Arc<Issuer>,
    generation: u64,
    verified: Arc<Verified>,
}

const SHARDS: usize = 16;

impl TokenCache {
    fn new(entries: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: entries.div_ceil(SHARDS),
        }
    }

    fn enabled(&self) -> bool {
        self.per_shard > 0
    }

    fn fingerprint(token: &str) -> [u8; 32] {
        let mut out = [0; 32];
        out.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
        out
    }

    fn shard(&self, key: &[u8; 32]) -> &Mutex<HashMap<[u8; 32], Entry>> {
        &self.shards[usize::from(key[0]) % SHARDS]
    }

    fn get(
        &self,
        key: &[u8; 32],
        now: i64,
        still_current: impl Fn(&Arc<Issuer>, u64) -> bool,
    ) -> Option<Arc<Verified>> {
        if self.per_shard == 0 {
            return None;
        }
        let mut shard = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        let entry = shard.get(key)?;
        if now < entry.until && still_current(&entry.issuer, entry.generation) {
            return Some(entry.verified.clone());
        }
        shard.remove(key);
        None
    }

    fn put(
        &self,
        key: [u8; 32],
        now: i64,
        until: i64,
        source: (Arc<Issuer>, u64),
        verified: Arc<Verified>,
    ) {
        let (issuer, generation) = source;
        if self.per_shard == 0 {
            return;
        }
        let mut shard = self.shard(&key).lock().unwrap_or_else(|p| p.into_inner());
        if shard.len() >= self.per_shard {
            // Expired entries first; if the shard is still full, an eighth of it, arbitrarily.
            shard.retain(|_, entry| entry.until > now);
            if shard.len() >= self.per_shard {
                let drop: Vec<[u8; 32]> =
                    shard.keys().take(self.per_shard / 8 + 1).copied().collect();
                for old in drop {
                    shard.remove(&old);
                }
            }
        }
        shard.insert(
            key,
            Entry {
                until,
                issuer,
                generation,
                verified,
            },
        );
    }
}

/// The token's header and claims, decoded without verification, for `portico token inspect`.
pub fn decode_unverified(token: &str) -> Result<(serde_json::Value, serde_json::Value), String> {
    let mut parts = token.split('.');
    let mut part = |what: jws::Part| -> Result<serde_json::Value, String> {
        let text = parts.next().ok_or("the token has fewer than three parts")?;
        let bytes = jws::decode(text, what).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| format!("the {what} is not JSON: {e}"))
    };
    Ok((part(jws::Part::Header)?, part(jws::Part::Payload)?))
}

#[cfg(test)]
mod tests {
    use super::same_media_type;

    #[test]
    fn typ_compares_as_a_media_type() {
        assert!(same_media_type("at+jwt", "at+jwt"));
        assert!(same_media_type("AT+JWT", "at+jwt"));
        assert!(same_media_type("application/at+jwt", "at+jwt"));
        assert!(!same_media_type("JWT", "at+jwt"));
        assert!(!same_media_type("application/jwt", "at+jwt"));
    }
}
