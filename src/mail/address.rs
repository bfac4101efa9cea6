//! E-mail addresses, parsed once where they come in.

/// A plausible e-mail address (RFC 5321 sizes; dot-atom local part; a domain with a dot),
/// lowercased. Whether the mailbox exists is for the mail server to say. It carries no line
/// break or angle bracket, so it is safe in a header.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address(String);

impl Address {
    /// Parses `email` (surrounding spaces ignored); `None` if it is not an address.
    pub fn parse(email: &str) -> Option<Self> {
        let email = email.trim();
        let (local, domain) = email.rsplit_once('@')?;
        let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
        let local_ok = (1..=64).contains(&local.len())
            && local
                .split('.')
                .all(|part| !part.is_empty() && part.chars().all(atext));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = domain.len() <= 253
            && labels.len() >= 2
            && labels.iter().all(|label| {
                (1..=63).contains(&label.len())
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            })
            && labels
                .last()
                .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_alphabetic()) && tld.len() >= 2);
        (local_ok && domain_ok).then(|| Self(email.to_ascii_lowercase()))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_for_shape_and_lowercased() {
        assert_eq!(
            Address::parse(" Name.Surname@Example.COM ").map(|a| a.0),
            Some("name.surname@example.com".to_owned())
        );
        for bad in [
            "plain",
            "a@b",
            "a@b.c",
            "a..b@example.com",
            "a@-x.com",
            "a b@example.com",
            "a@example.com\r\nBcc: x@y.z",
            "<a@example.com>",
        ] {
            assert_eq!(Address::parse(bad), None, "{bad}");
        }
    }
}
