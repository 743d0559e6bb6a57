//! Addresses for containers from the agent's range. Pure: the runtime
//! allocates at launch, releases when a container ends, and re-reserves the
//! addresses of containers it recovers.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use super::NetworkError;

/// An IPv4 range, `10.211.0.0/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }

    /// The bridge's address: the first one in the range.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network)
    }

    /// Addresses containers may get: all but the network, the gateway and
    /// the broadcast address.
    fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> {
        let first = u32::from(self.network) + 2;
        let last = u32::from(self.network) | !self.mask();
        (first..last).map(Ipv4Addr::from)
    }
}

impl FromStr for Subnet {
    type Err = NetworkError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            || NetworkError::Invalid(format!("{s:?} is not an IPv4 range like 10.211.0.0/16"));
        let (ip, prefix) = s.split_once('/').ok_or_else(bad)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if !(8..=30).contains(&prefix) {
            return Err(bad());
        }
        let net = Subnet {
            network: ip,
            prefix,
        };
        let network = Ipv4Addr::from(u32::from(ip) & net.mask());
        Ok(Subnet { network, prefix })
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[derive(Debug, Clone)]
pub struct Ipam {
    subnet: Subnet,
    used: BTreeSet<Ipv4Addr>,
}

impl Ipam {
    pub fn new(subnet: Subnet) -> Self {
        Ipam {
            subnet,
            used: BTreeSet::new(),
        }
    }

    pub fn subnet(&self) -> Subnet {
        self.subnet
    }

    /// The lowest free address.
    pub fn allocate(&mut self) -> Result<Ipv4Addr, NetworkError> {
        let ip = self
            .subnet
            .hosts()
            .find(|ip| !self.used.contains(ip))
            .ok_or_else(|| NetworkError::Exhausted(self.subnet.to_string()))?;
        self.used.insert(ip);
        Ok(ip)
    }

    /// Marks `ip` taken (a recovered container's).
    pub fn reserve(&mut self, ip: Ipv4Addr) {
        if self.subnet.contains(ip) {
            self.used.insert(ip);
        }
    }

    pub fn release(&mut self, ip: Ipv4Addr) {
        self.used.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_normalise() {
        let s: Subnet = "10.211.7.9/16".parse().unwrap();
        assert_eq!(s.to_string(), "10.211.0.0/16");
        assert_eq!(s.gateway(), Ipv4Addr::new(10, 211, 0, 1));
        assert!(s.contains(Ipv4Addr::new(10, 211, 255, 1)));
        assert!(!s.contains(Ipv4Addr::new(10, 212, 0, 1)));
        for bad in ["10.0.0.0", "10.0.0.0/31", "x/16", "10.0.0.0/4"] {
            assert!(bad.parse::<Subnet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn allocates_lowest_first_and_reuses() {
        let mut ipam = Ipam::new("192.168.50.0/29".parse().unwrap());
        let got: Vec<Ipv4Addr> = (0..5).map(|_| ipam.allocate().unwrap()).collect();
        assert_eq!(got[0], Ipv4Addr::new(192, 168, 50, 2));
        assert_eq!(got[4], Ipv4Addr::new(192, 168, 50, 6));
        assert!(
            matches!(ipam.allocate(), Err(NetworkError::Exhausted(_))),
            "broadcast is not given"
        );
        ipam.release(got[1]);
        assert_eq!(ipam.allocate().unwrap(), got[1]);
        let mut fresh = Ipam::new("192.168.50.0/29".parse().unwrap());
        fresh.reserve(Ipv4Addr::new(192, 168, 50, 2));
        fresh.reserve(Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(fresh.allocate().unwrap(), Ipv4Addr::new(192, 168, 50, 3));
    }
}
