//! Which host a daemon puts in the URIs it hands out.
//!
//! A daemon bound to `0.0.0.0` listens on every interface, but `0.0.0.0` in a URI is useless to
//! a client on another machine, and so is loopback: unreachable URIs are the most common Pyro
//! complaint. Such a daemon advertises the address of a real interface instead.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The host for the URIs of a daemon listening on `local`: the configured one if any, the
/// bound address if it is a specific one, else the address of a non-loopback interface.
pub(crate) fn advertised_host(local: SocketAddr, configured: Option<&str>) -> String {
    if let Some(host) = configured {
        return host.to_owned();
    }
    if !local.ip().is_unspecified() {
        return local.ip().to_string();
    }
    match interface_address(local.is_ipv4()) {
        Some(address) => address.to_string(),
        None => {
            let loopback: IpAddr = if local.is_ipv4() {
                Ipv4Addr::LOCALHOST.into()
            } else {
                Ipv6Addr::LOCALHOST.into()
            };
            tracing::warn!(
                target: "rpc_core::daemon",
                %loopback,
                "no non-loopback interface to advertise; set `Config::advertise_host`"
            );
            loopback.to_string()
        }
    }
}

/// The first address of an up, non-loopback interface of the family asked for (for IPv6, not
/// link-local, which needs a scope a URI cannot carry).
fn interface_address(ipv4: bool) -> Option<IpAddr> {
    let interfaces = if_addrs::get_if_addrs().ok()?;
    interfaces
        .into_iter()
        .filter(|interface| !interface.is_loopback())
        .map(|interface| interface.ip())
        .find(|ip| match ip {
            IpAddr::V4(_) => ipv4,
            IpAddr::V6(v6) => !ipv4 && (v6.segments()[0] & 0xffc0) != 0xfe80,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_host_wins() {
        let any: SocketAddr = "0.0.0.0:1".parse().unwrap();
        assert_eq!(
            advertised_host(any, Some("worker.example")),
            "worker.example"
        );
    }

    #[test]
    fn a_specific_bind_address_is_advertised_as_is() {
        let local: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(advertised_host(local, None), "127.0.0.1");
    }

    #[test]
    fn an_unspecified_bind_address_is_never_advertised() {
        for local in ["0.0.0.0:1", "[::]:1"] {
            let local: SocketAddr = local.parse().unwrap();
            let host = advertised_host(local, None);
            let ip: IpAddr = host.parse().unwrap();
            assert!(!ip.is_unspecified(), "{local} advertised {host}");
            assert_eq!(ip.is_ipv4(), local.is_ipv4());
        }
    }
}
