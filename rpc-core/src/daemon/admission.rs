//! Which new connections a daemon takes: a cap on all connections and one per source address,
//! with refusals and accept errors logged at a bounded rate.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::protocol::RemoteError;

/// The least time between two warnings of the accept loop; the ones in between are counted
/// and reported with the next, so a flood cannot flood the log too.
const WARNING_INTERVAL: Duration = Duration::from_secs(1);

/// Counts the connections being served, in all and per source address. Owned by the accept
/// loop alone, so it needs no lock.
#[derive(Debug)]
pub(super) struct Admission {
    max_connections: usize,
    max_per_address: usize,
    open: usize,
    per_address: HashMap<IpAddr, usize>,
    warnings: RateLimit,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// `Config::max_connections` are open.
    Full,
    /// `Config::max_connections_per_address` are open from this address.
    AddressFull,
}

impl Refusal {
    /// What the refused peer is told.
    pub(super) fn to_remote_error(self, config: &Config) -> RemoteError {
        let (setting, limit) = match self {
            Refusal::Full => ("max_connections", config.max_connections),
            Refusal::AddressFull => (
                "max_connections_per_address",
                config.max_connections_per_address,
            ),
        };
        RemoteError::TooManyConnections {
            setting: setting.into(),
            limit,
        }
    }
}

/// The key a connection from `address` is counted under for the per-address cap: the address
/// itself for IPv4, its /64 network for IPv6 (one host is commonly given a whole /64, so
/// counting single addresses would let it take every slot).
fn source_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

impl Admission {
    pub(super) fn new(max_connections: usize, max_per_address: usize) -> Admission {
        Admission {
            max_connections,
            max_per_address,
            open: 0,
            per_address: HashMap::new(),
            warnings: RateLimit::default(),
        }
    }

    /// Takes a connection from `address` (`None` for a Unix socket), or says why not.
    pub(super) fn admit(&mut self, address: Option<IpAddr>) -> Result<(), Refusal> {
        if self.open >= self.max_connections {
            return Err(Refusal::Full);
        }
        if let Some(address) = address {
            let count = self.per_address.entry(source_key(address)).or_insert(0);
            if *count >= self.max_per_address {
                return Err(Refusal::AddressFull);
            }
            *count += 1;
        }
        self.open += 1;
        Ok(())
    }

    /// A connection admitted from `address` has closed.
    pub(super) fn release(&mut self, address: Option<IpAddr>) {
        self.open = self.open.saturating_sub(1);
        if let Some(address) = address.map(source_key)
            && let Some(count) = self.per_address.get_mut(&address)
        {
            *count -= 1;
            if *count == 0 {
                self.per_address.remove(&address);
            }
        }
    }

    /// Logs a refusal or an accept error, at most once per [`WARNING_INTERVAL`].
    pub(super) fn warn(&mut self, what: &dyn std::fmt::Display) {
        if let Some(suppressed) = self.warnings.allow(Instant::now()) {
            tracing::warn!(target: "rpc_core::daemon", suppressed, "{what}");
        }
    }
}

/// Lets one event through per interval and counts the rest.
#[derive(Debug, Default)]
struct RateLimit {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimit {
    /// `Some(events suppressed since the last one let through)` if this one may pass.
    fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.duration_since(last) < WARNING_INTERVAL => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_in_all_and_per_address() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let mut admission = Admission::new(3, 2);
        assert_eq!(admission.admit(Some(a)), Ok(()));
        assert_eq!(admission.admit(Some(a)), Ok(()));
        assert_eq!(admission.admit(Some(a)), Err(Refusal::AddressFull));
        assert_eq!(admission.admit(Some(b)), Ok(()));
        assert_eq!(admission.admit(None), Err(Refusal::Full));
        admission.release(Some(a));
        assert_eq!(admission.admit(Some(a)), Ok(()));
        admission.release(Some(b));
        assert_eq!(admission.admit(None), Ok(()));
    }

    #[test]
    fn ipv6_addresses_count_per_64_network() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let mut admission = Admission::new(10, 1);
        assert_eq!(admission.admit(Some(a)), Ok(()));
        assert_eq!(admission.admit(Some(b)), Err(Refusal::AddressFull));
        assert_eq!(admission.admit(Some(other)), Ok(()));
        assert_eq!(admission.admit(Some(v4)), Ok(()));
        assert_eq!(admission.admit(Some(mapped)), Err(Refusal::AddressFull));
        admission.release(Some(b));
        assert_eq!(admission.admit(Some(a)), Ok(()));
    }

    #[test]
    fn warnings_pass_once_per_interval_and_count_the_rest() {
        let mut limit = RateLimit::default();
        let start = Instant::now();
        assert_eq!(limit.allow(start), Some(0));
        assert_eq!(limit.allow(start + Duration::from_millis(10)), None);
        assert_eq!(limit.allow(start + Duration::from_millis(20)), None);
        assert_eq!(
            limit.allow(start + WARNING_INTERVAL + Duration::from_millis(1)),
            Some(2)
        );
    }
}
