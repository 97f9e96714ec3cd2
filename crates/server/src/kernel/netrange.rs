//! An address or a CIDR range of addresses (`10.0.0.7`, `10.0.0.0/8`, `fd00::/8`), as
//! `trusted_proxies` lists them: on Kubernetes the ingress pods' addresses change, their
//! pod network's range does not.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetRange(IpNet);

impl NetRange {
    /// Whether `ip` is in the range (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}

impl FromStr for NetRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let net = if text.contains('/') {
            text.parse::<IpNet>().ok().map(|n| n.trunc())
        } else {
            text.parse::<IpAddr>().ok().map(IpNet::from)
        };
        net.map(NetRange).ok_or_else(|| {
            format!("`{text}` is not an IP address or a CIDR range such as 10.0.0.0/8")
        })
    }
}

impl fmt::Display for NetRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A single address prints as itself, as it was most likely written.
        if self.0.prefix_len() == self.0.max_prefix_len() {
            self.0.addr().fmt(f)
        } else {
            self.0.fmt(f)
        }
    }
}

impl Serialize for NetRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NetRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn addresses_and_ranges_parse_match_and_print_as_written() {
        let one: NetRange = "10.0.0.7".parse().unwrap();
        assert!(one.contains(&ip("10.0.0.7")) && !one.contains(&ip("10.0.0.8")));
        assert_eq!(one.to_string(), "10.0.0.7");
        let pods: NetRange = "10.244.0.0/16".parse().unwrap();
        assert!(pods.contains(&ip("10.244.3.9")) && !pods.contains(&ip("10.245.0.1")));
        assert!(
            pods.contains(&ip("::ffff:10.244.1.1")),
            "IPv4-mapped counts"
        );
        assert_eq!(pods.to_string(), "10.244.0.0/16");
        // Host bits are dropped, as the range means the network.
        assert_eq!("10.244.7.7/16".parse::<NetRange>().unwrap(), pods);
        let v6: NetRange = "fd00::/8".parse().unwrap();
        assert!(v6.contains(&ip("fd12::1")) && !v6.contains(&ip("fe80::1")));
        for bad in ["10.0.0.0/33", "nginx", "10.0.0", ""] {
            assert!(bad.parse::<NetRange>().is_err(), "{bad}");
        }
    }
}
