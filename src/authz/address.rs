//! Client addresses: where the client IP comes from, and CIDR sets to test it against.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// Where the client's address is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientIpSource {
    /// Envoy's downstream address (`source.address`), which already follows the connection
    /// manager's own client detection (`use_remote_address`, `xff_num_trusted_hops`).
    Peer,
    /// The N-th address from the right of `X-Forwarded-For` (1 = rightmost). Only entries added
    /// by trusted proxies are trustworthy; anything left of them is client-controlled.
    ForwardedFor { trusted_hops: usize },
}

impl ClientIpSource {
    /// `peer` is Envoy's `source.address`; `forwarded_for` every `x-forwarded-for` value in order.
    /// An entry that is not an address (not text, a name, a zone id) gives no address, which no
    /// address check lets through.
    pub fn resolve<'h>(
        &self,
        peer: Option<&str>,
        forwarded_for: impl Iterator<Item = &'h [u8]>,
    ) -> Option<IpAddr> {
        match self {
            ClientIpSource::Peer => peer.and_then(parse_address),
            ClientIpSource::ForwardedFor { trusted_hops } => {
                let entries: Vec<&[u8]> = forwarded_for
                    .flat_map(|value| value.split(|b| *b == b','))
                    .collect();
                let index = entries.len().checked_sub(*trusted_hops)?;
                let entry = std::str::from_utf8(entries.get(index)?).ok()?;
                // Some proxies append `ip:port` or `[v6]:port`; the address is the same.
                parse_address(entry)
            }
        }
    }
}

/// Parses `1.2.3.4`, `1.2.3.4:80`, `::1` or `[::1]:80`, treating IPv4-mapped IPv6 as IPv4.
pub fn parse_address(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    parse_ip(text).or_else(|| text.parse::<SocketAddr>().ok().map(|s| canonical(s.ip())))
}

pub fn parse_ip(text: &str) -> Option<IpAddr> {
    text.parse::<IpAddr>().ok().map(canonical)
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Parses a CIDR or a single address (a host route), normalising IPv4-mapped IPv6 networks.
pub fn parse_net(text: &str) -> Option<IpNet> {
    let net = match text.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => IpNet::from(text.parse::<IpAddr>().ok()?),
    };
    if let IpNet::V6(v6) = net
        && let (Some(v4), true) = (v6.addr().to_ipv4_mapped(), v6.prefix_len() >= 96)
    {
        return ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
            .ok()
            .map(IpNet::V4);
    }
    Some(net.trunc())
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetSet {
    nets: Vec<IpNet>,
}

impl NetSet {
    pub fn new(nets: Vec<IpNet>) -> NetSet {
        NetSet { nets }
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|net| net.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_addresses() {
        let cases = [
            ("127.0.0.5:4000", Some("127.0.0.5")),
            ("[::1]:4000", Some("::1")),
            ("[::ffff:10.1.2.3]:1", Some("10.1.2.3")),
            ("::1", Some("::1")),
            ("garbage", None),
        ];
        for (peer, expected) in cases {
            let got = ClientIpSource::Peer.resolve(Some(peer), std::iter::empty::<&[u8]>());
            assert_eq!(got, expected.map(|e| e.parse().unwrap()), "{peer}");
        }
    }

    #[test]
    fn forwarded_for_counts_from_the_right() {
        let xff = ["203.0.113.9, 198.51.100.7", " 10.0.0.1 "];
        let cases = [
            (1, Some("10.0.0.1")),
            (2, Some("198.51.100.7")),
            (3, Some("203.0.113.9")),
            (4, None),
        ];
        for (hops, expected) in cases {
            let source = ClientIpSource::ForwardedFor { trusted_hops: hops };
            let got = source.resolve(None, xff.iter().map(|v| v.as_bytes()));
            assert_eq!(got, expected.map(|e| e.parse().unwrap()), "{hops}");
        }
        let source = ClientIpSource::ForwardedFor { trusted_hops: 1 };
        let one = |value: &'static [u8]| source.resolve(None, [value].into_iter());
        assert_eq!(one(b"1.2.3.4, junk"), None);
        assert_eq!(one(b"junk, 1.2.3.4:8080"), parse_ip("1.2.3.4"));
        assert_eq!(one(b"[2001:db8::1]:443"), parse_ip("2001:db8::1"));
        assert_eq!(one(b"1.2.3.4, \xff"), None);
        assert_eq!(one(b"fe80::1%eth0"), None);
        assert_eq!(source.resolve(None, std::iter::empty::<&[u8]>()), None);
    }

    #[test]
    fn nets_match_both_families_and_mapped_addresses() {
        let set = NetSet::new(
            [
                "10.0.0.0/8",
                "2001:db8::/32",
                "192.0.2.7",
                "::ffff:172.16.0.0/108",
            ]
            .iter()
            .map(|n| parse_net(n).unwrap())
            .collect(),
        );
        for (ip, expected) in [
            ("10.9.9.9", true),
            ("11.0.0.1", false),
            ("2001:db8::1", true),
            ("192.0.2.7", true),
            ("192.0.2.8", false),
            ("172.16.1.1", true),
        ] {
            assert_eq!(set.contains(parse_ip(ip).unwrap()), expected, "{ip}");
        }
        assert_eq!(parse_net("::ffff:10.0.0.0/104"), parse_net("10.0.0.0/8"));
        assert!(parse_net("10.0.0.0/33").is_none());
        assert!(parse_net("nope").is_none());
    }

    /// A set lists its networks as given (the command-line tool's `explain` prints them).
    #[test]
    fn a_set_lists_its_networks() {
        let list = ["10.0.0.0/8", "2001:db8::/32"].map(|n| parse_net(n).unwrap());
        assert_eq!(NetSet::new(list.to_vec()).nets(), list);
        assert!(NetSet::new(Vec::new()).nets().is_empty());
    }
}
