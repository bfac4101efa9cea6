//! What the identity provider issues to users through clients: authorization codes, refresh
//! tokens, access tokens and ID tokens, and what ends them (revocation, logout).
//!
//! A **family** is one login: the authorization code it began with and every refresh token
//! rotated from it. Codes and refresh tokens are stored only as SHA-256 hashes, each redeemable
//! once ([`Store::redeem_grant`] marks it used in the same transaction that reads it). Using a
//! code twice, or a refresh token again after the reuse grace window, revokes the family: one of
//! the two users is an attacker, and the family's tokens are no longer trusted.
//!
//! Access tokens carry the family as `sid`, so introspection reports them inactive once their
//! login ends; protected endpoints stop accepting them at `exp` (minutes) or when they are
//! revoked one by one.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::{Idp, IdpError, Realm, UserSettings};
use crate::jose::jws::{self, CompactJws};
use crate::jose::primitive::Algorithm;
use crate::secrets::{self, Hashed};
use crate::store::{FamilyRow, GrantRow, UserRow};

/// What a grant (code or refresh token) stands for, stored as JSON with it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GrantPayload {
    /// The client it was issued to.
    pub client_id: String,
    /// The user's id.
    pub user_id: String,
    /// The scope granted (space-separated).
    pub scope: String,
    /// When the user logged in (seconds since the epoch).
    pub auth_time: i64,
    /// Codes: the authorization request's `redirect_uri`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    /// Codes: the request's `nonce`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Codes: the PKCE S256 challenge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_challenge: Option<String>,
}

/// The client redeeming a grant.
#[derive(Debug, Clone, Copy)]
pub struct GrantClient<'a> {
    /// Its id.
    pub id: &'a str,
    /// Whether it authenticated with a secret.
    pub confidential: bool,
    /// Whether it may have refresh tokens.
    pub refresh: bool,
    /// Its access token lifetime override.
    pub access_token_seconds: Option<u64>,
    /// Its refresh idle time override.
    pub refresh_idle_seconds: Option<u64>,
}

/// The tokens of a successful code or refresh grant.
#[derive(Clone)]
pub struct TokenSet {
    /// The access token.
    pub access_token: String,
    /// Its lifetime in seconds.
    pub expires_in: u64,
    /// The ID token, when the scope has `openid`.
    pub id_token: Option<String>,
    /// The new refresh token and its lifetime, when the client may refresh.
    pub refresh_token: Option<(String, u64)>,
    /// The scope granted.
    pub scope: String,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// A user who logged in.
#[derive(Debug, Clone)]
pub struct LoggedIn {
    /// The user's row.
    pub user: UserRow,
    /// Their settings.
    pub settings: UserSettings,
}

/// What a valid `id_token_hint` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdTokenHint {
    /// `sub`.
    pub subject: String,
    /// The client (`aud`).
    pub client_id: String,
    /// The login (`sid`).
    pub session: Option<String>,
}

const INVALID_CODE: &str = "The authorization code is invalid, expired or already used.";
const INVALID_REFRESH: &str = "The refresh token is invalid, expired or revoked.";

/// The realm and client a code or refresh token must belong to.
fn owner<'a>(realm: &'a Realm, client: GrantClient<'a>) -> crate::store::GrantOwner<'a> {
    crate::store::GrantOwner {
        realm: realm.name.as_str(),
        client_id: client.id,
    }
}

fn refused(why: &str) -> IdpError {
    IdpError::Grant(why.to_owned())
}

impl Idp {
    /// Checks a user's password; `None` for an unknown user, a wrong password or a disabled
    /// user alike. Argon2id runs on a blocking thread, also (with a decoy hash) for unknown
    /// names, so timing does not tell them apart.
    pub async fn login(
        &self,
        realm: &Realm,
        username: &str,
        password: String,
    ) -> Result<Option<LoggedIn>, IdpError> {
        let user = self.store.user_named(&realm.name, username).await?;
        let stored = user
            .as_ref()
            .and_then(|u| u.password_hash.clone())
            .unwrap_or_else(|| secrets::password::decoy().to_owned());
        let matches = self
            .password_checks
            .run(move || secrets::password::verify(&password, &stored))
            .await?;
        let Some(user) = user.filter(|u| matches && u.password_hash.is_some()) else {
            return Ok(None);
        };
        let settings: UserSettings = parse_settings(&user.settings)?;
        if settings.disabled {
            return Ok(None);
        }
        Ok(Some(LoggedIn { user, settings }))
    }

    /// Issues an authorization code for a login; it starts the login's family.
    pub async fn issue_code(
        &self,
        realm: &Realm,
        payload: &GrantPayload,
    ) -> Result<String, IdpError> {
        let now = self.clock.now();
        let code = secrets::generate();
        let family = FamilyRow {
            family: secrets::uuid(),
            realm: realm.name.to_string(),
            client_id: payload.client_id.clone(),
            subject: payload.user_id.clone(),
            created: now,
            expires: now + seconds(realm.settings.refresh_max_seconds),
            revoked: None,
        };
        let grant = GrantRow {
            token_hash: Hashed::of(&code).0.to_vec(),
            kind: "code".into(),
            family: family.family.clone(),
            payload: super::to_json(payload)?,
            created: now,
            expires: now + seconds(realm.settings.code_seconds),
            used: None,
        };
        self.store.create_family(&family, &grant).await?;
        Ok(code)
    }

    /// Redeems an authorization code (RFC 6749 section 4.1.3, RFC 7636 section 4.6). The code
    /// is spent whatever the outcome: a failed PKCE check burns it, and a second use revokes
    /// every token issued from it.
    pub async fn redeem_code(
        &self,
        realm: &Realm,
        client: GrantClient<'_>,
        code: &str,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
    ) -> Result<TokenSet, IdpError> {
        let now = self.clock.now();
        let redeemed = self
            .store
            .redeem_grant(&Hashed::of(code).0, "code", owner(realm, client), now)
            .await?
            .ok_or_else(|| refused(INVALID_CODE))?;
        let family = redeemed.family;
        let payload: GrantPayload = parse_settings(&redeemed.grant.payload)?;
        // A code presented by another client or realm is not redeemed and ends nothing (anyone
        // may know a public client id); a second use by its own client revokes the login.
        if family.realm != realm.name || payload.client_id != client.id {
            return Err(refused(INVALID_CODE));
        }
        if redeemed.grant.used.is_some() {
            self.store.revoke_family(&family.family, now).await?;
            return Err(refused(
                "The authorization code was already used; the tokens issued for it are revoked.",
            ));
        }
        if family.revoked.is_some() || redeemed.grant.expires <= now {
            return Err(refused(INVALID_CODE));
        }
        if payload.redirect_uri.as_deref() != redirect_uri {
            return Err(refused(
                "The redirect_uri differs from the authorization request's.",
            ));
        }
        match (&payload.code_challenge, code_verifier) {
            (Some(challenge), Some(verifier)) => {
                if !pkce_matches(challenge, verifier) {
                    return Err(refused(
                        "The code_verifier does not match the code_challenge.",
                    ));
                }
            }
            (Some(_), None) => {
                return Err(refused("The code_verifier is missing (PKCE)."));
            }
            (None, Some(_)) => {
                return Err(refused(
                    "A code_verifier was sent, but the authorization request had no code_challenge.",
                ));
            }
            (None, None) if !client.confidential => {
                return Err(refused("A public client must use PKCE."));
            }
            (None, None) => {}
        }
        let login = self.active_user(realm, &payload.user_id, &family).await?;
        self.issue(
            realm,
            client,
            &login,
            &family,
            &payload,
            payload.nonce.as_deref(),
            None,
        )
        .await
    }

    /// Exchanges a refresh token for new tokens and a new refresh token (rotation). A refresh
    /// token used again after the realm's reuse grace window revokes its family.
    pub async fn refresh(
        &self,
        realm: &Realm,
        client: GrantClient<'_>,
        token: &str,
        scope: Option<&str>,
    ) -> Result<TokenSet, IdpError> {
        let now = self.clock.now();
        let redeemed = self
            .store
            .redeem_grant(&Hashed::of(token).0, "refresh", owner(realm, client), now)
            .await?
            .ok_or_else(|| refused(INVALID_REFRESH))?;
        let family = redeemed.family;
        let mut payload: GrantPayload = parse_settings(&redeemed.grant.payload)?;
        if family.realm != realm.name
            || family.revoked.is_some()
            || payload.client_id != client.id
            || redeemed.grant.expires <= now
            || family.expires <= now
        {
            return Err(refused(INVALID_REFRESH));
        }
        if let Some(used) = redeemed.grant.used {
            let grace = seconds(realm.settings.refresh_reuse_grace_seconds);
            if now - used > grace {
                self.store.revoke_family(&family.family, now).await?;
                tracing::warn!(
                    realm = %realm.name,
                    client = %client.id,
                    "a used refresh token was replayed; its family is revoked"
                );
                return Err(refused(
                    "The refresh token was already used; every token of this login is revoked.",
                ));
            }
        }
        if let Some(requested) = scope {
            let granted: Vec<&str> = payload.scope.split(' ').collect();
            if let Some(extra) = requested
                .split(' ')
                .find(|s| !s.is_empty() && !granted.contains(s))
            {
                return Err(IdpError::Scope(format!(
                    "The scope `{}` was not granted to this login.",
                    jws::truncate(extra)
                )));
            }
            payload.scope = requested
                .split(' ')
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
        }
        let login = self.active_user(realm, &payload.user_id, &family).await?;
        // The successor is derived from the token presented: a replay inside the grace window
        // (a client retrying after a lost answer) gets the same successor, never a second one.
        let successor = self
            .sealer
            .derive("refresh token successor", token.as_bytes());
        self.issue(
            realm,
            client,
            &login,
            &family,
            &payload,
            None,
            Some(successor),
        )
        .await
    }

    /// The family's user, if they still exist and may log in; otherwise the family is revoked.
    async fn active_user(
        &self,
        realm: &Realm,
        user_id: &str,
        family: &FamilyRow,
    ) -> Result<LoggedIn, IdpError> {
        let user = self.store.user(&realm.name, user_id).await?;
        let login = match user {
            Some(user) => {
                let settings: UserSettings = parse_settings(&user.settings)?;
                (!settings.disabled).then_some(LoggedIn { user, settings })
            }
            None => None,
        };
        match login {
            Some(login) => Ok(login),
            None => {
                self.store
                    .revoke_family(&family.family, self.clock.now())
                    .await?;
                Err(refused("The user no longer exists or is disabled."))
            }
        }
    }

    /// Issues an access token, an ID token (scope `openid`) and a rotated refresh token:
    /// `successor` when given (stored once, however often it is issued), else a new one.
    #[allow(clippy::too_many_arguments)]
    async fn issue(
        &self,
        realm: &Realm,
        client: GrantClient<'_>,
        login: &LoggedIn,
        family: &FamilyRow,
        payload: &GrantPayload,
        nonce: Option<&str>,
        successor: Option<String>,
    ) -> Result<TokenSet, IdpError> {
        let now = self.clock.now();
        let refresh_token = if client.refresh {
            let idle = client
                .refresh_idle_seconds
                .unwrap_or(realm.settings.refresh_idle_seconds);
            let expires = (now + seconds(idle)).min(family.expires);
            let token = successor.unwrap_or_else(secrets::generate);
            let grant = GrantRow {
                token_hash: Hashed::of(&token).0.to_vec(),
                kind: "refresh".into(),
                family: family.family.clone(),
                payload: super::to_json(&GrantPayload {
                    redirect_uri: None,
                    nonce: None,
                    code_challenge: None,
                    ..payload.clone()
                })?,
                created: now,
                expires,
                used: None,
            };
            if !self.store.add_grant(&grant).await? {
                return Err(refused(INVALID_REFRESH));
            }
            let lifetime = (expires - now).whole_seconds().max(0) as u64;
            Some((token, lifetime))
        } else {
            None
        };
        let lifetime = client
            .access_token_seconds
            .unwrap_or(realm.settings.access_token_seconds);
        let access = self.access_token(
            realm,
            &super::TokenSubject {
                subject: &login.user.id,
                client_id: client.id,
                scope: &payload.scope,
                roles: &login.settings.roles,
                session: Some(&family.family),
            },
            lifetime,
        )?;
        let id_token = if payload.scope.split(' ').any(|s| s == "openid") {
            Some(self.id_token(
                realm,
                login,
                client.id,
                &payload.scope,
                IdTokenContext {
                    auth_time: payload.auth_time,
                    nonce,
                    session: &family.family,
                    access_token: &access.token,
                },
                now,
            )?)
        } else {
            None
        };
        Ok(TokenSet {
            access_token: access.token,
            expires_in: access.expires_in,
            id_token,
            refresh_token,
            scope: payload.scope.clone(),
        })
    }

    /// Signs an ID token (OpenID Connect Core section 2) for `client_id`.
    fn id_token(
        &self,
        realm: &Realm,
        login: &LoggedIn,
        client_id: &str,
        scope: &str,
        context: IdTokenContext<'_>,
        now: OffsetDateTime,
    ) -> Result<String, IdpError> {
        let now = now.unix_timestamp();
        let mut claims = Map::new();
        claims.insert("iss".into(), realm.issuer_url.clone().into());
        claims.insert("sub".into(), login.user.id.clone().into());
        claims.insert("aud".into(), client_id.into());
        claims.insert("azp".into(), client_id.into());
        claims.insert(
            "exp".into(),
            (now + realm.settings.id_token_seconds as i64).into(),
        );
        claims.insert("iat".into(), now.into());
        claims.insert("auth_time".into(), context.auth_time.into());
        claims.insert("sid".into(), context.session.into());
        if let Some(nonce) = context.nonce {
            claims.insert("nonce".into(), nonce.into());
        }
        claims.insert(
            "at_hash".into(),
            at_hash(realm.id_key.algorithm(), context.access_token).into(),
        );
        for (name, value) in profile_claims(login, scope) {
            claims.insert(name.into(), value);
        }
        realm.id_key.sign("JWT", &claims).map_err(IdpError::Keys)
    }

    /// Revokes a login (its family): logout, or revocation of one of its refresh tokens.
    pub async fn revoke_family(&self, family: &str) -> Result<(), IdpError> {
        Ok(self.store.revoke_family(family, self.clock.now()).await?)
    }

    /// Revokes a refresh token of `client_id` (and so its family). Unknown tokens and other
    /// clients' tokens are ignored (RFC 7009 section 2.2). Returns whether one was revoked.
    pub async fn revoke_refresh_token(
        &self,
        realm: &Realm,
        client_id: &str,
        token: &str,
    ) -> Result<bool, IdpError> {
        let Some(grant) = self.store.grant(&Hashed::of(token).0).await? else {
            return Ok(false);
        };
        if grant.kind != "refresh" {
            return Ok(false);
        }
        let Some(family) = self.store.family(&grant.family).await? else {
            return Ok(false);
        };
        if family.realm != realm.name || family.client_id != client_id {
            return Ok(false);
        }
        self.revoke_family(&family.family).await?;
        Ok(true)
    }

    /// Revokes one access token by `jti` until `exp`: protected endpoints refuse it from now
    /// on (other nodes after their next reload).
    pub async fn revoke_access_token(
        &self,
        realm: &Realm,
        jti: &str,
        expires: i64,
    ) -> Result<(), IdpError> {
        let expires = OffsetDateTime::from_unix_timestamp(expires)
            .map_err(|e| IdpError::Invalid(e.to_string()))?;
        self.store.revoke_token(jti, &realm.name, expires).await?;
        self.reload().await
    }

    /// Introspects a refresh token for `client_id` (RFC 7662): its claims when it is active.
    pub async fn introspect_refresh_token(
        &self,
        realm: &Realm,
        client_id: &str,
        token: &str,
    ) -> Result<Option<Value>, IdpError> {
        let now = self.clock.now();
        let Some(grant) = self.store.grant(&Hashed::of(token).0).await? else {
            return Ok(None);
        };
        let Some(family) = self.store.family(&grant.family).await? else {
            return Ok(None);
        };
        let active = grant.kind == "refresh"
            && grant.used.is_none()
            && grant.expires > now
            && family.expires > now
            && family.revoked.is_none()
            && family.realm == realm.name
            && family.client_id == client_id;
        if !active {
            return Ok(None);
        }
        let payload: GrantPayload = parse_settings(&grant.payload)?;
        let username = self
            .store
            .user(&realm.name, &family.subject)
            .await?
            .map(|u| u.username);
        let mut out = json!({
            "active": true,
            "client_id": family.client_id,
            "sub": family.subject,
            "scope": payload.scope,
            "exp": grant.expires.unix_timestamp(),
            "iat": grant.created.unix_timestamp(),
            "iss": realm.issuer_url,
            "sid": family.family,
        });
        if let Some(username) = username {
            out["username"] = username.into();
        }
        Ok(Some(out))
    }

    /// Whether the login `family` is still live (not revoked, not ended).
    pub async fn family_is_live(&self, family: &str) -> Result<bool, IdpError> {
        let now = self.clock.now();
        Ok(self
            .store
            .family(family)
            .await?
            .is_some_and(|f| f.revoked.is_none() && f.expires > now))
    }

    /// Checks an `id_token_hint` (OpenID Connect RP-Initiated Logout): signed by one of the
    /// realm's ID token keys and issued by the realm. Expiry is not checked: a logout often
    /// comes after the ID token expired.
    pub fn check_id_token_hint(&self, realm: &Realm, token: &str) -> Option<IdTokenHint> {
        let jws = CompactJws::parse(token, 16 * 1024).ok()?;
        realm.id_keys.verify(&jws).ok()?;
        let claims: Value = serde_json::from_slice(jws.payload()).ok()?;
        if claims.get("iss")?.as_str()? != realm.issuer_url {
            return None;
        }
        let client_id = match claims.get("aud")? {
            Value::String(aud) => aud.clone(),
            Value::Array(auds) if auds.len() == 1 => auds[0].as_str()?.to_owned(),
            _ => return None,
        };
        Some(IdTokenHint {
            subject: claims.get("sub")?.as_str()?.to_owned(),
            client_id,
            session: claims.get("sid").and_then(Value::as_str).map(str::to_owned),
        })
    }
}

/// What an ID token needs besides the user and client.
#[derive(Debug, Clone, Copy)]
struct IdTokenContext<'a> {
    auth_time: i64,
    nonce: Option<&'a str>,
    session: &'a str,
    access_token: &'a str,
}

/// The user's claims a scope releases (OpenID Connect Core section 5.4).
pub fn profile_claims(login: &LoggedIn, scope: &str) -> Vec<(&'static str, Value)> {
    let scopes: Vec<&str> = scope.split(' ').collect();
    let mut out = Vec::new();
    if scopes.contains(&"profile") {
        out.push(("preferred_username", login.user.username.clone().into()));
        if let Some(name) = &login.settings.name {
            out.push(("name", name.clone().into()));
        }
    }
    if scopes.contains(&"email")
        && let Some(email) = &login.settings.email
    {
        out.push(("email", email.clone().into()));
    }
    out
}

/// RFC 7636 section 4.6: `BASE64URL(SHA256(verifier)) == challenge`, after checking the
/// verifier's form (43–128 unreserved characters). Compared in constant time.
pub fn pkce_matches(challenge: &str, verifier: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !well_formed {
        return false;
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    let computed = jws::encode(digest.as_ref());
    aws_lc_rs::constant_time::verify_slices_are_equal(computed.as_bytes(), challenge.as_bytes())
        .is_ok()
}

/// Whether `challenge` has the form of an S256 challenge (43 base64url characters).
pub fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `at_hash` (OpenID Connect Core section 3.1.3.6): the left half of the access token's hash,
/// with the hash of the ID token's algorithm (SHA-512 for EdDSA over Ed25519).
fn at_hash(alg: Algorithm, access_token: &str) -> String {
    use aws_lc_rs::digest;
    let hash = match alg {
        Algorithm::Es384 | Algorithm::Rs384 | Algorithm::Ps384 => &digest::SHA384,
        Algorithm::Ed25519 | Algorithm::Es512 | Algorithm::Rs512 | Algorithm::Ps512 => {
            &digest::SHA512
        }
        _ => &digest::SHA256,
    };
    let digest = digest::digest(hash, access_token.as_bytes());
    let bytes = digest.as_ref();
    jws::encode(&bytes[..bytes.len() / 2])
}

fn seconds(n: u64) -> time::Duration {
    time::Duration::seconds(i64::try_from(n).unwrap_or(i64::MAX))
}

pub(super) fn parse_settings<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, IdpError> {
    serde_json::from_str(json).map_err(|e| IdpError::Keys(format!("a stored record: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_matches_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(is_s256_challenge(challenge));
        assert!(pkce_matches(challenge, verifier));
        assert!(!pkce_matches(challenge, &verifier.replace('d', "e")));
        assert!(!pkce_matches(challenge, "short"), "verifiers are 43+ chars");
        assert!(!pkce_matches(verifier, verifier), "plain is not accepted");
    }

    #[test]
    fn at_hash_matches_the_openid_example() {
        // OpenID Connect Core, Appendix A.4 (RS256).
        let token = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y";
        assert_eq!(at_hash(Algorithm::Rs256, token), "77QmUPtjPfzWtF2AnpK9RQ");
    }
}
