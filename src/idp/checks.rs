//! What the identity provider accepts: realm names, identifiers, realm and client settings,
//! redirect URIs.

use super::*;

/// A realm's name: 1–64 of `a-z`, `0-9`, `-`, `_`, starting with a letter or digit (it is a
/// URL path segment and part of every issuer URL). Checked once, where it comes in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(into = "String")]
pub struct RealmName(String);

impl RealmName {
    /// Parses a realm name, explaining what is wrong with a bad one.
    pub fn parse(name: &str) -> Result<Self, String> {
        check_name(name, 64, |c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'
        })
        .map_err(|e| format!("realm name `{}` {e}", crate::jose::jws::truncate(name)))?;
        Ok(Self(name.to_owned()))
    }

    /// The realm a fresh node creates and whose tokens open the admin API: `node`.
    pub fn node() -> Self {
        Self("node".to_owned())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RealmName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<RealmName> for String {
    fn from(name: RealmName) -> Self {
        name.0
    }
}

impl TryFrom<String> for RealmName {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        Self::parse(&name)
    }
}

impl<'de> serde::Deserialize<'de> for RealmName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// Read as the text it is (it can be read, never changed, so the check cannot be undone).
impl std::ops::Deref for RealmName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for RealmName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<String> for RealmName {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<RealmName> for String {
    fn eq(&self, other: &RealmName) -> bool {
        self == &other.0
    }
}

/// Checks a client id, app id, user name or role: 1–128 printable ASCII characters from
/// `A-Za-z0-9` and `-._~:@`, starting with a letter or digit (safe in URLs and Basic auth).
pub fn check_identifier(what: &str, name: &str) -> Result<(), IdpError> {
    check_name(name, 128, |c| {
        c.is_ascii_alphanumeric() || "-._~:@".contains(c)
    })
    .map_err(|e| IdpError::Invalid(format!("{what} `{}` {e}", crate::jose::jws::truncate(name))))
}

fn check_name(name: &str, max: usize, allowed: impl Fn(char) -> bool) -> Result<(), String> {
    if name.is_empty() || name.len() > max {
        return Err(format!("must have 1 to {max} characters"));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) || !name.chars().all(allowed) {
        return Err("has a character that is not allowed".into());
    }
    Ok(())
}

pub(super) fn check_realm_settings(settings: &RealmSettings) -> Result<(), IdpError> {
    realm_algorithm(&settings.access_token_alg).map_err(IdpError::Invalid)?;
    realm_algorithm(&settings.id_token_alg).map_err(IdpError::Invalid)?;
    for (name, value, min, max) in [
        (
            "access_token_seconds",
            settings.access_token_seconds,
            10,
            86_400,
        ),
        ("id_token_seconds", settings.id_token_seconds, 10, 86_400),
        (
            "refresh_idle_seconds",
            settings.refresh_idle_seconds,
            60,
            31_536_000,
        ),
        (
            "refresh_max_seconds",
            settings.refresh_max_seconds,
            60,
            31_536_000,
        ),
        ("code_seconds", settings.code_seconds, 10, 600),
        (
            "refresh_reuse_grace_seconds",
            settings.refresh_reuse_grace_seconds,
            0,
            60,
        ),
    ] {
        if !(min..=max).contains(&value) {
            return Err(IdpError::Invalid(format!(
                "`{name}` must be between {min} and {max}, not {value}"
            )));
        }
    }
    if settings.audience.is_empty() {
        return Err(IdpError::Invalid("`audience` must not be empty".into()));
    }
    Ok(())
}

pub(super) fn check_client_settings(
    settings: &ClientSettings,
    confidential: bool,
) -> Result<(), IdpError> {
    for grant in &settings.grant_types {
        if !model::GRANT_TYPES.contains(&grant.as_str()) {
            return Err(IdpError::Invalid(format!(
                "grant type `{grant}` is not supported (authorization_code, client_credentials, refresh_token)"
            )));
        }
    }
    if !confidential
        && settings
            .grant_types
            .iter()
            .any(|g| g == "client_credentials")
    {
        return Err(IdpError::Invalid(
            "a public client cannot use client_credentials: it has no secret".into(),
        ));
    }
    for uri in settings
        .redirect_uris
        .iter()
        .chain(&settings.post_logout_redirect_uris)
    {
        check_redirect_uri(uri)?;
    }
    for name in settings.roles.iter().chain(&settings.scopes) {
        check_identifier("role or scope", name)?;
    }
    for (name, value, min, max) in [
        (
            "access_token_seconds",
            settings.access_token_seconds,
            10,
            86_400,
        ),
        (
            "refresh_idle_seconds",
            settings.refresh_idle_seconds,
            60,
            31_536_000,
        ),
    ] {
        if let Some(value) = value
            && !(min..=max).contains(&value)
        {
            return Err(IdpError::Invalid(format!(
                "`{name}` must be between {min} and {max}, not {value}"
            )));
        }
    }
    Ok(())
}

/// A registered redirect URI: absolute, no fragment; `http` only for loopback hosts.
fn check_redirect_uri(uri: &str) -> Result<(), IdpError> {
    let bad = |why: &str| IdpError::Invalid(format!("redirect URI `{uri}` {why}"));
    let Some((scheme, rest)) = uri.split_once("://") else {
        return Err(bad("is not an absolute URI"));
    };
    if uri.contains('#') {
        return Err(bad("has a fragment"));
    }
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    if host.contains('@') {
        return Err(bad("has user information (`user@host`)"));
    }
    let host_only = host.rsplit_once(':').map_or(host, |(h, _)| h);
    match scheme {
        "https" if !host.is_empty() => Ok(()),
        "http" if ["127.0.0.1", "[::1]", "localhost"].contains(&host_only) => Ok(()),
        "http" => Err(bad("uses http for a host other than a loopback address")),
        s if !s.is_empty() && s.contains('.') => Ok(()), // private-use scheme (RFC 8252 §7.1)
        _ => Err(bad("has an unsupported scheme")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_are_registered_only_when_safe() {
        for good in [
            "https://app.example/cb",
            "http://127.0.0.1/cb",
            "http://[::1]:8080/cb",
            "http://localhost/cb",
            "com.example.app://cb",
        ] {
            assert!(check_redirect_uri(good).is_ok(), "{good}");
        }
        for bad in [
            "https://app.example/cb#x",
            "http://app.example/cb",
            "http://localhost:80@evil.example/cb",
            "https://user@app.example/cb",
            "app/cb",
            "javascript://x",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn realm_names_are_checked_where_they_come_in() {
        for good in ["node", "plant-1", "a_b", "0", &"x".repeat(64)] {
            let name = RealmName::parse(good).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(name.as_str(), good);
        }
        for bad in ["", "Node", "-x", "a b", "ä", "a/b", &"x".repeat(65)] {
            assert!(RealmName::parse(bad).is_err(), "{bad:?}");
        }
        let parsed: Result<RealmName, _> = serde_json::from_str("\"Bad\"");
        let error = parsed.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("realm name `Bad`"), "{error}");
    }
}
