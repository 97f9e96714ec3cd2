//! Outbound HTTP to addresses that users give (webhook endpoints; later, imports by URL),
//! guarded against server-side request forgery: only `http`/`https`, and no target that
//! is — or resolves to — a loopback, private, link-local, cloud-metadata, multicast or
//! otherwise reserved address, unless the operator allows private targets (cloud metadata
//! stays refused even then). Names are
//! checked when a URL is registered and again at every connection: the client's resolver
//! drops forbidden addresses, so a name that changes its answer (DNS rebinding) cannot
//! reach them either. Redirects are never followed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::TokioResolver;
use serde::{Deserialize, Serialize};

/// The `[resolver]` section: how outbound names are resolved.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResolverSettings {
    /// DNS servers (`ip:port`) for outbound names; empty: the system's
    /// (`/etc/resolv.conf`, `/etc/hosts`). Default empty.
    pub servers: Vec<SocketAddr>,
}

/// Why a target is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not an absolute `http`/`https` URL with a host.
    InvalidUrl(String),
    /// The name does not resolve.
    Unresolvable(String),
    /// It is, or resolves to, a forbidden address.
    Forbidden {
        reason: &'static str,
        address: IpAddr,
    },
}

impl Refusal {
    pub fn message(&self) -> String {
        match self {
            Refusal::InvalidUrl(why) => why.clone(),
            Refusal::Unresolvable(host) => format!("the host `{host}` does not resolve"),
            // The address itself is not told: it would map internal names for anyone.
            Refusal::Forbidden { reason, .. } => format!(
                "the URL is or resolves to a {} address; such targets are refused",
                reason.replace('_', "-")
            ),
        }
    }
}

/// Why `ip` may not be a target, or `None` when it may.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return forbidden_v4(v4);
            }
            let s = v6.segments();
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some("metadata")
            } else if v6.is_unicast_link_local() {
                Some("link_local")
            } else if v6.is_unique_local() || s[0] & 0xffc0 == 0xfec0 {
                // Unique-local, and the deprecated site-local fec0::/10.
                Some("private")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if (s[0] == 0x2001 && (s[1] == 0xdb8 || s[1] == 0))
                || (s[0] == 0x100 && s[1..4] == [0, 0, 0])
            {
                // Documentation, Teredo (its client address is obfuscated), discard.
                Some("reserved")
            } else {
                None
            }
        }
    }
}

/// The IPv4 address an IPv6 address carries, where it is one of the forms that reach an
/// IPv4 host: mapped (`::ffff:a.b.c.d`), SIIT (`::ffff:0:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`), NAT64 (`64:ff9b::/96`, the local `64:ff9b:1::/48`) and 6to4 (`2002::/16`).
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let o = v6.octets();
    let low = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0, 0, 0, 0, 0xffff, 0] || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(low);
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] && !v6.is_loopback() && !v6.is_unspecified() {
        return Some(low);
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        return Some(low);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    None
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() || o[0] == 0 {
        Some("unspecified")
    } else if o == [169, 254, 169, 254] || o == [100, 100, 100, 200] {
        // AWS, GCP, Azure, OpenStack; Alibaba Cloud.
        Some("metadata")
    } else if ip.is_link_local() {
        Some("link_local")
    } else if ip.is_private() || (o[0] == 100 && (64..128).contains(&o[1])) {
        Some("private")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if ip.is_broadcast()
        || ip.is_documentation()
        || o[0] >= 240
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        || (o[0] == 198 && (18..20).contains(&o[1]))
    {
        Some("reserved")
    } else {
        None
    }
}

/// Resolves and checks outbound targets, and makes clients that only connect to what
/// passes.
#[derive(Clone)]
pub struct Guard {
    resolver: Arc<TokioResolver>,
    allow_private: bool,
}

impl Guard {
    pub fn new(settings: &ResolverSettings, allow_private: bool) -> anyhow::Result<Guard> {
        let mut opts = ResolverOpts::default();
        opts.timeout = Duration::from_secs(3);
        opts.attempts = 2;
        let builder = if settings.servers.is_empty() {
            TokioResolver::builder_tokio()?
        } else {
            let mut config = ResolverConfig::new();
            for server in &settings.servers {
                config.add_name_server(NameServerConfig::new(*server, Protocol::Udp));
                config.add_name_server(NameServerConfig::new(*server, Protocol::Tcp));
            }
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
        };
        Ok(Guard {
            resolver: Arc::new(builder.with_options(opts).build()),
            allow_private,
        })
    }

    /// Parses `url` and checks it and every address its host resolves to.
    pub async fn check(&self, url: &str) -> Result<reqwest::Url, Refusal> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| Refusal::InvalidUrl(format!("not a valid URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Refusal::InvalidUrl("only http and https URLs".into()));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(Refusal::InvalidUrl(
                "credentials in the URL are not accepted".into(),
            ));
        }
        let host = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => return self.allow(IpAddr::V4(ip)).map(|()| parsed),
            Some(url::Host::Ipv6(ip)) => return self.allow(IpAddr::V6(ip)).map(|()| parsed),
            Some(url::Host::Domain(name)) => name.to_string(),
            None => return Err(Refusal::InvalidUrl("the URL has no host".into())),
        };
        let addresses = self.resolve(&host).await?;
        for ip in addresses {
            self.allow(ip)?;
        }
        Ok(parsed)
    }

    /// Cloud metadata services stay refused even when private targets are allowed: they
    /// hand out the instance's credentials.
    fn allow(&self, ip: IpAddr) -> Result<(), Refusal> {
        match forbidden(ip) {
            Some(reason) if !self.allow_private || reason == "metadata" => {
                Err(Refusal::Forbidden {
                    reason,
                    address: ip,
                })
            }
            _ => Ok(()),
        }
    }

    async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, Refusal> {
        let lookup = self
            .resolver
            .lookup_ip(host)
            .await
            .map_err(|_| Refusal::Unresolvable(host.to_string()))?;
        let addresses: Vec<IpAddr> = lookup.iter().collect();
        if addresses.is_empty() {
            return Err(Refusal::Unresolvable(host.to_string()));
        }
        Ok(addresses)
    }

    /// A client that resolves through this guard (dropping forbidden addresses), never
    /// follows redirects and gives up after `timeout`.
    pub fn client(&self, timeout: Duration) -> reqwest::Result<reqwest::Client> {
        reqwest::Client::builder()
            // A proxy would resolve and connect itself, past this guard.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .dns_resolver(Arc::new(self.clone()))
            .user_agent(concat!("Framehouse/", env!("CARGO_PKG_VERSION")))
            .build()
    }
}

impl reqwest::dns::Resolve for Guard {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addresses = guard.resolve(&host).await.map_err(|r| r.message())?;
            let allowed: Vec<SocketAddr> = addresses
                .into_iter()
                .filter(|ip| guard.allow(*ip).is_ok())
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            if allowed.is_empty() {
                return Err(format!("`{host}` resolves only to forbidden addresses").into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(ip: &str) -> Option<&'static str> {
        forbidden(ip.parse().unwrap())
    }

    #[test]
    fn internal_addresses_are_named_and_public_ones_pass() {
        assert_eq!(reason("127.0.0.1"), Some("loopback"));
        assert_eq!(reason("::1"), Some("loopback"));
        assert_eq!(reason("::ffff:127.0.0.1"), Some("loopback"));
        assert_eq!(reason("10.1.2.3"), Some("private"));
        assert_eq!(reason("172.16.0.1"), Some("private"));
        assert_eq!(reason("192.168.1.1"), Some("private"));
        assert_eq!(reason("100.64.0.1"), Some("private"));
        assert_eq!(reason("fd12::1"), Some("private"));
        assert_eq!(reason("169.254.169.254"), Some("metadata"));
        assert_eq!(reason("fd00:ec2::254"), Some("metadata"));
        assert_eq!(reason("169.254.1.1"), Some("link_local"));
        assert_eq!(reason("fe80::1"), Some("link_local"));
        assert_eq!(reason("0.0.0.0"), Some("unspecified"));
        assert_eq!(reason("64:ff9b::10.0.0.1"), Some("private"));
        assert_eq!(reason("64:ff9b:1::a00:1"), Some("private"));
        assert_eq!(reason("::127.0.0.1"), Some("loopback"));
        assert_eq!(reason("::ffff:0:169.254.169.254"), Some("metadata"));
        assert_eq!(reason("2002:0a00:0001::1"), Some("private"));
        assert_eq!(reason("2002:5db8:d822::1"), None);
        assert_eq!(reason("fec0::1"), Some("private"));
        assert_eq!(reason("2001:0:4136:e378::1"), Some("reserved"));
        assert_eq!(reason("224.0.0.1"), Some("multicast"));
        assert_eq!(reason("192.0.2.1"), Some("reserved"));
        assert_eq!(reason("93.184.216.34"), None);
        assert_eq!(reason("2606:4700::1111"), None);
    }
}
