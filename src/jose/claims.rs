//! JWT claims (RFC 7519 section 4.1) and the rules an issuer sets for them.

use std::collections::BTreeMap;

use serde_json::Value;
use serde_json::value::RawValue;

use super::jws::{parse_raw_object, truncate};

/// The registered claims, typed, and every claim as sent.
#[derive(Debug, Clone, Default)]
pub struct Claims {
    /// `iss`.
    pub iss: Option<String>,
    /// `sub`.
    pub sub: Option<String>,
    /// `aud`, a string or an array of strings.
    pub aud: Vec<String>,
    /// `exp`, seconds since the epoch.
    pub exp: Option<i64>,
    /// `nbf`.
    pub nbf: Option<i64>,
    /// `iat`.
    pub iat: Option<i64>,
    /// `jti`.
    pub jti: Option<String>,
    /// All claims, as sent (unparsed JSON text).
    pub all: BTreeMap<String, Box<RawValue>>,
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

impl Claims {
    /// Parses a JWS payload as a claims set, checking the registered claims' types. Other claims
    /// stay unparsed JSON text until asked for (permissions), which keeps a typical access
    /// token's many profile claims cheap.
    pub fn parse(payload: &[u8]) -> Result<Self, ClaimError> {
        let all = parse_raw_object(payload).map_err(ClaimError::NotAnObject)?;
        let value = |name: &str| -> Option<Value> {
            all.get(name)
                .map(|raw| serde_json::from_str(raw.get()).unwrap_or(Value::Null))
        };
        let string = |name: &'static str| match value(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ClaimError::WrongType(name, "it must be a string")),
        };
        let date = |name: &'static str| match value(name) {
            None => Ok(None),
            Some(Value::Number(n)) => numeric_date(&n)
                .map(Some)
                .ok_or(ClaimError::WrongType(name, "it must be a NumericDate")),
            Some(_) => Err(ClaimError::WrongType(name, "it must be a number")),
        };
        let aud = match value("aud") {
            None => Vec::new(),
            Some(Value::String(s)) => vec![s],
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => Some(s),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .ok_or(ClaimError::WrongType(
                    "aud",
                    "it must be a string or strings",
                ))?,
            Some(_) => {
                return Err(ClaimError::WrongType(
                    "aud",
                    "it must be a string or strings",
                ));
            }
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
            if !self.all.contains_key(name) {
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
        if !rules.audiences.is_empty() && !self.aud.iter().any(|a| rules.audiences.contains(a)) {
            return Err(ClaimError::WrongAudience);
        }
        Ok(())
    }

    /// The permissions found at `paths` (dotted claim paths such as `realm_access.roles`): a
    /// string is split on spaces (OAuth `scope`), an array contributes its strings.
    pub fn permissions(&self, paths: &[String]) -> Vec<String> {
        let mut found = Vec::new();
        for path in paths {
            let mut steps = path.split('.');
            let Some(raw) = steps.next().and_then(|first| self.all.get(first)) else {
                continue;
            };
            let mut at: Option<Value> = serde_json::from_str(raw.get()).ok();
            for step in steps {
                at = at.and_then(|mut value| value.get_mut(step).map(Value::take));
            }
            match at {
                Some(Value::String(s)) => found.extend(s.split_whitespace().map(str::to_owned)),
                Some(Value::Array(items)) => {
                    found.extend(items.into_iter().filter_map(|item| match item {
                        Value::String(s) => Some(s),
                        _ => None,
                    }));
                }
                _ => {}
            }
        }
        found.sort_unstable();
        found.dedup();
        found
    }
}

/// A NumericDate: a JSON number of seconds, possibly fractional; the fraction is dropped.
fn numeric_date(n: &serde_json::Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    // Within ±2^62 seconds: far beyond any real date, and exact to convert.
    (f.is_finite() && f.abs() < 4.6e18).then(|| f.floor() as i64)
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
