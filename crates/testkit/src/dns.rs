//! Building queries and reading replies: hickory-proto messages over real UDP and TCP
//! sockets, async for the tests and blocking for the benches.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

pub use fedns::metrics::Transport;

/// How long a test waits for a reply that should come.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a test waits to be sure no reply comes.
pub const SILENCE: Duration = Duration::from_millis(300);

/// A query as a client sends it: ID 0x4242, EDNS with a 1232-byte buffer, and an ECS
/// option for `ecs` (a subnet such as "198.18.2.0/24") when given.
pub fn query(name: &str, qtype: RecordType, ecs: Option<&str>) -> Message {
    let mut m = Message::new(0x4242, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    if let Some(subnet) = ecs {
        let net: ipnet::IpNet = subnet.parse().unwrap();
        edns.options_mut()
            .insert(EdnsOption::Subnet(ClientSubnet::from(net)));
    }
    m.set_edns(edns);
    m
}

/// [`query`] in wire form.
pub fn raw_query(name: &str, qtype: RecordType, ecs: Option<&str>) -> Vec<u8> {
    query(name, qtype, ecs).to_vec().unwrap()
}

/// A plain A query for `name` (no EDNS), ID 0: the clients set their own.
pub fn a_query(name: &Name) -> Message {
    let mut m = Message::new(0, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(name.clone(), RecordType::A));
    m
}

/// The answer section as zone-file lines, sorted.
pub fn answer_lines(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m.answers.iter().map(|r| r.to_string()).collect();
    v.sort();
    v
}

/// The record data of the answer section (the last field of each zone-file line), sorted
/// by line.
pub fn answer_data(m: &Message) -> Vec<String> {
    answer_lines(m)
        .into_iter()
        .map(|l| l.rsplit(' ').next().unwrap().to_owned())
        .collect()
}

/// The addresses of the A records of the answer section, in order.
pub fn a_records(m: &Message) -> Vec<std::net::Ipv4Addr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

/// The ECS option of a reply: (source prefix, scope prefix).
pub fn ecs_of(m: &Message) -> Option<(u8, u8)> {
    let edns = m.edns.as_ref()?;
    match edns.option(EdnsCode::Subnet)? {
        EdnsOption::Subnet(s) => Some((s.source_prefix(), s.scope_prefix())),
        _ => None,
    }
}

/// A DNS message with its 2-byte length, as TCP carries it.
pub fn framed(msg: &[u8]) -> Vec<u8> {
    let mut v = (msg.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(msg);
    v
}

/// Reads one length-prefixed DNS message from a TCP stream.
pub async fn read_frame(s: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    tokio::time::timeout(wait, s.read_exact(&mut len))
        .await
        .ok()?
        .ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    tokio::time::timeout(wait, s.read_exact(&mut buf))
        .await
        .ok()?
        .ok()?;
    Some(buf)
}

/// Sends queries to one server, a fresh socket (or connection) for each.
#[derive(Clone, Copy)]
pub struct DnsClient {
    pub server: SocketAddr,
}

impl DnsClient {
    /// Sends a message and returns the decoded reply.
    pub async fn exchange(&self, msg: &Message, transport: Transport) -> Message {
        let bytes = msg.to_vec().unwrap();
        let reply = self
            .raw(&bytes, transport)
            .await
            .expect("the server did not reply");
        Message::from_vec(&reply).unwrap()
    }

    /// Asks `name`/`qtype`, with an ECS subnet when given, over UDP.
    pub async fn ask(&self, name: &str, qtype: RecordType, ecs: Option<&str>) -> Message {
        self.exchange(&query(name, qtype, ecs), Transport::Udp)
            .await
    }

    /// Sends raw bytes; `None` when no reply came within `SILENCE` (UDP) or the server
    /// closed the connection without one (TCP).
    pub async fn raw(&self, bytes: &[u8], transport: Transport) -> Option<Vec<u8>> {
        match transport {
            Transport::Udp => {
                let local: SocketAddr = match self.server.ip() {
                    IpAddr::V4(_) => "127.0.0.1:0".parse().unwrap(),
                    IpAddr::V6(_) => "[::1]:0".parse().unwrap(),
                };
                let sock = UdpSocket::bind(local).await.unwrap();
                sock.send_to(bytes, self.server).await.unwrap();
                let mut buf = vec![0u8; 65_535];
                let wait = if bytes.len() >= 12 {
                    REPLY_TIMEOUT.min(SILENCE * 4)
                } else {
                    SILENCE
                };
                match tokio::time::timeout(wait, sock.recv_from(&mut buf)).await {
                    Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
                    _ => None,
                }
            }
            Transport::Tcp => {
                let mut s = TcpStream::connect(self.server).await.unwrap();
                s.write_all(&framed(bytes)).await.unwrap();
                read_frame(&mut s, REPLY_TIMEOUT).await
            }
        }
    }
}

/// A blocking UDP client on one connected socket, for the benches: each query gets the
/// next ID, and replies to earlier queries that came late are skipped.
pub struct UdpClient {
    sock: std::net::UdpSocket,
    id: u16,
    /// Queries that got no reply in time.
    pub timeouts: usize,
}

impl UdpClient {
    /// A client of `server` that waits `timeout` for each reply.
    pub fn new(server: SocketAddr, timeout: Duration) -> UdpClient {
        let any: SocketAddr = match server {
            SocketAddr::V4(_) => "0.0.0.0:0".parse().unwrap(),
            SocketAddr::V6(_) => "[::]:0".parse().unwrap(),
        };
        let sock = std::net::UdpSocket::bind(any).expect("bind UDP");
        sock.connect(server).expect("connect UDP");
        sock.set_read_timeout(Some(timeout)).expect("read timeout");
        UdpClient {
            sock,
            id: 0,
            timeouts: 0,
        }
    }

    /// Sends `m` with the next ID; the reply with that ID, or None when none came in time
    /// (counted in `timeouts`) or the query could not be sent.
    pub fn exchange(&mut self, mut m: Message) -> Option<Message> {
        self.id = self.id.wrapping_add(1);
        m.metadata.id = self.id;
        self.sock.send(&m.to_vec().expect("encode query")).ok()?;
        let mut buf = [0u8; 4096];
        loop {
            let Ok(n) = self.sock.recv(&mut buf) else {
                self.timeouts += 1;
                return None;
            };
            let Ok(reply) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            // A late reply to an earlier query that timed out: skip it.
            if reply.metadata.id == self.id {
                return Some(reply);
            }
        }
    }
}
