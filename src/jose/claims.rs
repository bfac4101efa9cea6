//! JWT claims (RFC 7519 section 4.1) and the rules an issuer sets for them.

use std::borrow::Cow;

use serde_json::value::RawValue;

use super::json::{Members, as_str, as_strings, truncate};

/// The registered claims, typed, and every claim as sent, borrowed from the decoded payload.
#[derive(Debug, Clone, Default)]
pub struct Claims<'a> {
    /// `iss`.
    pub iss: Option<Cow<'a, str>>,
    /// `sub`.
    pub sub: Option<Cow<'a, str>>,
    /// `aud`, a string or an array of strings.
    pub aud: Vec<Cow<'a, str>>,
    /// `exp`, seconds since the epoch.
    pub exp: Option<i64>,
    /// `nbf`.
    pub nbf: Option<i64>,
    /// `iat`.
    pub iat: Option<i64>,
    /// `jti`.
    pub jti: Option<Cow<'a, str>>,
    /// All claims, as sent (unparsed JSON text).
    pub all: Members<'a>,
}

/// Why a token's claims are not accepted. The messages are safe to show to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// The payload is not a JSON object with unique members.
    #[error("the token's payload is not a JSON object: {0}")]
    NotAnObject(String),
    /// A registered claim of the wrong type.
    #[error("the claim `{0}` has the wrong type: {1}")]
    WrongType(&'static str, &'static str),
    /// A claim the issuer requires is missing.
    #[error("the token has no `{0}` claim, which its issuer requires")]
    Missing(String),
    /// `exp` has passed.
    #[error("the token has expired")]
    Expired,
    /// `nbf` is still ahead.
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    /// `iat` is in the future.
    #[error("the token claims to be issued in the future (iat)")]
    IssuedInFuture,
    /// `iss` is not the issuer's.
    #[error("the token's issuer does not match")]
    WrongIssuer,
    /// `aud` names none of the accepted audiences.
    #[error("the token is not meant for this server (aud)")]
    WrongAudience,
}

impl<'a> Claims<'a> {
    /// Parses a JWS payload as a claims set, checking the registered claims' types. Other claims
    /// stay unparsed JSON text until asked for (permissions), which keeps a typical access
    /// token's many profile claims cheap.
    pub fn parse(payload: &'a [u8]) -> Result<Self, ClaimError> {
        let all = Members::parse(payload).map_err(ClaimError::NotAnObject)?;
        let string = |name: &'static str| match all.get(name) {
            None => Ok(None),
            Some(raw) => as_str(raw)
                .map(Some)
                .ok_or(ClaimError::WrongType(name, "it must be a string")),
        };
        let date =
            |name: &'static str| all.get(name).map(|raw| numeric_date(name, raw)).transpose();
        let aud = match all.get("aud") {
            None => Vec::new(),
            Some(raw) => match as_str(raw) {
                Some(one) => vec![one],
                None => as_strings(raw).ok_or(ClaimError::WrongType(
                    "aud",
                    "it must be a string or strings",
                ))?,
            },
        };
        Ok(Self {
            iss: string("iss")?,
            sub: string("sub")?,
            jti: string("jti")?,
            exp: date("exp")?,
            nbf: date("nbf")?,
            iat: date("iat")?,
            aud,
            all,
        })
    }

    /// Checks the claims against `rules` at `now` (seconds since the epoch).
    pub fn check(&self, rules: &ClaimRules, now: i64) -> Result<(), ClaimError> {
        for name in &rules.required {
            if !self.all.contains(name) {
                return Err(ClaimError::Missing(truncate(name)));
            }
        }
        if self.iss.as_deref() != Some(rules.issuer.as_str()) {
            return Err(ClaimError::WrongIssuer);
        }
        let leeway = rules.leeway_seconds;
        if self
            .exp
            .is_some_and(|exp| now >= exp.saturating_add(leeway))
        {
            return Err(ClaimError::Expired);
        }
        if self.nbf.is_some_and(|nbf| now.saturating_add(leeway) < nbf) {
            return Err(ClaimError::NotYetValid);
        }
        if self.iat.is_some_and(|iat| now.saturating_add(leeway) < iat) {
            return Err(ClaimError::IssuedInFuture);
        }
        if !rules.audiences.is_empty()
            && !self
                .aud
                .iter()
                .any(|a| rules.audiences.iter().any(|accepted| accepted == a))
        {
            return Err(ClaimError::WrongAudience);
        }
        Ok(())
    }

    /// Whether these are an OpenID Connect ID token's claims: `nonce` or `at_hash` (OpenID
    /// Connect Core §2, §3.1.3.6), or Keycloak's `"typ": "ID"`. Access tokens carry none.
    pub fn is_id_token(&self) -> bool {
        self.all.contains("nonce")
            || self.all.contains("at_hash")
            || self
                .all
                .get("typ")
                .is_some_and(|typ| typ.get() == r#""ID""#)
    }

    /// The permissions found at `paths` (dotted claim paths such as `realm_access.roles`): a
    /// string is split on spaces (OAuth `scope`), an array contributes its strings. Anything
    /// else at a path (a number, an object, nested duplicate members) contributes nothing.
    pub fn permissions(&self, paths: &[String]) -> Vec<String> {
        let mut found = Vec::new();
        for path in paths {
            let mut steps = path.split('.');
            let mut at = steps.next().and_then(|first| self.all.get(first));
            for step in steps {
                at = at.and_then(|raw| Members::parse(raw.get().as_bytes()).ok()?.get(step));
            }
            let Some(raw) = at else { continue };
            if let Some(text) = as_str(raw) {
                found.extend(text.split_whitespace().map(str::to_owned));
            } else if let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(raw.get()) {
                found.extend(items.into_iter().filter_map(as_str).map(Cow::into_owned));
            }
        }
        found.sort_unstable();
        found.dedup();
        found
    }
}

/// A NumericDate: a JSON number of seconds, possibly fractional; the fraction is dropped.
fn numeric_date(name: &'static str, raw: &RawValue) -> Result<i64, ClaimError> {
    let text = raw.get();
    // JSON integers have no sign but `-` and no leading zeros, so `i64`'s parser reads them as
    // JSON does.
    if let Ok(seconds) = text.parse::<i64>() {
        return Ok(seconds);
    }
    let Ok(number) = serde_json::from_str::<serde_json::Number>(text) else {
        return Err(ClaimError::WrongType(name, "it must be a number"));
    };
    let f = number.as_f64().unwrap_or(f64::NAN);
    // Within ±2^62 seconds: far beyond any real date, and exact to convert.
    if f.is_finite() && f.abs() < 4.6e18 {
        Ok(f.floor() as i64)
    } else {
        Err(ClaimError::WrongType(name, "it must be a NumericDate"))
    }
}

/// What an issuer requires of its tokens' claims.
#[derive(Debug, Clone)]
pub struct ClaimRules {
    /// The exact `iss`.
    pub issuer: String,
    /// Accepted `aud` values (any one suffices); empty accepts any.
    pub audiences: Vec<String>,
    /// Claims that must be present.
    pub required: Vec<String>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`.
    pub leeway_seconds: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> ClaimRules {
        ClaimRules {
            issuer: "https://idp".into(),
            audiences: vec!["portico".into()],
            required: vec!["exp".into(), "sub".into()],
            leeway_seconds: 60,
        }
    }

    fn check(json: &str, now: i64) -> Result<(), ClaimError> {
        Claims::parse(json.as_bytes())?.check(&rules(), now)
    }

    #[test]
    fn time_claims_honour_the_leeway() {
        let token =
            r#"{"iss":"https://idp","aud":"portico","sub":"s","exp":1000,"nbf":500,"iat":500}"#;
        assert_eq!(check(token, 999), Ok(()));
        assert_eq!(check(token, 1059), Ok(()), "within the leeway");
        assert_eq!(check(token, 1060), Err(ClaimError::Expired));
        assert_eq!(check(token, 440), Ok(()), "nbf within the leeway");
        assert_eq!(check(token, 439), Err(ClaimError::NotYetValid));
        let future = r#"{"iss":"https://idp","aud":"portico","sub":"s","exp":9000,"iat":2000}"#;
        assert_eq!(check(future, 1000), Err(ClaimError::IssuedInFuture));
        let fractional = r#"{"iss":"https://idp","aud":["x","portico"],"sub":"s","exp":1000.9}"#;
        assert_eq!(check(fractional, 1059), Ok(()));
    }

    #[test]
    fn types_presence_issuer_and_audience_are_checked() {
        assert_eq!(
            check(
                r#"{"iss":"https://idp","aud":"portico","sub":"s","exp":"1000"}"#,
                0
            ),
            Err(ClaimError::WrongType("exp", "it must be a number"))
        );
        assert_eq!(
            check(r#"{"iss":"https://idp","aud":[1],"sub":"s","exp":1000}"#, 0),
            Err(ClaimError::WrongType(
                "aud",
                "it must be a string or strings"
            ))
        );
        assert_eq!(
            check(r#"{"iss":"https://idp","aud":"portico","exp":1000}"#, 0),
            Err(ClaimError::Missing("sub".into()))
        );
        assert_eq!(
            check(
                r#"{"iss":"https://other","aud":"portico","sub":"s","exp":1000}"#,
                0
            ),
            Err(ClaimError::WrongIssuer)
        );
        assert_eq!(
            check(
                r#"{"iss":"https://idp","aud":"else","sub":"s","exp":1000}"#,
                0
            ),
            Err(ClaimError::WrongAudience)
        );
        assert_eq!(
            check(r#"{"iss":"https://idp","sub":"s","exp":1000}"#, 0),
            Err(ClaimError::WrongAudience)
        );
        assert!(matches!(
            check(r#"{"iss":"a","iss":"b"}"#, 0),
            Err(ClaimError::NotAnObject(_))
        ));
        assert!(matches!(check("[]", 0), Err(ClaimError::NotAnObject(_))));
    }

    #[test]
    fn permissions_come_from_the_configured_paths() {
        let claims = Claims::parse(
            br#"{"scope":"read write","scp":["admin"],"roles":"x","realm_access":{"roles":["operator","read"]}}"#,
        )
        .unwrap_or_default();
        let paths: Vec<String> = ["scope", "scp", "realm_access.roles", "missing.path"]
            .map(String::from)
            .into();
        assert_eq!(
            claims.permissions(&paths),
            ["admin", "operator", "read", "write"]
        );
    }
}
