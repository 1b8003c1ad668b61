//! Which destinations outbound calls may reach. By default loopback, private (RFC 1918),
//! carrier-grade NAT (RFC 6598), link-local (including the cloud metadata address
//! 169.254.169.254), unique-local IPv6, unspecified, broadcast and multicast addresses are
//! refused, so a tenant's flow or credential `baseUrl` cannot reach the host's internal
//! services. `serve --allow-private-networks` (or `SLUICE_ALLOW_PRIVATE_NETWORKS=1`) lifts
//! the restriction, for self-hosted systems on a private network and for tests.
//!
//! Enforced three ways: IP-literal hosts are checked before sending and on each redirect, and
//! the shared client resolves names through [`PolicyResolver`], which drops denied addresses
//! — so a public name pointing at 127.0.0.1 is refused too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The outbound network policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetPolicy {
    /// Allow private and loopback destinations.
    pub allow_private: bool,
}

impl NetPolicy {
    /// Whether `ip` may be reached.
    pub fn allows(self, ip: IpAddr) -> bool {
        self.allow_private || !is_internal(ip)
    }

    /// Checks a URL's scheme and, for an IP-literal host, the address.
    ///
    /// # Errors
    /// A message saying why the destination is refused.
    pub fn check_url(self, url: &reqwest::Url) -> Result<(), String> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "scheme {:?} is not allowed (http, https)",
                url.scheme()
            ));
        }
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => {
                Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
            }
            Some(url::Host::Domain(_)) => None,
            None => return Err("the URL has no host".into()),
        };
        match ip {
            Some(ip) if !self.allows(ip) => Err(denied(ip)),
            _ => Ok(()),
        }
    }
}

/// The refusal message for `ip`.
pub fn denied(ip: IpAddr) -> String {
    format!(
        "destination {ip} is a private or loopback address, refused by the network policy (start the server with --allow-private-networks to allow it)"
    )
}

/// True for addresses inside the host or its private networks.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal_v4(v4);
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || v6 == Ipv6Addr::from([0, 0, 0, 0, 0, 0, 0, 1])
        }
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || (a == 100 && (64..128).contains(&b)) // 100.64.0.0/10
        || a == 0
}

/// A resolver that drops denied addresses; a name with only denied addresses fails to
/// resolve with the policy's message.
#[derive(Debug, Clone, Copy)]
pub struct PolicyResolver(pub NetPolicy);

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| policy.allows(a.ip()))
                .collect();
            if allowed.is_empty() {
                let msg = all
                    .first()
                    .map_or_else(|| format!("{host} did not resolve"), |a| denied(a.ip()));
                return Err(msg.into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_ranges_are_denied_by_default() {
        let deny = NetPolicy {
            allow_private: false,
        };
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert!(!deny.allows(ip), "{ip} must be denied");
            assert!(
                NetPolicy {
                    allow_private: true
                }
                .allows(ip)
            );
        }
        for ip in ["93.184.216.34", "2606:4700::1111", "172.32.0.1"] {
            assert!(deny.allows(ip.parse().expect("ip")), "{ip}");
        }
        let url = |s: &str| reqwest::Url::parse(s).expect("url");
        assert!(deny.check_url(&url("http://127.0.0.1:8080/x")).is_err());
        assert!(deny.check_url(&url("http://localhost/x")).is_err());
        assert!(deny.check_url(&url("http://[::1]/x")).is_err());
        assert!(deny.check_url(&url("file:///etc/passwd")).is_err());
        assert!(deny.check_url(&url("https://api.xero.com/x")).is_ok());
    }
}
