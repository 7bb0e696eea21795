//! Response rate limiting in the style of BIND and Knot RRL: a client network (by default
//! an IPv4 /24 or IPv6 /56 of the packet's source) gets at most `responses_per_second`
//! identical-looking UDP responses (same name, type and response code) per second. Past
//! that, every `slip`-th response goes out truncated (TC, no records), so that a real
//! client retries over TCP, and the others are dropped, so that spoofed-source floods
//! cannot use fedns to amplify. TCP is never limited: its source cannot be spoofed.
//!
//! The table is a fixed array of counters indexed by a hash of (client network, response
//! class): memory is bounded whatever the clients send, and a collision can only make
//! limiting stricter for the two colliding keys, never looser. Each slot is one atomic
//! (second, count) pair: no lock on the query path.

use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::config::RrlConfig;

/// What to do with one response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Send,
    /// Send a truncated, empty response instead.
    Slip,
    Drop,
}

pub struct Limiter {
    slots: Box<[AtomicU64]>,
    per_second: u32,
    slip: u32,
    v4_prefix: u8,
    v6_prefix: u8,
    /// Per-process keyed hash, so that clients cannot aim collisions at one slot.
    hasher: std::collections::hash_map::RandomState,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("slots", &self.slots.len())
            .field("per_second", &self.per_second)
            .finish()
    }
}

impl Limiter {
    pub fn new(cfg: &RrlConfig) -> Limiter {
        Limiter {
            slots: (0..cfg.table_size.max(1))
                .map(|_| AtomicU64::new(0))
                .collect(),
            per_second: cfg.responses_per_second.max(1),
            slip: cfg.slip,
            v4_prefix: cfg.ipv4_prefix.min(32),
            v6_prefix: cfg.ipv6_prefix.min(128),
            hasher: Default::default(),
        }
    }

    /// Decides for one UDP response to `client` for (`name`, `qtype`, `rcode`); `name` is
    /// the question name in lowercase wire form.
    pub fn check(
        &self,
        client: IpAddr,
        name: Option<&[u8]>,
        qtype: RecordType,
        rcode: ResponseCode,
    ) -> Verdict {
        let now = crate::civil::unix_now() as u32;
        let mut h = self.hasher.build_hasher();
        network(client.to_canonical(), self.v4_prefix, self.v6_prefix).hash(&mut h);
        // Errors and NXDOMAIN are one class per client network, as in BIND: a flood of
        // random names must not get a fresh allowance per name.
        match rcode {
            ResponseCode::NoError => {
                name.hash(&mut h);
                qtype.hash(&mut h);
            }
            other => u16::from(other).hash(&mut h),
        }
        let slot = &self.slots[(h.finish() % self.slots.len() as u64) as usize];
        let mut count = 0;
        let _ = slot.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            let (sec, n) = ((v >> 32) as u32, v as u32);
            count = if sec == now { n.saturating_add(1) } else { 1 };
            Some((u64::from(now) << 32) | u64::from(count))
        });
        if count <= self.per_second {
            Verdict::Send
        } else if self.slip > 0 && count % self.slip == 0 {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }
}

/// The client network that shares an allowance: the address cut to the prefix.
fn network(ip: IpAddr, v4: u8, v6: u8) -> (bool, u128) {
    match ip {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let mask = if v4 == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(v4))
            };
            (false, u128::from(bits & mask))
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let mask = if v6 == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(v6))
            };
            (true, bits & mask)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(per_second: u32, slip: u32) -> RrlConfig {
        RrlConfig {
            responses_per_second: per_second,
            slip,
            ..RrlConfig::default()
        }
    }

    #[test]
    fn limits_per_network_and_slips() {
        let l = Limiter::new(&cfg(5, 2));
        let name = b"\x01a\x07example\x00";
        let ask = |ip: &str| {
            l.check(
                ip.parse().unwrap(),
                Some(&name[..]),
                RecordType::A,
                ResponseCode::NoError,
            )
        };
        let verdicts: Vec<Verdict> = (0..10).map(|_| ask("192.0.2.1")).collect();
        // Within one second (the test runs far faster; a second boundary would only reset
        // the count, which the assertions below allow for).
        let sent = verdicts.iter().filter(|v| **v == Verdict::Send).count();
        assert!((5..=10).contains(&sent), "{verdicts:?}");
        if sent == 5 {
            assert_eq!(
                &verdicts[5..],
                [
                    Verdict::Slip,
                    Verdict::Drop,
                    Verdict::Slip,
                    Verdict::Drop,
                    Verdict::Slip
                ]
            );
        }
        // The same /24 shares the allowance; another network does not.
        if sent == 5 {
            assert_ne!(ask("192.0.2.200"), Verdict::Send);
        }
        assert_eq!(ask("198.51.100.1"), Verdict::Send);
    }

    #[test]
    fn networks() {
        assert_eq!(
            network("192.0.2.77".parse().unwrap(), 24, 56),
            (false, u128::from(u32::from_be_bytes([192, 0, 2, 0])))
        );
        let (v6, bits) = network("2001:db8:1:2:3::1".parse().unwrap(), 24, 56);
        assert!(v6);
        assert_eq!(
            bits,
            u128::from("2001:db8:1::".parse::<std::net::Ipv6Addr>().unwrap())
        );
        assert_eq!(network("192.0.2.77".parse().unwrap(), 0, 0), (false, 0));
    }
}
