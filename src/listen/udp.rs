//! UDP workers: one OS thread per socket, several sockets on one address with
//! SO_REUSEPORT (the kernel spreads clients over them), each thread reading a batch of
//! datagrams with one `recvmmsg`, answering each from its own `Worker` (cache, scratch) and
//! sending the replies with one `sendmmsg`. No task, channel, lock or allocation per query
//! on this path: what a query costs is the answer cache lookup and the kernel's work.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{debug, warn};

use crate::dns::{Handler, Worker};
use crate::metrics::Transport;

/// Datagrams read (and replies sent) per system call at most.
const BATCH: usize = 32;
/// The largest query read; a longer datagram is dropped (queries are tens of bytes).
const MAX_QUERY: usize = 4096;
/// How often a worker blocked in `recvmmsg` wakes to see whether it should stop.
const STOP_POLL: Duration = Duration::from_millis(100);

/// Binds `workers` UDP sockets on `addr`; with more than one, SO_REUSEPORT shares the
/// address among them. Port 0 picks one free port for all.
pub fn bind(addr: SocketAddr, workers: usize) -> io::Result<Vec<UdpSocket>> {
    let shared = workers > 1;
    if shared && addr.port() != 0 {
        // SO_REUSEPORT would let these sockets join another process's on the same port and
        // split its traffic. A plain bind first fails if anyone holds the port.
        drop(socket(addr, false)?);
    }
    let first = socket(addr, shared)?;
    let addr = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..workers {
        sockets.push(socket(addr, true)?);
    }
    Ok(sockets)
}

fn socket(addr: SocketAddr, reuse_port: bool) -> io::Result<UdpSocket> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        None,
    )?;
    if addr.is_ipv6() {
        // So that `0.0.0.0:53` and `[::]:53` can both be listed.
        s.set_only_v6(true)?;
    }
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    // Room for bursts; the kernel caps it at net.core.rmem_max.
    let _ = s.set_recv_buffer_size(4 << 20);
    dont_fragment(&s, addr.is_ipv6())?;
    s.set_read_timeout(Some(STOP_POLL))?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// Replies go out with DF set and are never fragmented by this host (RFC 9715 section
/// 3.2): `PROBE` sets DF but ignores the path MTU the kernel learns from ICMP "fragmentation
/// needed", so a forged ICMP message cannot make fedns fragment (and so expose to
/// fragment-injection) its replies. Replies fit: UDP answers stop at `MAX_UDP_PAYLOAD`
/// (1232 bytes), below the IPv6 minimum MTU. It also spares the kernel an IP ID per reply
/// (a DF datagram gets ID 0), measurable at these rates.
fn dont_fragment(s: &socket2::Socket, ipv6: bool) -> io::Result<()> {
    let (level, name, value) = if ipv6 {
        (
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_PROBE,
        )
    } else {
        (
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_PROBE,
        )
    };
    // SAFETY: a plain int option on a socket this function borrows.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Starts one thread per socket. They run until `stop` is set.
pub fn spawn(
    sockets: Vec<UdpSocket>,
    handler: &Handler,
    stop: &Arc<AtomicBool>,
) -> io::Result<Vec<JoinHandle<()>>> {
    let mut threads = Vec::new();
    for (i, socket) in sockets.into_iter().enumerate() {
        let handler = handler.clone();
        let stop = stop.clone();
        let local = socket.local_addr()?;
        threads.push(
            std::thread::Builder::new()
                .name(format!("fedns-udp-{i}"))
                .spawn(move || {
                    if let Err(e) = serve(&socket, &handler, &stop) {
                        warn!(%local, error = %e, "UDP worker stopped");
                    }
                })?,
        );
    }
    Ok(threads)
}

/// The buffers of one worker, allocated once.
struct Batch {
    queries: Box<[[u8; MAX_QUERY]]>,
    replies: Vec<Vec<u8>>,
    addrs: Box<[libc::sockaddr_storage]>,
    iov_in: Box<[libc::iovec]>,
    iov_out: Box<[libc::iovec]>,
    hdr_in: Box<[libc::mmsghdr]>,
    hdr_out: Box<[libc::mmsghdr]>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            queries: vec![[0; MAX_QUERY]; BATCH].into_boxed_slice(),
            replies: (0..BATCH).map(|_| Vec::with_capacity(1232)).collect(),
            addrs: zeroed_slice(),
            iov_in: zeroed_slice(),
            iov_out: zeroed_slice(),
            hdr_in: zeroed_slice(),
            hdr_out: zeroed_slice(),
        }
    }
}

/// BATCH all-zero values of a C struct of pointers and integers.
fn zeroed_slice<T>() -> Box<[T]> {
    // SAFETY: only used for libc's sockaddr_storage, iovec and mmsghdr, for which all-zero
    // is a valid value (null pointers, zero lengths).
    (0..BATCH).map(|_| unsafe { zeroed() }).collect()
}

fn serve(socket: &UdpSocket, handler: &Handler, stop: &AtomicBool) -> io::Result<()> {
    let fd = socket.as_raw_fd();
    let mut b = Batch::new();
    let mut worker = Worker::serving(socket.local_addr()?);
    // The receive headers point at fixed buffers: set them up once; after each call only
    // what the kernel wrote (the address length, the flags) is reset, for the used ones.
    for i in 0..BATCH {
        b.iov_in[i] = libc::iovec {
            iov_base: b.queries[i].as_mut_ptr().cast(),
            iov_len: MAX_QUERY,
        };
        let h = &mut b.hdr_in[i].msg_hdr;
        h.msg_name = (&raw mut b.addrs[i]).cast();
        h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        h.msg_iov = &raw mut b.iov_in[i];
        h.msg_iovlen = 1;
    }
    let mut used = 0;
    while !stop.load(Ordering::Relaxed) {
        for h in &mut b.hdr_in[..used] {
            h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_flags = 0;
        }
        // SAFETY: every header points at buffers of `b` that outlive the call, with their
        // true lengths; the kernel writes at most that much.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                b.hdr_in.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                    // No query for STOP_POLL: nothing held back waits longer.
                    handler.idle(&mut worker);
                    continue;
                }
                io::ErrorKind::Interrupted => continue,
                // An ICMP error of an earlier send surfaces here on some kernels.
                io::ErrorKind::ConnectionRefused => continue,
                _ => return Err(e),
            }
        }
        used = n as usize;
        let arrival = handler.arrival(&mut worker);
        let mut out = 0;
        for i in 0..n as usize {
            let h = &b.hdr_in[i];
            let Some(src) = to_socket_addr(&b.addrs[i], h.msg_hdr.msg_namelen) else {
                continue;
            };
            if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 || !answerable(src) {
                debug!(%src, "UDP datagram dropped (too long, or a source that cannot be answered)");
                continue;
            }
            let len = (h.msg_len as usize).min(MAX_QUERY);
            let reply = &mut b.replies[out];
            if !handler.respond(
                &mut worker,
                &b.queries[i][..len],
                src,
                Transport::Udp,
                reply,
            ) {
                continue;
            }
            b.iov_out[out] = libc::iovec {
                iov_base: reply.as_mut_ptr().cast(),
                iov_len: reply.len(),
            };
            let o = &mut b.hdr_out[out].msg_hdr;
            o.msg_name = (&raw mut b.addrs[i]).cast();
            o.msg_namelen = h.msg_hdr.msg_namelen;
            o.msg_iov = &raw mut b.iov_out[out];
            o.msg_iovlen = 1;
            out += 1;
        }
        // Counted before the replies go, so that a client that has its reply sees it
        // counted.
        handler.flush(&mut worker, arrival);
        send_all(fd, &mut b.hdr_out[..out]);
    }
    handler.idle(&mut worker);
    Ok(())
}

/// Sends every prepared reply. A reply the kernel refuses (say, an unreachable
/// destination) is skipped; the others still go.
fn send_all(fd: libc::c_int, hdrs: &mut [libc::mmsghdr]) {
    let mut sent = 0;
    while sent < hdrs.len() {
        // SAFETY: the headers point at replies and addresses that live in the batch.
        let r = unsafe {
            libc::sendmmsg(
                fd,
                hdrs[sent..].as_mut_ptr(),
                (hdrs.len() - sent) as libc::c_uint,
                0,
            )
        };
        if r > 0 {
            sent += r as usize;
            continue;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            debug!(error = %e, "UDP reply not sent");
            sent += 1;
        }
    }
}

/// Replies never go to port 0 or to an unspecified or broadcast address (they could only
/// be spoofed sources, or reflect somewhere unintended).
fn answerable(src: SocketAddr) -> bool {
    src.port() != 0
        && !src.ip().is_unspecified()
        && !matches!(src.ip(), std::net::IpAddr::V4(a) if a.is_broadcast())
        && !src.ip().is_multicast()
}

fn to_socket_addr(s: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match i32::from(s.ss_family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family and length say this storage holds a sockaddr_in.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family and length say this storage holds a sockaddr_in6.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mtu_discover(s: &UdpSocket, level: libc::c_int, name: libc::c_int) -> libc::c_int {
        let mut v: libc::c_int = -1;
        let mut len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: an int option read into an int of the given length.
        let r =
            unsafe { libc::getsockopt(s.as_raw_fd(), level, name, (&raw mut v).cast(), &mut len) };
        assert_eq!(r, 0, "{}", io::Error::last_os_error());
        v
    }

    #[test]
    fn replies_are_sent_with_df_and_no_path_mtu() {
        for s in bind("127.0.0.1:0".parse().unwrap(), 2).unwrap() {
            let v = mtu_discover(&s, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER);
            assert_eq!(v, libc::IP_PMTUDISC_PROBE);
        }
        // IPv6 may be missing from a test machine; then there is nothing to check.
        if let Ok(v6) = bind("[::1]:0".parse().unwrap(), 1) {
            let v = mtu_discover(&v6[0], libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER);
            assert_eq!(v, libc::IPV6_PMTUDISC_PROBE);
        }
    }
}
