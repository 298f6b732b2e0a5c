//! Which webhook targets are allowed: the server must not be turned into a proxy into its
//! own network, nor be pointed at addresses that are not ordinary public hosts.
//!
//! A URL is refused when its host is, or resolves to, an address [`is_forbidden_ip`]
//! names — at creation and update (the literal address or the name's addresses) and again
//! at every delivery, after DNS resolution: [`check_target`] is that one check on both
//! paths, and the HTTP client resolves names through [`GuardedResolver`] (the same
//! rule), so a name cannot change its answer between the check and the
//! connection. `WEBHOOK_ALLOW_PRIVATE_TARGETS=true` lifts the rule (and allows plain
//! `http`), for development and tests.
//!
//! What is refused, in full (docs/EVENTS.md says the same):
//!
//! - every block of the IANA *IPv4 Special-Purpose Address Registry* and the IANA *IPv6
//!   Special-Purpose Address Registry* (<https://www.iana.org/assignments/iana-ipv4-special-registry/>,
//!   <https://www.iana.org/assignments/iana-ipv6-special-registry/>, RFC 6890 as amended
//!   by RFC 8190; contents as of the registries' 2025 updates, tables `V4_SPECIAL` and
//!   `V6_SPECIAL`) — the non-globally-reachable ones and, whole, the two "protocol
//!   assignments" blocks 192.0.0.0/24 and 2001::/23 and the AS112/AMT service blocks:
//!   anycast service addresses (PCP, TURN, AS112, AMT) answer from whatever router is
//!   nearest, often the local one, and no webhook receiver lives there;
//! - multicast (224.0.0.0/4, ff00::/8), the deprecated IPv6 site-local (fec0::/10,
//!   RFC 3879) and IPv4-compatible (::/96, RFC 4291 §2.5.5.1) blocks;
//! - any IPv6 address outside 2000::/3, the only block the IANA *IPv6 Address Space*
//!   registry allocates to global unicast, except the two below that stand for an IPv4
//!   address;
//! - the IPv6 forms that carry an IPv4 address, when that address is refused: IPv4-mapped
//!   (::ffff:0:0/96), NAT64 (64:ff9b::/96, RFC 6052), 6to4 (2002::/16, bits 16..48,
//!   RFC 3056) and Teredo (2001::/32, RFC 4380: the server in bits 32..64 and the client
//!   in the last 32 bits, inverted). The local-use NAT64 prefix 64:ff9b:1::/48 (RFC 8215)
//!   is refused whole: it is an operator's own translator.
//!
//! When IANA adds a block, add it to the table and to the tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;

/// An IPv4 block: its first address and prefix length, and what the registry calls it.
#[derive(Debug, Clone, Copy)]
struct V4Block {
    base: Ipv4Addr,
    len: u32,
    name: &'static str,
}

impl V4Block {
    const fn new(base: [u8; 4], len: u32, name: &'static str) -> V4Block {
        V4Block {
            base: Ipv4Addr::new(base[0], base[1], base[2], base[3]),
            len,
            name,
        }
    }

    fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX.checked_shl(32 - self.len).unwrap_or(0);
        ip.to_bits() & mask == self.base.to_bits() & mask
    }
}

/// An IPv6 block: its first address and prefix length, and what the registry calls it.
#[derive(Debug, Clone, Copy)]
struct V6Block {
    base: Ipv6Addr,
    len: u32,
    name: &'static str,
}

impl V6Block {
    const fn new(base: [u16; 8], len: u32, name: &'static str) -> V6Block {
        let [a, b, c, d, e, f, g, h] = base;
        V6Block {
            base: Ipv6Addr::new(a, b, c, d, e, f, g, h),
            len,
            name,
        }
    }

    fn contains(&self, ip: Ipv6Addr) -> bool {
        let mask = u128::MAX.checked_shl(128 - self.len).unwrap_or(0);
        ip.to_bits() & mask == self.base.to_bits() & mask
    }
}

/// Every entry of the IANA IPv4 Special-Purpose Address Registry (more-specific entries
/// listed under the block holding them; any later sub-allocation of a listed block is
/// refused with it), then multicast from the IPv4 Multicast Address Space registry.
const V4_SPECIAL: &[V4Block] = &[
    V4Block::new([0, 0, 0, 0], 8, "\"This network\" (RFC 791)"),
    V4Block::new([0, 0, 0, 0], 32, "\"This host on this network\" (RFC 1122)"),
    V4Block::new([10, 0, 0, 0], 8, "Private-Use (RFC 1918)"),
    V4Block::new([100, 64, 0, 0], 10, "Shared Address Space (RFC 6598)"),
    V4Block::new([127, 0, 0, 0], 8, "Loopback (RFC 1122)"),
    V4Block::new([169, 254, 0, 0], 16, "Link Local (RFC 3927)"),
    V4Block::new([172, 16, 0, 0], 12, "Private-Use (RFC 1918)"),
    V4Block::new([192, 0, 0, 0], 24, "IETF Protocol Assignments (RFC 6890)"),
    V4Block::new(
        [192, 0, 0, 0],
        29,
        "IPv4 Service Continuity Prefix (RFC 7335)",
    ),
    V4Block::new([192, 0, 0, 8], 32, "IPv4 dummy address (RFC 7600)"),
    V4Block::new(
        [192, 0, 0, 9],
        32,
        "Port Control Protocol Anycast (RFC 7723)",
    ),
    V4Block::new([192, 0, 0, 10], 32, "TURN Anycast (RFC 8155)"),
    V4Block::new([192, 0, 0, 170], 32, "NAT64/DNS64 Discovery (RFC 8880)"),
    V4Block::new([192, 0, 0, 171], 32, "NAT64/DNS64 Discovery (RFC 8880)"),
    V4Block::new([192, 0, 2, 0], 24, "Documentation, TEST-NET-1 (RFC 5737)"),
    V4Block::new([192, 31, 196, 0], 24, "AS112-v4 (RFC 7535)"),
    V4Block::new([192, 52, 193, 0], 24, "AMT (RFC 7450)"),
    V4Block::new(
        [192, 88, 99, 0],
        24,
        "Deprecated 6to4 Relay Anycast (RFC 7526)",
    ),
    V4Block::new([192, 168, 0, 0], 16, "Private-Use (RFC 1918)"),
    V4Block::new(
        [192, 175, 48, 0],
        24,
        "Direct Delegation AS112 Service (RFC 7534)",
    ),
    V4Block::new([198, 18, 0, 0], 15, "Benchmarking (RFC 2544)"),
    V4Block::new(
        [198, 51, 100, 0],
        24,
        "Documentation, TEST-NET-2 (RFC 5737)",
    ),
    V4Block::new([203, 0, 113, 0], 24, "Documentation, TEST-NET-3 (RFC 5737)"),
    V4Block::new([240, 0, 0, 0], 4, "Reserved (RFC 1112)"),
    V4Block::new(
        [255, 255, 255, 255],
        32,
        "Limited Broadcast (RFC 919, RFC 8190)",
    ),
    V4Block::new([224, 0, 0, 0], 4, "Multicast (RFC 5771)"),
];

/// Every entry of the IANA IPv6 Special-Purpose Address Registry except the four that
/// carry an IPv4 address ([`embedded_v4`]), then the deprecated and multicast blocks.
/// (2001::/32, Teredo, lies inside 2001::/23 and is judged by its IPv4 addresses.)
const V6_SPECIAL: &[V6Block] = &[
    V6Block::new([0, 0, 0, 0, 0, 0, 0, 1], 128, "Loopback (RFC 4291)"),
    V6Block::new([0, 0, 0, 0, 0, 0, 0, 0], 128, "Unspecified (RFC 4291)"),
    V6Block::new(
        [0x64, 0xff9b, 1, 0, 0, 0, 0, 0],
        48,
        "Local-use IPv4-IPv6 Translation (RFC 8215)",
    ),
    V6Block::new(
        [0x100, 0, 0, 0, 0, 0, 0, 0],
        64,
        "Discard-Only Address Block (RFC 6666)",
    ),
    V6Block::new(
        [0x100, 0, 0, 1, 0, 0, 0, 0],
        64,
        "Dummy IPv6 Prefix (RFC 9780)",
    ),
    V6Block::new(
        [0x2001, 0, 0, 0, 0, 0, 0, 0],
        23,
        "IETF Protocol Assignments (RFC 2928)",
    ),
    V6Block::new(
        [0x2001, 1, 0, 0, 0, 0, 0, 1],
        128,
        "Port Control Protocol Anycast (RFC 7723)",
    ),
    V6Block::new(
        [0x2001, 1, 0, 0, 0, 0, 0, 2],
        128,
        "TURN Anycast (RFC 8155)",
    ),
    V6Block::new(
        [0x2001, 1, 0, 0, 0, 0, 0, 3],
        128,
        "DNS-SD Service Registration Protocol Anycast (RFC 9665)",
    ),
    V6Block::new([0x2001, 2, 0, 0, 0, 0, 0, 0], 48, "Benchmarking (RFC 5180)"),
    V6Block::new([0x2001, 3, 0, 0, 0, 0, 0, 0], 32, "AMT (RFC 7450)"),
    V6Block::new([0x2001, 4, 0x112, 0, 0, 0, 0, 0], 48, "AS112-v6 (RFC 7535)"),
    V6Block::new(
        [0x2001, 0x10, 0, 0, 0, 0, 0, 0],
        28,
        "Deprecated, previously ORCHID (RFC 4843)",
    ),
    V6Block::new([0x2001, 0x20, 0, 0, 0, 0, 0, 0], 28, "ORCHIDv2 (RFC 7343)"),
    V6Block::new(
        [0x2001, 0x30, 0, 0, 0, 0, 0, 0],
        28,
        "Drone Remote ID Protocol Entity Tags (RFC 9374)",
    ),
    V6Block::new(
        [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0],
        32,
        "Documentation (RFC 3849)",
    ),
    V6Block::new(
        [0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0],
        48,
        "Direct Delegation AS112 Service (RFC 7534)",
    ),
    V6Block::new(
        [0x3fff, 0, 0, 0, 0, 0, 0, 0],
        20,
        "Documentation (RFC 9637)",
    ),
    V6Block::new(
        [0x5f00, 0, 0, 0, 0, 0, 0, 0],
        16,
        "Segment Routing (SRv6) SIDs (RFC 9602)",
    ),
    V6Block::new([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, "Unique-Local (RFC 4193)"),
    V6Block::new(
        [0xfe80, 0, 0, 0, 0, 0, 0, 0],
        10,
        "Link-Local Unicast (RFC 4291)",
    ),
    // Not in the special-purpose registry:
    V6Block::new(
        [0, 0, 0, 0, 0, 0, 0, 0],
        96,
        "IPv4-compatible, deprecated (RFC 4291)",
    ),
    V6Block::new(
        [0xfec0, 0, 0, 0, 0, 0, 0, 0],
        10,
        "Site-local, deprecated (RFC 3879)",
    ),
    V6Block::new([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "Multicast (RFC 4291)"),
];

/// 2000::/3: the only global unicast block of the IANA IPv6 Address Space registry.
const V6_GLOBAL_UNICAST: V6Block = V6Block::new([0x2000, 0, 0, 0, 0, 0, 0, 0], 3, "Global Unicast");

const V6_MAPPED: V6Block =
    V6Block::new([0, 0, 0, 0, 0, 0xffff, 0, 0], 96, "IPv4-mapped (RFC 4291)");
const V6_NAT64: V6Block = V6Block::new(
    [0x64, 0xff9b, 0, 0, 0, 0, 0, 0],
    96,
    "IPv4-IPv6 Translation (RFC 6052)",
);
const V6_6TO4: V6Block = V6Block::new([0x2002, 0, 0, 0, 0, 0, 0, 0], 16, "6to4 (RFC 3056)");
const V6_TEREDO: V6Block = V6Block::new([0x2001, 0, 0, 0, 0, 0, 0, 0], 32, "TEREDO (RFC 4380)");

/// Whether a webhook may not be sent to `ip` (see the module documentation).
pub fn is_forbidden_ip(ip: IpAddr) -> bool {
    refusal(ip).is_some()
}

/// Why `ip` is refused: the name of the block it is in (for an IPv6 form carrying an
/// IPv4 address, the IPv4 address's block); `None` when it is allowed.
pub fn refusal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_refusal(v4),
        IpAddr::V6(v6) => v6_refusal(v6),
    }
}

fn v4_refusal(ip: Ipv4Addr) -> Option<&'static str> {
    V4_SPECIAL
        .iter()
        .find(|block| block.contains(ip))
        .map(|block| block.name)
}

fn v6_refusal(ip: Ipv6Addr) -> Option<&'static str> {
    // A form standing for IPv4 addresses reaches (or tunnels to) them: judge those.
    if let Some(carried) = embedded_v4(ip) {
        return carried.into_iter().find_map(v4_refusal);
    }
    if let Some(block) = V6_SPECIAL.iter().find(|block| block.contains(ip)) {
        return Some(block.name);
    }
    (!V6_GLOBAL_UNICAST.contains(ip)).then_some("outside IPv6 global unicast (2000::/3)")
}

/// The IPv4 addresses an IPv6 address carries, when it is one of the forms that do:
/// IPv4-mapped and NAT64 (the last 32 bits), 6to4 (bits 16..48), Teredo (the server in
/// bits 32..64, the client in the last 32 bits with every bit inverted). Forms carrying
/// one address give it twice.
fn embedded_v4(ip: Ipv6Addr) -> Option<[Ipv4Addr; 2]> {
    let bits = ip.to_bits();
    let low = Ipv4Addr::from_bits(bits as u32);
    if V6_MAPPED.contains(ip) || V6_NAT64.contains(ip) {
        return Some([low, low]);
    }
    if V6_6TO4.contains(ip) {
        let carried = Ipv4Addr::from_bits((bits >> 80) as u32);
        return Some([carried, carried]);
    }
    if V6_TEREDO.contains(ip) {
        let server = Ipv4Addr::from_bits((bits >> 64) as u32);
        let client = Ipv4Addr::from_bits(!(bits as u32));
        return Some([server, client]);
    }
    None
}

/// `Ok` when no address in `addresses` is refused; else why, naming the block.
fn check_addresses(addresses: &[IpAddr]) -> Result<(), String> {
    match addresses.iter().find_map(|ip| refusal(*ip)) {
        Some(block) => Err(format!(
            "the host is, or resolves to, an address that is not public: {block}"
        )),
        None => Ok(()),
    }
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
/// The one check of both endpoint writes (create, update) and every delivery.
pub async fn check_target(url: &Url, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    let host = url
        .host_str()
        .ok_or_else(|| "must name a host".to_owned())?;
    // An IPv6 literal comes bracketed; an IPv4 one (in any spelling the URL parser
    // accepts: `0x7f.1`, `2130706433`) comes normalised to dotted decimal.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<IpAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => resolve(host).await?,
    };
    check_addresses(&addresses)
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
/// resolver and refuses names that lead to a forbidden address (the same check as
/// [`check_target`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().to_owned();
        Box::pin(async move {
            let addresses = resolve(&name).await?;
            check_addresses(&addresses).map_err(|why| format!("`{name}`: {why}"))?;
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

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// Written out by hand from the registries, not derived from the tables: a sample in
    /// every entry (its first and last address where that is a boundary worth pinning),
    /// and the allowed addresses just outside.
    #[test]
    fn every_ipv4_special_purpose_entry_is_refused_and_its_neighbours_are_not() {
        let refused = [
            ("0.0.0.0", "\"This network\""),
            ("0.255.255.255", "\"This network\""),
            ("10.0.0.0", "Private-Use"),
            ("10.255.255.255", "Private-Use"),
            ("100.64.0.0", "Shared Address Space"),
            ("100.127.255.255", "Shared Address Space"),
            ("127.0.0.1", "Loopback"),
            ("127.255.255.255", "Loopback"),
            ("169.254.0.0", "Link Local"),
            ("169.254.169.254", "Link Local"),
            ("169.254.255.255", "Link Local"),
            ("172.16.0.0", "Private-Use"),
            ("172.31.255.255", "Private-Use"),
            ("192.0.0.0", "IETF Protocol Assignments"),
            ("192.0.0.7", "IETF Protocol Assignments"),
            ("192.0.0.8", "IETF Protocol Assignments"),
            ("192.0.0.9", "IETF Protocol Assignments"),
            ("192.0.0.10", "IETF Protocol Assignments"),
            ("192.0.0.170", "IETF Protocol Assignments"),
            ("192.0.0.171", "IETF Protocol Assignments"),
            ("192.0.0.255", "IETF Protocol Assignments"),
            ("192.0.2.0", "TEST-NET-1"),
            ("192.0.2.255", "TEST-NET-1"),
            ("192.31.196.1", "AS112-v4"),
            ("192.52.193.1", "AMT"),
            ("192.88.99.0", "6to4 Relay Anycast"),
            ("192.88.99.255", "6to4 Relay Anycast"),
            ("192.168.0.0", "Private-Use"),
            ("192.168.255.255", "Private-Use"),
            ("192.175.48.1", "AS112 Service"),
            ("198.18.0.0", "Benchmarking"),
            ("198.19.255.255", "Benchmarking"),
            ("198.51.100.0", "TEST-NET-2"),
            ("198.51.100.255", "TEST-NET-2"),
            ("203.0.113.0", "TEST-NET-3"),
            ("203.0.113.255", "TEST-NET-3"),
            ("224.0.0.1", "Multicast"),
            ("239.255.255.255", "Multicast"),
            ("240.0.0.0", "Reserved"),
            ("254.255.255.255", "Reserved"),
            ("255.255.255.254", "Reserved"),
            ("255.255.255.255", "Reserved"),
        ];
        for (address, block) in refused {
            let why = refusal(ip(address));
            assert!(
                why.is_some_and(|why| why.contains(block)),
                "{address}: expected {block}, got {why:?}"
            );
        }
        // The first entry naming a block wins, so these name the outer block; the
        // more-specific entries must still match on their own.
        for (address, block) in [
            ("0.0.0.0", "This host on this network"),
            ("192.0.0.8", "IPv4 dummy address"),
            ("192.0.0.9", "Port Control Protocol Anycast"),
            ("192.0.0.10", "TURN Anycast"),
            ("192.0.0.5", "Service Continuity"),
            ("192.0.0.170", "NAT64/DNS64 Discovery"),
            ("192.0.0.171", "NAT64/DNS64 Discovery"),
            ("255.255.255.255", "Limited Broadcast"),
        ] {
            let IpAddr::V4(v4) = ip(address) else {
                unreachable!()
            };
            assert!(
                V4_SPECIAL
                    .iter()
                    .any(|b| b.name.contains(block) && b.contains(v4)),
                "{address}: no entry {block}"
            );
        }
        for address in [
            "1.0.0.0",
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.0",
            "192.0.3.0",
            "192.31.195.255",
            "192.31.197.0",
            "192.52.192.255",
            "192.52.194.0",
            "192.88.98.255",
            "192.88.100.0",
            "192.167.255.255",
            "192.169.0.0",
            "192.175.47.255",
            "192.175.49.0",
            "198.17.255.255",
            "198.20.0.0",
            "198.51.99.255",
            "198.51.101.0",
            "203.0.112.255",
            "203.0.114.0",
            "223.255.255.255",
        ] {
            assert_eq!(refusal(ip(address)), None, "{address}");
        }
    }

    #[test]
    fn every_ipv6_special_purpose_entry_is_refused_and_its_neighbours_are_not() {
        let refused = [
            ("::", "Unspecified"),
            ("::1", "Loopback"),
            ("64:ff9b:1::", "Local-use IPv4-IPv6 Translation"),
            (
                "64:ff9b:1:ffff:ffff:ffff:ffff:ffff",
                "Local-use IPv4-IPv6 Translation",
            ),
            ("100::", "Discard-Only"),
            ("100::ffff:ffff:ffff:ffff", "Discard-Only"),
            ("100:0:0:1::", "Dummy IPv6 Prefix"),
            ("100:0:0:1:ffff:ffff:ffff:ffff", "Dummy IPv6 Prefix"),
            ("2001:1::1", "IETF Protocol Assignments"),
            ("2001:1::2", "IETF Protocol Assignments"),
            ("2001:1::3", "IETF Protocol Assignments"),
            ("2001:2::", "IETF Protocol Assignments"),
            (
                "2001:2:0:ffff:ffff:ffff:ffff:ffff",
                "IETF Protocol Assignments",
            ),
            ("2001:3::1", "IETF Protocol Assignments"),
            ("2001:4:112::1", "IETF Protocol Assignments"),
            ("2001:10::1", "IETF Protocol Assignments"),
            ("2001:20::1", "IETF Protocol Assignments"),
            ("2001:30::1", "IETF Protocol Assignments"),
            ("2001:1::", "IETF Protocol Assignments"),
            (
                "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff",
                "IETF Protocol Assignments",
            ),
            ("2001:db8::", "Documentation (RFC 3849)"),
            ("2001:db8::1", "Documentation (RFC 3849)"),
            (
                "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
                "Documentation (RFC 3849)",
            ),
            ("2620:4f:8000::1", "AS112 Service"),
            ("3fff::", "Documentation (RFC 9637)"),
            (
                "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff",
                "Documentation (RFC 9637)",
            ),
            ("5f00::1", "SRv6"),
            ("5f00:ffff::1", "SRv6"),
            ("fc00::1", "Unique-Local"),
            ("fd12:3456::1", "Unique-Local"),
            ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "Unique-Local"),
            ("fe80::1", "Link-Local"),
            ("febf:ffff::1", "Link-Local"),
            ("fec0::1", "Site-local"),
            ("feff:ffff::1", "Site-local"),
            ("ff00::", "Multicast"),
            ("ff02::1", "Multicast"),
            ("ff0e::1", "Multicast"),
            // Outside 2000::/3: unallocated, never a public host.
            ("::1:0:0:1", "global unicast"),
            ("1fff:ffff::1", "global unicast"),
            ("4000::1", "global unicast"),
            ("64:ff9b:2::1", "global unicast"),
            ("e000::1", "global unicast"),
        ];
        for (address, block) in refused {
            let why = refusal(ip(address));
            assert!(
                why.is_some_and(|why| why.contains(block)),
                "{address}: expected {block}, got {why:?}"
            );
        }
        // More-specific entries inside 2001::/23, named on their own too.
        for (address, block) in [
            ("2001:1::1", "Port Control Protocol Anycast"),
            ("2001:1::2", "TURN Anycast"),
            ("2001:1::3", "DNS-SD Service Registration Protocol Anycast"),
            ("2001:2::1", "Benchmarking"),
            ("2001:3::1", "AMT"),
            ("2001:4:112::1", "AS112-v6"),
            ("2001:10::1", "ORCHID"),
            ("2001:20::1", "ORCHIDv2"),
            ("2001:30::1", "Drone Remote ID"),
        ] {
            let IpAddr::V6(v6) = ip(address) else {
                unreachable!()
            };
            assert!(
                V6_SPECIAL
                    .iter()
                    .any(|b| b.name.contains(block) && b.contains(v6)),
                "{address}: no entry {block}"
            );
        }
        for address in [
            "2000::1",
            "2001:200::1",
            "2001:4860:4860::8888",
            "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
            "2001:db9::",
            "2003::1",
            "2400:cb00::1",
            "2606:4700::1111",
            "2620:4f:7fff::1",
            "2620:4f:8001::1",
            "2a00:1450:4001::200e",
            "3ffe::1",
            "3fff:1000::",
        ] {
            assert_eq!(refusal(ip(address)), None, "{address}");
        }
    }

    /// The IPv6 forms that carry an IPv4 address, each pointing at a private and at a
    /// public one.
    #[test]
    fn ipv6_forms_carrying_an_ipv4_address_are_judged_by_it() {
        let cases = [
            // IPv4-mapped: the last 32 bits.
            ("::ffff:10.0.0.1", Some("Private-Use")),
            ("::ffff:127.0.0.1", Some("Loopback")),
            ("::ffff:169.254.169.254", Some("Link Local")),
            ("::ffff:198.18.0.1", Some("Benchmarking")),
            ("::ffff:93.184.216.34", None),
            // NAT64, well-known prefix: the last 32 bits.
            ("64:ff9b::10.0.0.1", Some("Private-Use")),
            ("64:ff9b::127.0.0.1", Some("Loopback")),
            ("64:ff9b::93.184.216.34", None),
            // NAT64, local-use prefix: refused whatever it carries.
            ("64:ff9b:1::a00:1", Some("Local-use")),
            ("64:ff9b:1:5db8:d8:2200::", Some("Local-use")),
            // IPv4-compatible (deprecated): refused whatever it carries.
            ("::10.0.0.1", Some("IPv4-compatible")),
            ("::93.184.216.34", Some("IPv4-compatible")),
            // 6to4: bits 16..48, whatever follows.
            ("2002:7f00:1::", Some("Loopback")),
            ("2002:a00:1::1", Some("Private-Use")),
            ("2002:c0a8:101:1:2:3:4:5", Some("Private-Use")),
            ("2002:a9fe:a9fe::", Some("Link Local")),
            ("2002:c612:1::", Some("Benchmarking")),
            ("2002:5db8:d822::", None),
            ("2002:5db8:d822:ffff:1:2:3:4", None),
            // Teredo: server 65.54.227.120 (bits 32..64), client in the last 32 bits
            // inverted. RFC 4380's own example has the client 192.0.2.45.
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", Some("TEST-NET-1")),
            // Client 127.0.0.1 (inverted: 80ff:fffe).
            ("2001:0:4136:e378:8000:63bf:80ff:fffe", Some("Loopback")),
            // Client 10.0.0.1 (inverted: f5ff:fffe).
            ("2001:0:4136:e378:8000:63bf:f5ff:fffe", Some("Private-Use")),
            // Server 10.0.0.1, client 93.184.216.34 (inverted: a247:27dd).
            ("2001:0:a00:1:8000:63bf:a247:27dd", Some("Private-Use")),
            // Both public.
            ("2001:0:4136:e378:8000:63bf:a247:27dd", None),
        ];
        for (address, expected) in cases {
            let why = refusal(ip(address));
            match expected {
                Some(block) => assert!(
                    why.is_some_and(|why| why.contains(block)),
                    "{address}: expected {block}, got {why:?}"
                ),
                None => assert_eq!(why, None, "{address}"),
            }
        }
    }

    /// Each table entry is refused from its first to its last address (the tables and
    /// their masks agree with the prefix lengths).
    #[test]
    fn every_table_entry_is_refused_from_first_to_last_address() {
        for block in V4_SPECIAL {
            let host_bits = u32::MAX.checked_shr(block.len).unwrap_or(0);
            let first = Ipv4Addr::from_bits(block.base.to_bits() & !host_bits);
            let last = Ipv4Addr::from_bits(block.base.to_bits() | host_bits);
            assert_eq!(first, block.base, "{} is not a block start", block.name);
            for address in [first, last] {
                assert!(
                    is_forbidden_ip(IpAddr::V4(address)),
                    "{address} ({})",
                    block.name
                );
            }
        }
        for block in V6_SPECIAL {
            let host_bits = u128::MAX.checked_shr(block.len).unwrap_or(0);
            let first = Ipv6Addr::from_bits(block.base.to_bits() & !host_bits);
            let last = Ipv6Addr::from_bits(block.base.to_bits() | host_bits);
            assert_eq!(first, block.base, "{} is not a block start", block.name);
            for address in [first, last] {
                assert!(
                    is_forbidden_ip(IpAddr::V6(address)),
                    "{address} ({})",
                    block.name
                );
            }
        }
    }

    #[tokio::test]
    async fn literal_targets_are_checked_without_resolving() {
        for target in [
            "https://[2002:7f00:1::]/",
            "https://[2001:db8::1]/",
            "https://198.18.0.1/",
            "https://0x7f.1/",
            "https://2130706433/",
            "https://[::ffff:7f00:1]/",
        ] {
            let url = parse_url(target, false).unwrap();
            let refused = check_target(&url, false).await;
            assert!(
                refused.as_ref().is_err_and(|m| m.contains("not public")),
                "{target}: {refused:?}"
            );
            assert!(check_target(&url, true).await.is_ok(), "{target}");
        }
        for target in ["https://93.184.216.34/", "https://[2606:4700::1111]/"] {
            let url = parse_url(target, false).unwrap();
            assert!(check_target(&url, false).await.is_ok(), "{target}");
        }
    }

    #[tokio::test]
    async fn the_client_resolver_refuses_names_leading_inside() {
        use reqwest::dns::Resolve;
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let resolved = GuardedResolver.resolve(name).await;
        let error = resolved.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("not public"), "{error}");
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
