//! Raw query bytes through the whole query path: parse (hickory), decide (fedns), encode.
//! The handler serves the embedded demo federation, built once. Inputs with an even first
//! byte go over UDP (truncation to the client's buffer), odd ones over TCP.
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::Request;
use libfuzzer_sys::fuzz_target;

use fedns::app::Loaded;
use fedns::dns::Handler;
use fedns::snapshot::Published;
use fedns::store::Store;

fn handler() -> &'static Handler {
    static HANDLER: OnceLock<Handler> = OnceLock::new();
    HANDLER.get_or_init(|| {
        let loaded = Loaded::demo().unwrap();
        let store = Store::from_config(&loaded.config);
        let snap = loaded.snapshot(&store, &Default::default()).unwrap();
        let published: Published = Arc::new(ArcSwap::from_pointee(snap));
        Handler::new(published, Default::default(), false)
    })
}

fuzz_target!(|data: &[u8]| {
    let handler = handler();
    let src: SocketAddr = "127.0.0.1:5353".parse().unwrap();
    let protocol = match data.first() {
        Some(b) if b & 1 == 1 => Protocol::Tcp,
        _ => Protocol::Udp,
    };
    if let Ok(request) = Request::from_bytes(data.to_vec(), src, protocol) {
        let _ = handler.reply_bytes(&request);
    }
});
