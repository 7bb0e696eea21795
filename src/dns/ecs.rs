//! Strict EDNS Client Subnet (RFC 7871) extraction from the raw query.
//!
//! hickory's decoder accepts an ECS option with trailing bytes, host bits set past the
//! source prefix, or a non-zero scope, and then forgets the raw bytes; RFC 7871 section 7.1.1
//! wants such queries rejected with FORMERR. So we walk the packet ourselves: it has already
//! been decoded once, but this walker still checks every bound and never panics.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// EDNS option code of Client Subnet.
const OPTION_ECS: u16 = 8;
/// RR type of OPT.
const TYPE_OPT: u16 = 41;

/// Why an ECS option (or the packet around it) is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EcsError {
    #[error("packet ends inside a record")]
    Truncated,
    #[error("bad name in packet")]
    BadName,
    #[error("ECS family {0} is neither 1 (IPv4) nor 2 (IPv6)")]
    Family(u16),
    #[error("ECS source prefix {0} is longer than the address")]
    SourcePrefix(u8),
    #[error("ECS scope prefix must be 0 in a query, got {0}")]
    Scope(u8),
    #[error("ECS address has {got} bytes, its source prefix needs {want}")]
    AddressLength { got: usize, want: usize },
    #[error("ECS address has bits set beyond its source prefix")]
    HostBits,
    #[error("more than one ECS option")]
    Duplicate,
}

/// The client subnet of a query: the network, as sent, with its source prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSubnet {
    pub net: IpNet,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], EcsError> {
        let end = self.pos.checked_add(n).ok_or(EcsError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(EcsError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn u16(&mut self) -> Result<u16, EcsError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Skips a name: labels up to the root, or up to a compression pointer (which ends it).
    fn skip_name(&mut self) -> Result<(), EcsError> {
        // A name is at most 255 bytes, so at most 128 labels; bound the loop regardless.
        for _ in 0..128 {
            let len = self.take(1)?[0];
            match len & 0xC0 {
                0x00 if len == 0 => return Ok(()),
                0x00 => {
                    self.take(len as usize)?;
                }
                0xC0 => {
                    self.take(1)?;
                    return Ok(());
                }
                _ => return Err(EcsError::BadName),
            }
        }
        Err(EcsError::BadName)
    }
}

/// Finds and validates the ECS option of a query. `Ok(None)`: no OPT or no ECS option.
pub fn extract(packet: &[u8]) -> Result<Option<ClientSubnet>, EcsError> {
    let mut r = Reader {
        buf: packet,
        pos: 0,
    };
    let header = r.take(12)?;
    let count = |i: usize| u16::from_be_bytes([header[i], header[i + 1]]) as usize;
    let (qd, an, ns, ar) = (count(4), count(6), count(8), count(10));
    for _ in 0..qd {
        r.skip_name()?;
        r.take(4)?;
    }
    for _ in 0..an + ns {
        r.skip_name()?;
        r.take(8)?;
        let len = r.u16()? as usize;
        r.take(len)?;
    }
    let mut found = None;
    for _ in 0..ar {
        r.skip_name()?;
        let rtype = r.u16()?;
        r.take(6)?;
        let len = r.u16()? as usize;
        let rdata = r.take(len)?;
        if rtype != TYPE_OPT {
            continue;
        }
        let mut o = Reader { buf: rdata, pos: 0 };
        while o.pos < rdata.len() {
            let code = o.u16()?;
            let olen = o.u16()? as usize;
            let value = o.take(olen)?;
            if code == OPTION_ECS {
                if found.is_some() {
                    return Err(EcsError::Duplicate);
                }
                found = Some(parse_option(value)?);
            }
        }
    }
    Ok(found)
}

/// Parses the value of one ECS option (RFC 7871 section 6).
pub fn parse_option(value: &[u8]) -> Result<ClientSubnet, EcsError> {
    let mut r = Reader { buf: value, pos: 0 };
    let family = r.u16()?;
    let source = r.take(1)?[0];
    let scope = r.take(1)?[0];
    let addr = &value[4..];
    let max = match family {
        1 => 32,
        2 => 128,
        f => return Err(EcsError::Family(f)),
    };
    if source > max {
        return Err(EcsError::SourcePrefix(source));
    }
    if scope != 0 {
        return Err(EcsError::Scope(scope));
    }
    let want = (source as usize).div_ceil(8);
    if addr.len() != want {
        return Err(EcsError::AddressLength {
            got: addr.len(),
            want,
        });
    }
    let ip = if family == 1 {
        let mut o = [0u8; 4];
        o[..want].copy_from_slice(addr);
        IpAddr::V4(Ipv4Addr::from(o))
    } else {
        let mut o = [0u8; 16];
        o[..want].copy_from_slice(addr);
        IpAddr::V6(Ipv6Addr::from(o))
    };
    let net = IpNet::new(ip, source).map_err(|_| EcsError::SourcePrefix(source))?;
    if net.trunc().addr() != ip {
        return Err(EcsError::HostBits);
    }
    Ok(ClientSubnet { net })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opt(family: u16, source: u8, scope: u8, addr: &[u8]) -> Vec<u8> {
        let mut v = family.to_be_bytes().to_vec();
        v.extend([source, scope]);
        v.extend(addr);
        v
    }

    #[test]
    fn valid_options() {
        let c = parse_option(&opt(1, 24, 0, &[198, 51, 100])).unwrap();
        assert_eq!(c.net, "198.51.100.0/24".parse().unwrap());
        let c = parse_option(&opt(2, 48, 0, &[0x20, 0x01, 0x0d, 0xb8, 0, 1])).unwrap();
        assert_eq!(c.net, "2001:db8:1::/48".parse().unwrap());
        let c = parse_option(&opt(1, 0, 0, &[])).unwrap();
        assert_eq!(c.net.prefix_len(), 0);
    }

    #[test]
    fn malformed_options() {
        assert_eq!(
            parse_option(&opt(3, 24, 0, &[1, 2, 3])),
            Err(EcsError::Family(3))
        );
        assert_eq!(
            parse_option(&opt(1, 33, 0, &[1, 2, 3, 4, 5])),
            Err(EcsError::SourcePrefix(33))
        );
        assert_eq!(
            parse_option(&opt(1, 24, 8, &[1, 2, 3])),
            Err(EcsError::Scope(8))
        );
        assert_eq!(
            parse_option(&opt(1, 24, 0, &[1, 2, 3, 4])),
            Err(EcsError::AddressLength { got: 4, want: 3 })
        );
        assert_eq!(
            parse_option(&opt(1, 20, 0, &[1, 2, 0xff])),
            Err(EcsError::HostBits)
        );
        assert_eq!(parse_option(&[0, 1, 24]), Err(EcsError::Truncated));
    }

    #[test]
    fn walker_never_panics_on_garbage() {
        let mut seed = 0x1234_5678_u64;
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = extract(&bytes);
        }
    }
}
