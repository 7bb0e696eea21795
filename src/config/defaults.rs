//! Default values of config fields, named by field (`#[serde(default = "defaults::ttl")]`).

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

pub fn rrl_rate() -> u32 {
    20
}

pub fn rrl_v4() -> u8 {
    24
}

pub fn rrl_table() -> usize {
    65_536
}

pub fn watch_timeout() -> Duration {
    Duration::from_secs(60)
}

pub fn sync_timeout() -> Duration {
    Duration::from_secs(30)
}

pub fn discovery_interval() -> Duration {
    Duration::from_secs(60)
}

pub fn ttl() -> u32 {
    30
}

pub fn count() -> u32 {
    1
}

pub fn drain() -> Duration {
    Duration::from_secs(5)
}

pub fn tcp_max_connections() -> NonZeroUsize {
    NonZeroUsize::new(1024).expect("non-zero literal")
}

pub fn tcp_idle_timeout() -> Duration {
    Duration::from_secs(10)
}

pub fn tcp_io_timeout() -> Duration {
    Duration::from_secs(2)
}

pub fn dns_listen() -> Vec<SocketAddr> {
    vec!["0.0.0.0:53".parse().expect("literal address")]
}

pub fn yes() -> bool {
    true
}

pub fn path() -> String {
    "/".into()
}

pub fn max_concurrent() -> usize {
    512
}

pub fn timeout() -> Duration {
    Duration::from_secs(1)
}

pub fn fall() -> u32 {
    2
}

pub fn rrl_slip() -> u32 {
    2
}

pub fn rrl_v6() -> u8 {
    56
}

pub fn connect_timeout() -> Duration {
    Duration::from_secs(5)
}

pub fn expect() -> u16 {
    200
}

pub fn interval() -> Duration {
    Duration::from_secs(1)
}

pub fn rise() -> u32 {
    2
}

pub fn fleet_namespace() -> String {
    "fedns".into()
}

pub fn lease_duration() -> Duration {
    Duration::from_secs(15)
}

pub fn lease_renew() -> Duration {
    Duration::from_secs(5)
}

pub fn min_ready() -> u32 {
    1
}

pub fn min_healthy_addresses() -> u32 {
    1
}

pub fn dnstap_messages() -> Vec<super::DnstapMessage> {
    vec![
        super::DnstapMessage::AuthQuery,
        super::DnstapMessage::AuthResponse,
    ]
}

pub fn dnstap_queue() -> usize {
    16_384
}

/// A week: long enough to ride out an outage of every replica for days, short enough that
/// a retired key's signatures are gone from the world soon (PowerDNS signs for a week too).
pub fn signature_validity() -> Duration {
    Duration::from_secs(7 * 86_400)
}

pub fn dnskey_ttl() -> u32 {
    3600
}
