//! Who may call forward auth and set forwarding headers: the addresses and
//! CIDR ranges of `trusted_proxies`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// The peers the gateway trusts as proxies (default: loopback, `127.0.0.0/8`
/// and `::1`). Cheap to clone.
///
/// Only they may ask the forward-auth endpoint, and only their
/// `X-Forwarded-For`, `Forwarded`, `X-Real-IP` and `X-Forwarded-*` headers
/// reach an upstream in proxy mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedProxies(Arc<[IpNet]>);

impl TrustedProxies {
    /// `127.0.0.0/8` and `::1`: a proxy on the same host.
    pub fn loopback() -> Self {
        Self(Arc::from([
            IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8)),
            IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::LOCALHOST, 128)),
        ]))
    }

    /// Nobody: forward auth is refused to every peer.
    pub fn none() -> Self {
        Self(Arc::from([]))
    }

    /// Addresses (`10.0.0.7`, `::1`) and CIDR ranges (`10.0.0.0/8`); the
    /// error is the entry that is neither.
    pub fn parse<'s>(entries: impl IntoIterator<Item = &'s str>) -> Result<Self, String> {
        let mut nets = Vec::new();
        for entry in entries {
            let trimmed = entry.trim();
            let net = trimmed
                .parse::<IpNet>()
                .or_else(|_| trimmed.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| entry.to_owned())?;
            nets.push(net.trunc());
        }
        Ok(Self(Arc::from(nets)))
    }

    /// Whether `peer` is one of them (an IPv4-mapped IPv6 address counts as
    /// its IPv4 address).
    pub fn contains(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.0.iter().any(|net| net.contains(&peer))
    }
}

impl Default for TrustedProxies {
    fn default() -> Self {
        Self::loopback()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn loopback_is_trusted_by_default_and_nothing_else() {
        let trusted = TrustedProxies::default();
        assert!(trusted.contains(ip("127.0.0.1")));
        assert!(trusted.contains(ip("127.8.9.10")));
        assert!(trusted.contains(ip("::1")));
        assert!(trusted.contains(ip("::ffff:127.0.0.1")));
        assert!(!trusted.contains(ip("10.0.0.1")));
        assert!(!trusted.contains(ip("::ffff:10.0.0.1")));
        assert!(!trusted.contains(ip("fe80::1")));
    }

    #[test]
    fn addresses_and_ranges_are_parsed() {
        let trusted =
            TrustedProxies::parse(["10.0.0.0/8", " 192.0.2.7 ", "2001:db8::/32"]).unwrap();
        assert!(trusted.contains(ip("10.200.0.1")));
        assert!(trusted.contains(ip("192.0.2.7")));
        assert!(!trusted.contains(ip("192.0.2.8")));
        assert!(trusted.contains(ip("2001:db8::5")));
        assert!(!trusted.contains(ip("127.0.0.1")));
        assert_eq!(
            TrustedProxies::parse(["10.0.0.0/33"]),
            Err("10.0.0.0/33".to_owned())
        );
        assert_eq!(
            TrustedProxies::parse(["localhost"]),
            Err("localhost".to_owned())
        );
        assert_eq!(TrustedProxies::parse([]), Ok(TrustedProxies::none()));
    }
}
