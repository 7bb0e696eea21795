//! A blocking HTTP/1.1 GET for the benches that read fedns's admin endpoints.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One GET (connection closed after the reply): (status, body); status 0 and the error
/// as body when it fails. `read_timeout` bounds the wait for the reply.
pub fn get(addr: SocketAddr, path: &str, read_timeout: Duration) -> (u16, String) {
    let attempt = || -> std::io::Result<(u16, String)> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(read_timeout))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        let text = String::from_utf8_lossy(&raw);
        let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        Ok((status, body.to_owned()))
    };
    attempt().unwrap_or_else(|e| (0, e.to_string()))
}
