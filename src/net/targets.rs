//! Which addresses outbound requests (webhooks, signed endpoints' `http-request`) may reach:
//! protection against server-side request forgery.
//!
//! A target URL is `http` or `https` with a host and no credentials. Its addresses must be
//! global unicast, unless an operator allowed them (`allow_targets`). A name is
//! resolved once per connection by [`VettingResolver`], which hands the HTTP client only the
//! addresses that passed, so the address vetted is the address connected to (no DNS
//! rebinding between check and use). IP literals never reach a resolver and are checked
//! before the request.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::Url;

use crate::net::IpNets;

/// The vetting rules.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    allowed: IpNets,
    /// The configuration key that lists `allowed`, for messages.
    setting: &'static str,
}

/// A target refused, with the reason in a sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

impl Targets {
    /// Targets that may be reached: global addresses, and `allowed` (listed in the
    /// configuration key `setting`).
    pub fn new(allowed: IpNets, setting: &'static str) -> Self {
        Self { allowed, setting }
    }

    /// Whether a connection to `ip` is allowed.
    pub fn allows(&self, ip: IpAddr) -> bool {
        is_global(ip.to_canonical()) || self.allowed.contains(ip)
    }

    /// Checks a target URL's form, and its host when it is an IP literal.
    pub fn check_url(&self, url: &str) -> Result<Url, Refused> {
        let parsed = Url::parse(url).map_err(|e| Refused(format!("`{url}` is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Refused(format!(
                "The URL's scheme is `{}`; webhooks are sent over http or https.",
                parsed.scheme()
            )));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(Refused(
                "The URL carries credentials; put them in the path or query instead, or \
                 check the signature at the receiver."
                    .into(),
            ));
        }
        if parsed.fragment().is_some() {
            return Err(Refused(
                "The URL has a fragment, which is never sent.".into(),
            ));
        }
        match parsed.host() {
            None => return Err(Refused("The URL has no host.".into())),
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip))?,
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip))?,
            Some(url::Host::Domain(_)) => {}
        }
        Ok(parsed)
    }

    /// Checks a URL and, for a name, that it resolves now to at least one allowed address.
    pub async fn vet(&self, url: &str) -> Result<Url, Refused> {
        let parsed = self.check_url(url)?;
        if let Some(url::Host::Domain(name)) = parsed.host() {
            let addrs = self.resolve(name).await?;
            if addrs.is_empty() {
                return Err(Refused(format!("`{name}` has no address.")));
            }
        }
        Ok(parsed)
    }

    fn check_ip(&self, ip: IpAddr) -> Result<(), Refused> {
        match self.allows(ip) {
            true => Ok(()),
            false => Err(Refused(format!(
                "{ip} is not a global address (loopback, private, link-local or reserved); \
                 add it to `{}` to allow it.",
                self.setting
            ))),
        }
    }

    /// The allowed addresses of `name`; an error when it has addresses but none is allowed.
    async fn resolve(&self, name: &str) -> Result<Vec<SocketAddr>, Refused> {
        let found = tokio::net::lookup_host((name, 0))
            .await
            .map_err(|e| Refused(format!("`{name}` cannot be resolved: {e}")))?
            .collect::<Vec<_>>();
        let allowed: Vec<SocketAddr> = found
            .iter()
            .copied()
            .filter(|a| self.allows(a.ip()))
            .collect();
        if allowed.is_empty() && !found.is_empty() {
            return Err(Refused(format!(
                "`{name}` resolves only to addresses that are not global ({}); add them to \
                 `{}` to allow them.",
                found
                    .iter()
                    .map(|a| a.ip().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                self.setting
            )));
        }
        Ok(allowed)
    }
}

/// The refusal inside a failed request, when the vetting resolver refused its address.
pub fn refused_in(error: &reqwest::Error) -> Option<&Refused> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<Refused>() {
            return Some(refused);
        }
        source = cause.source();
    }
    None
}

/// The HTTP client's resolver: resolves once and returns only allowed addresses.
#[derive(Debug, Clone)]
pub struct VettingResolver(pub Arc<Targets>);

impl reqwest::dns::Resolve for VettingResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let targets = self.0.clone();
        Box::pin(async move {
            let addrs = targets.resolve(name.as_str()).await?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// Whether `ip` is a global unicast address: not unspecified, loopback, private, shared,
/// link-local, multicast, broadcast, documentation, benchmarking or otherwise reserved
/// (the IANA special-purpose registries). IPv6 forms that embed an IPv4 address (mapped,
/// NAT64, 6to4) are judged by it.
pub fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_global_v4(ip),
        IpAddr::V6(ip) => is_global_v6(ip),
    }
}

fn is_global_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0 // "this network"
        || a == 10
        || (a == 100 && (64..128).contains(&b)) // shared address space
        || a == 127
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168)
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224) // multicast, reserved, broadcast
}

fn is_global_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_global_v4(v4);
    }
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if s[0] == 0x0064 && s[1] == 0xff9b {
        // NAT64 (64:ff9b::/96 and the local-use 64:ff9b:1::/48)
        return s[2] == 0 && is_global_v4(embedded(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return is_global_v4(embedded(s[1], s[2])); // 6to4
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || s[0] & 0xfe00 == 0xfc00 // unique local
        || s[0] & 0xffc0 == 0xfe80 // link-local
        || s[0] & 0xffc0 == 0xfec0 // site-local (deprecated)
        || s[0] & 0xff00 == 0xff00 // multicast
        || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0) // discard-only
        || (s[0] == 0x2001 && s[1] < 0x0200) // IETF protocol assignments (Teredo, ORCHID, ...)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x3fff && s[1] < 0x1000) // documentation (RFC 9637)
        || s[0] == 0 // IPv4-compatible and other reserved forms in ::/16
        || (s[0] == 0x5f00)) // SRv6 SIDs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_global_unicast_is_global() {
        for refused in [
            "0.0.0.0",
            "10.1.2.3",
            "100.64.0.1",
            "127.0.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "2001::1",
        ] {
            assert!(!is_global(ip(refused)), "{refused} should not be global");
        }
        for allowed in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
            "64:ff9b::808:808",
            "2002:0808:0808::",
        ] {
            assert!(is_global(ip(allowed)), "{allowed} should be global");
        }
    }

    #[test]
    fn urls_are_checked_for_form_and_literal_addresses() {
        let targets = Targets::default();
        assert!(targets.check_url("https://example.com/hook").is_ok());
        assert!(targets.check_url("https://93.184.215.14/hook").is_ok());
        for refused in [
            "ftp://example.com/",
            "https://user:pw@example.com/",
            "http://127.0.0.1:8080/",
            "http://[::1]/",
            "http://[::ffff:7f00:1]/",
            "http://169.254.169.254/latest/meta-data",
            "http://0x7f000001/",
            "not a url",
        ] {
            assert!(targets.check_url(refused).is_err(), "{refused}");
        }
        let allowed = Targets::new(IpNets::parse("t", &["127.0.0.0/8".into()]).unwrap(), "t");
        assert!(allowed.check_url("http://127.0.0.1:8080/").is_ok());
    }
}
