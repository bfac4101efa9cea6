//! The network: IP networks (`IpNets`), trusted reverse proxies and the client address they
//! forward (`TrustedProxies`), and which outbound targets may be reached ([`targets`]).

pub mod targets;

use serde::Deserialize;

/// `[proxy]`: which peers are trusted reverse proxies. A request from one of them is taken to
/// come from the address its `client_ip_header` names: the right-most entry that is not itself
/// a trusted proxy (what each hop appended). Requests from any other peer use the peer's
/// address, whatever their headers say.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// Trusted proxies: IP addresses or CIDR blocks (`10.0.0.0/8`, `fd00::/8`).
    pub trusted: Vec<String>,
    /// The header they append the client's address to.
    pub client_ip_header: String,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            trusted: Vec::new(),
            client_ip_header: "x-forwarded-for".into(),
        }
    }
}

/// A list of IP networks (`10.0.0.0/8`, `fd00::/8`, or a single address), parsed.
#[derive(Debug, Clone, Default)]
pub struct IpNets(Vec<(std::net::IpAddr, u8)>);

impl IpNets {
    /// Parses `entries`; problems name the config key `key`.
    pub fn parse(key: &str, entries: &[String]) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let mut nets = Vec::new();
        for entry in entries {
            let (addr, bits) = entry.split_once('/').unwrap_or((entry, ""));
            let Ok(addr) = addr.trim().parse::<std::net::IpAddr>() else {
                problems.push(format!(
                    "{key}: `{entry}` is not an IP address or CIDR block"
                ));
                continue;
            };
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                "" => max,
                bits => match bits.parse::<u8>() {
                    Ok(b) if b <= max => b,
                    _ => {
                        problems.push(format!("{key}: `{entry}` has a bad prefix length"));
                        continue;
                    }
                },
            };
            nets.push((addr, bits));
        }
        match problems.is_empty() {
            true => Ok(Self(nets)),
            false => Err(problems),
        }
    }

    /// Whether `ip` (IPv4-mapped IPv6 read as IPv4) is in one of the networks.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|&(net, bits)| match (net, ip) {
            (std::net::IpAddr::V4(net), std::net::IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (std::net::IpAddr::V6(net), std::net::IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        })
    }
}

/// The group an address counts in for per-address limits: an IPv4 address itself, an IPv6
/// address's /64 (what one subscriber is usually given, so one host cannot pass as many).
pub fn address_group(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip.to_canonical() {
        std::net::IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            std::net::IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

/// Trusted proxies, parsed.
#[derive(Debug, Clone)]
pub struct TrustedProxies {
    nets: IpNets,
    header: String,
}

impl TrustedProxies {
    /// Parses `[proxy]`.
    pub fn parse(config: &ProxyConfig) -> Result<Self, Vec<String>> {
        let (nets, mut problems) = match IpNets::parse("proxy.trusted", &config.trusted) {
            Ok(nets) => (nets, Vec::new()),
            Err(problems) => (IpNets::default(), problems),
        };
        let header = config.client_ip_header.to_ascii_lowercase();
        // An RFC 9110 token.
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if header.is_empty() || !header.chars().all(token) {
            problems.push(format!(
                "proxy.client_ip_header: `{}` is not a header name",
                config.client_ip_header
            ));
        }
        match problems.is_empty() {
            true => Ok(Self { nets, header }),
            false => Err(problems),
        }
    }

    /// The (lowercase) name of the header proxies append the client's address to.
    pub fn header(&self) -> &str {
        &self.header
    }

    /// Whether `ip` is a trusted proxy (many clients share its connections).
    pub fn trusts(&self, ip: std::net::IpAddr) -> bool {
        self.nets.contains(ip.to_canonical())
    }

    /// The client's address for a request from `peer` whose [`Self::header`] values are
    /// `forwarded` (in order of appearance).
    pub fn client<'a>(
        &self,
        peer: std::net::IpAddr,
        forwarded: impl Iterator<Item = &'a str>,
    ) -> std::net::IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        let hops = forwarded
            .flat_map(|value| value.split(','))
            .collect::<Vec<_>>();
        for hop in hops.iter().rev() {
            let hop = hop.trim();
            // `1.2.3.4:5678` and `[::1]:5678` carry ports; strip them.
            let hop = hop
                .parse::<std::net::SocketAddr>()
                .map(|a| a.ip())
                .or_else(|_| hop.parse::<std::net::IpAddr>());
            match hop {
                Ok(ip) => {
                    client = ip.to_canonical();
                    if !self.trusts(client) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_trusted_peer_forwards_the_client_address() {
        let proxies = TrustedProxies::parse(&ProxyConfig {
            trusted: vec!["10.0.0.0/8".into(), "::1".into()],
            client_ip_header: "X-Forwarded-For".into(),
        })
        .unwrap();
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        // An untrusted peer's header is ignored.
        assert_eq!(
            proxies.client(ip("192.0.2.1"), ["203.0.113.9"].into_iter()),
            ip("192.0.2.1")
        );
        // The right-most untrusted hop is the client; what the client wrote to the left is not.
        assert_eq!(
            proxies.client(
                ip("10.1.1.1"),
                ["6.6.6.6, 203.0.113.9", "10.2.2.2"].into_iter()
            ),
            ip("203.0.113.9")
        );
        assert_eq!(
            proxies.client(ip("::1"), ["[2001:db8::1]:443"].into_iter()),
            ip("2001:db8::1")
        );
        assert_eq!(
            proxies.client(ip("10.1.1.1"), std::iter::empty()),
            ip("10.1.1.1")
        );
        assert!(
            TrustedProxies::parse(&ProxyConfig {
                trusted: vec!["10.0.0.0/33".into(), "host".into()],
                client_ip_header: "bad header".into(),
            })
            .unwrap_err()
            .len()
                == 3
        );
    }

    #[test]
    fn an_ipv6_host_counts_as_its_64() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert_eq!(address_group(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(address_group(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(
            address_group(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        assert_ne!(
            address_group(ip("2001:db8:1:2::1")),
            address_group(ip("2001:db8:1:3::1"))
        );
    }
}
