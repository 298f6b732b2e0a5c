//! The address of the client a request comes from, behind reverse proxies: what every
//! limit per address counts by and what the request log shows.
//!
//! Without trusted proxies (`TRUSTED_PROXIES`, empty by default) the client is the
//! connection's peer, whatever the request's headers say. When the peer is in a trusted
//! network, the client is read from the hops the proxies recorded: `Forwarded` (RFC 7239)
//! when the request has one, else `X-Forwarded-For`. The hops are walked right to left,
//! from the proxy nearest to us: trusted hops are skipped and the first untrusted one is
//! the client. Everything to its left was written by the client itself and may be made up,
//! so it is never believed. A hop that does not parse (`unknown`, an obfuscated id,
//! garbage) ends the walk at the last trusted hop seen: it is the one that forwarded that
//! hop, and nothing left of it can be vouched for.
//!
//! The address is computed once per request by the middleware and kept in the request's
//! extensions ([`ClientAddress`]); [`of`] reads it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use actix_web::HttpMessage;
use actix_web::http::header::{self, HeaderMap, HeaderName};
use ipnet::IpNet;

/// The client address of a request, in its extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// The client address of a request: the one the middleware computed, or the peer for a
/// request that did not pass through it.
pub fn of(req: &actix_web::HttpRequest) -> Option<IpAddr> {
    req.extensions()
        .get::<ClientAddress>()
        .map(|client| client.0)
        .or_else(|| req.peer_addr().map(|addr| addr.ip().to_canonical()))
}

/// The networks of the reverse proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// An entry of `TRUSTED_PROXIES` that is neither an address nor a CIDR network.
#[derive(Debug, thiserror::Error)]
#[error(
    "TRUSTED_PROXIES: `{0}` is neither an IP address nor a CIDR network (such as 10.0.0.0/8 or 2001:db8::/32)"
)]
pub struct InvalidTrustedProxy(pub String);

impl TrustedProxies {
    /// Parses a comma-separated list of CIDR networks; a bare address is a network of one
    /// (/32, /128). Blank entries are skipped, so that an empty setting trusts no one.
    pub fn parse(list: &str) -> Result<TrustedProxies, InvalidTrustedProxy> {
        list.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                IpNet::from_str(entry)
                    .map(|net| net.trunc())
                    .or_else(|_| IpAddr::from_str(entry).map(IpNet::from))
                    .map_err(|_| InvalidTrustedProxy(entry.to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` (an IPv4-mapped IPv6 address as its IPv4 address) is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }
}

impl std::fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&list.join(","))
    }
}

/// The client address of a request from `peer` with `headers` (see the module doc).
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted.contains(peer) {
        return peer;
    }
    let hops = if headers.contains_key(header::FORWARDED) {
        forwarded_hops(headers)
    } else {
        forwarded_for_hops(headers, &header::X_FORWARDED_FOR)
    };
    let mut last_trusted = peer;
    for hop in hops.iter().rev() {
        match hop {
            Some(ip) if trusted.contains(*ip) => last_trusted = *ip,
            Some(ip) => return *ip,
            None => return last_trusted,
        }
    }
    // Every hop was trusted: the left-most is as far as the chain goes.
    last_trusted
}

/// The `for=` of each element of every `Forwarded` line, left to right; `None` for an
/// element without one or whose node is not an address.
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let mut hops = Vec::new();
    for line in headers.get_all(header::FORWARDED) {
        let Ok(line) = line.to_str() else {
            hops.push(None);
            continue;
        };
        for element in split_outside_quotes(line, ',') {
            if element.trim().is_empty() {
                continue;
            }
            let node = split_outside_quotes(element, ';')
                .into_iter()
                .filter_map(|pair| pair.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
                .and_then(|(_, value)| node_address(unquote(value.trim())));
            hops.push(node);
        }
    }
    hops
}

/// The hops of every line of a comma-separated list header (`X-Forwarded-For`), the
/// lines in the order they came.
fn forwarded_for_hops(headers: &HeaderMap, name: &HeaderName) -> Vec<Option<IpAddr>> {
    let mut hops = Vec::new();
    for line in headers.get_all(name) {
        let Ok(line) = line.to_str() else {
            hops.push(None);
            continue;
        };
        hops.extend(
            line.split(',')
                .map(str::trim)
                .filter(|hop| !hop.is_empty())
                .map(|hop| node_address(unquote(hop))),
        );
    }
    hops
}

/// `text` cut at each `separator` that is not inside a quoted string.
fn split_outside_quotes(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == separator && !quoted => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// The address of a node (RFC 7239 section 6): `192.0.2.43`, `192.0.2.43:47011`,
/// `[2001:db8::17]`, `[2001:db8::17]:4711`, a bare IPv6 address (as `X-Forwarded-For`
/// writes them); `None` for `unknown`, an obfuscated `_id` or anything else.
fn node_address(node: &str) -> Option<IpAddr> {
    if let Some(rest) = node.strip_prefix('[') {
        let (address, after) = rest.split_once(']')?;
        let ip = Ipv6Addr::from_str(address).ok()?;
        if !after.is_empty() && !after.strip_prefix(':').is_some_and(is_port) {
            return None;
        }
        return Some(IpAddr::V6(ip).to_canonical());
    }
    if let Ok(ip) = IpAddr::from_str(node) {
        return Some(ip.to_canonical());
    }
    let (address, port) = node.split_once(':')?;
    is_port(port).then_some(())?;
    Ipv4Addr::from_str(address).ok().map(IpAddr::V4)
}

/// A port, or an obfuscated one (`_abc`): the address before it still counts.
fn is_port(port: &str) -> bool {
    (!port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()))
        || (port.len() > 1
            && port.starts_with('_')
            && port[1..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')))
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// A header map with `name: line` for each line, in order.
    fn lines_of(name: HeaderName, lines: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for line in lines {
            map.append(name.clone(), HeaderValue::from_str(line).unwrap());
        }
        map
    }

    fn xff(lines: &[&str]) -> HeaderMap {
        lines_of(header::X_FORWARDED_FOR, lines)
    }

    fn forwarded(lines: &[&str]) -> HeaderMap {
        lines_of(header::FORWARDED, lines)
    }

    fn trusted(list: &str) -> TrustedProxies {
        TrustedProxies::parse(list).unwrap()
    }

    #[test]
    fn the_setting_takes_networks_and_bare_addresses_and_names_a_bad_entry() {
        let proxies = trusted(" 10.0.0.0/8, 192.0.2.7 ,2001:db8::/32,::1,");
        assert!(proxies.contains(ip("10.200.3.4")));
        assert!(proxies.contains(ip("192.0.2.7")));
        assert!(!proxies.contains(ip("192.0.2.8")));
        assert!(proxies.contains(ip("2001:db8:ffff::1")));
        assert!(proxies.contains(ip("::1")));
        assert!(!proxies.contains(ip("::2")));
        // An IPv4-mapped peer (a dual-stack listener) is its IPv4 address.
        assert!(proxies.contains(ip("::ffff:10.1.2.3")));
        assert_eq!(
            proxies.to_string(),
            "10.0.0.0/8,192.0.2.7/32,2001:db8::/32,::1/128"
        );
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        assert!(TrustedProxies::parse(" , ").unwrap().is_empty());
        for bad in [
            "10.0.0.0/33",
            "proxy.internal",
            "10.0.0.1/8/2",
            "2001:db8::/129",
        ] {
            let error = TrustedProxies::parse(&format!("127.0.0.1/32,{bad}")).unwrap_err();
            assert_eq!(error.0, bad);
            assert!(error.to_string().contains(&format!("`{bad}`")), "{error}");
        }
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_the_headers_say() {
        let peer = ip("198.51.100.1");
        let spoofed = xff(&["203.0.113.9"]);
        assert_eq!(resolve(peer, &spoofed, &TrustedProxies::default()), peer);
        assert_eq!(resolve(peer, &spoofed, &trusted("10.0.0.0/8")), peer);
        let spoofed = forwarded(&["for=203.0.113.9"]);
        assert_eq!(resolve(peer, &spoofed, &trusted("10.0.0.0/8")), peer);
        // A trusted peer without forwarding headers is the client itself.
        let proxy = ip("10.0.0.5");
        assert_eq!(
            resolve(proxy, &HeaderMap::new(), &trusted("10.0.0.0/8")),
            proxy
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client_and_spoofed_entries_left_of_it_are_not() {
        let proxies = trusted("10.0.0.0/8");
        let proxy = ip("10.0.0.1");
        // The client sent `X-Forwarded-For: 203.0.113.9`; its proxy appended what it saw.
        let chain = xff(&["203.0.113.9, 198.51.100.7"]);
        assert_eq!(resolve(proxy, &chain, &proxies), ip("198.51.100.7"));
        // Two proxies, both trusted, are skipped.
        let chain = xff(&["203.0.113.9, 198.51.100.7, 10.0.0.2"]);
        assert_eq!(resolve(proxy, &chain, &proxies), ip("198.51.100.7"));
        // Every hop trusted: the left-most.
        let chain = xff(&["10.9.9.9, 10.0.0.2"]);
        assert_eq!(resolve(proxy, &chain, &proxies), ip("10.9.9.9"));
        // Several lines are one list, in order.
        let chain = xff(&["203.0.113.9", "198.51.100.7", "10.0.0.2"]);
        assert_eq!(resolve(proxy, &chain, &proxies), ip("198.51.100.7"));
        // Ports and brackets are read past; IPv6 as it is; mapped IPv4 as IPv4.
        let chain = xff(&["192.0.2.1:5555, [2001:db8::1]:443"]);
        assert_eq!(resolve(proxy, &chain, &proxies), ip("2001:db8::1"));
        let chain = xff(&["2001:db8::2"]);
        assert_eq!(resolve(proxy, &chain, &proxies), ip("2001:db8::2"));
        let chain = xff(&["::ffff:192.0.2.3"]);
        assert_eq!(resolve(proxy, &chain, &proxies), ip("192.0.2.3"));
    }

    #[test]
    fn a_hop_that_does_not_parse_ends_the_walk_at_the_last_trusted_hop() {
        let proxies = trusted("10.0.0.0/8");
        let proxy = ip("10.0.0.1");
        for garbage in [
            "unknown",
            "_hidden",
            "not-an-address",
            "300.1.1.1",
            "1.2.3.4:x",
        ] {
            // Never the garbage, and never the (client-written) hop left of it.
            let chain = xff(&[&format!("203.0.113.9, {garbage}, 10.0.0.2")]);
            assert_eq!(
                resolve(proxy, &chain, &proxies),
                ip("10.0.0.2"),
                "{garbage}"
            );
            let chain = xff(&[&format!("203.0.113.9, {garbage}")]);
            assert_eq!(resolve(proxy, &chain, &proxies), proxy, "{garbage}");
        }
    }

    #[test]
    fn forwarded_is_read_with_its_quoting_and_wins_over_x_forwarded_for() {
        let proxies = trusted("10.0.0.0/8");
        let proxy = ip("10.0.0.1");
        let chain = forwarded(&[
            r#"for=203.0.113.9;proto=https, For="[2001:db8:cafe::17]:4711";by=10.0.0.1"#,
        ]);
        assert_eq!(resolve(proxy, &chain, &proxies), ip("2001:db8:cafe::17"));
        let chain = forwarded(&[r#"for="192.0.2.60:47011""#, "for=10.0.0.2;host=\"a,b\""]);
        assert_eq!(resolve(proxy, &chain, &proxies), ip("192.0.2.60"));
        // An IPv4 address with an obfuscated port still counts.
        let chain = forwarded(&[r#"for="192.0.2.61:_port""#]);
        assert_eq!(resolve(proxy, &chain, &proxies), ip("192.0.2.61"));
        // `Forwarded` is read when present; `X-Forwarded-For` is then ignored.
        let mut both = forwarded(&["for=192.0.2.62"]);
        both.append(
            header::X_FORWARDED_FOR,
            HeaderValue::from_static("198.51.100.1"),
        );
        assert_eq!(resolve(proxy, &both, &proxies), ip("192.0.2.62"));
        // Unknown and obfuscated nodes, an element without `for`: the walk stops there.
        for stop in [
            "for=unknown",
            "for=_gazonk",
            r#"for="_gazonk""#,
            "proto=http",
        ] {
            let chain = forwarded(&[&format!("for=203.0.113.9, {stop}, for=10.0.0.3")]);
            assert_eq!(resolve(proxy, &chain, &proxies), ip("10.0.0.3"), "{stop}");
        }
        // A port that is no port makes the node garbage.
        let chain = forwarded(&["for=[2001:db8::1]:99999999"]);
        assert_eq!(resolve(proxy, &chain, &proxies), proxy);
    }
}
