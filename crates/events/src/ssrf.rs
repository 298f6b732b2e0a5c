//! Which webhook targets are allowed: the server must not be turned into a proxy into its
//! own network. A URL is refused when its host is, or resolves to, a loopback, private,
//! link-local, unique-local, shared, multicast, broadcast or unspecified address — at
//! creation and again at every delivery, after DNS resolution (and the HTTP client
//! resolves through [`GuardedResolver`], so a name cannot change its answer between the
//! check and the connection). `WEBHOOK_ALLOW_PRIVATE_TARGETS=true` lifts the rule (and
//! allows plain `http`), for development and tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;

/// Whether a webhook may not be sent to `ip`.
pub fn is_forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_forbidden_v4(v4);
            }
            is_forbidden_v6(v6)
        }
    }
}

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        // 0.0.0.0/8 ("this network") and 100.64.0.0/10 (carrier-grade NAT).
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        // 192.0.0.0/24 (protocol assignments) and 240.0.0.0/4 (reserved).
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        || a >= 240
}

fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // fc00::/7 unique-local, fe80::/10 link-local, fec0::/10 (old site-local).
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first & 0xffc0) == 0xfec0
        // 64:ff9b::/96 NAT64 and ::/96 IPv4-compatible: judged by the embedded address.
        || (ip.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || ip.segments()[..6] == [0; 6])
            && is_forbidden_v4(Ipv4Addr::from(
                (u32::from(ip.segments()[6]) << 16) | u32::from(ip.segments()[7]),
            ))
}

/// Parses and checks a webhook URL's shape: absolute, `https` (or `http` when private
/// targets are allowed), a host, no credentials.
pub fn parse_url(raw: &str, allow_private: bool) -> Result<Url, String> {
    if raw.len() > 2048 {
        return Err("must be at most 2048 characters".into());
    }
    let url = Url::parse(raw).map_err(|_| "must be an absolute URL".to_owned())?;
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        "http" => return Err("must use https".into()),
        _ => return Err("must be an https URL".into()),
    }
    if url.host().is_none() {
        return Err("must name a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".into());
    }
    Ok(url)
}

/// Checks where `url` leads: refused when the host is (or resolves to) an address
/// [`is_forbidden_ip`] names, unless private targets are allowed. Resolves the name.
pub async fn check_target(url: &Url, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    let host = url
        .host_str()
        .ok_or_else(|| "must name a host".to_owned())?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<IpAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => resolve(host).await?,
    };
    if addresses.iter().copied().any(is_forbidden_ip) {
        return Err("the host is, or resolves to, a private or local address".into());
    }
    Ok(())
}

async fn resolve(name: &str) -> Result<Vec<IpAddr>, String> {
    let found: Vec<IpAddr> = tokio::net::lookup_host((name, 0))
        .await
        .map_err(|_| format!("the host `{name}` cannot be resolved"))?
        .map(|addr| addr.ip())
        .collect();
    if found.is_empty() {
        return Err(format!("the host `{name}` cannot be resolved"));
    }
    Ok(found)
}

/// The HTTP client's resolver when private targets are refused: resolves with the system
/// resolver and refuses names that lead to a forbidden address.
#[derive(Debug, Clone, Copy, Default)]
pub struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().to_owned();
        Box::pin(async move {
            let addresses = resolve(&name).await?;
            if addresses.iter().copied().any(is_forbidden_ip) {
                return Err(format!("`{name}` resolves to a private or local address").into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(
                addresses
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, 0))
                    .collect::<Vec<_>>()
                    .into_iter(),
            );
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_and_private_addresses_are_forbidden() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(is_forbidden_ip(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(!is_forbidden_ip(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls_need_https_unless_private_targets_are_allowed() {
        assert!(parse_url("https://hooks.example.com/x", false).is_ok());
        assert!(parse_url("http://hooks.example.com/x", false).is_err());
        assert!(parse_url("http://hooks.example.com/x", true).is_ok());
        assert!(parse_url("ftp://hooks.example.com/x", true).is_err());
        assert!(parse_url("https://user:pw@hooks.example.com/x", false).is_err());
        assert!(parse_url("not a url", false).is_err());
    }
}
