//! Raw query bytes through the whole query path as a UDP worker or TCP connection runs it:
//! `Handler::respond` (the wire fast path and its answer cache, or hickory's general path),
//! on the embedded demo federation built once. Inputs with an even first byte go over UDP
//! (truncation to the client's buffer), odd ones over TCP. One worker lives across inputs,
//! so cache hits are fuzzed as well as misses; every reply must parse back as DNS.
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use std::cell::RefCell;

use hickory_proto::op::Message;
use libfuzzer_sys::fuzz_target;

use fedns::app::LoadedConfig;
use fedns::dns::{Handler, Worker};
use fedns::metrics::Transport;
use fedns::snapshot::Published;
use fedns::store::Store;

fn handler() -> &'static Handler {
    static HANDLER: OnceLock<Handler> = OnceLock::new();
    HANDLER.get_or_init(|| {
        let loaded = LoadedConfig::demo().unwrap();
        let store = Store::from_config(&loaded.config);
        let snap = loaded.snapshot(&store, &Default::default(), None).unwrap();
        let published: Published = Arc::new(ArcSwap::from_pointee(snap));
        Handler::new(published, Default::default(), false)
    })
}

thread_local! {
    static WORKER: RefCell<Worker> = RefCell::new(Worker::default());
}

fuzz_target!(|data: &[u8]| {
    let handler = handler();
    let src: SocketAddr = "127.0.0.1:5353".parse().unwrap();
    let proto = match data.first() {
        Some(b) if b & 1 == 1 => Transport::Tcp,
        _ => Transport::Udp,
    };
    let mut out = Vec::new();
    let sent = WORKER.with(|w| {
        let mut w = w.borrow_mut();
        let sent = handler.respond(&mut w, data, src, proto, &mut out);
        handler.flush(&mut w, std::time::Instant::now());
        sent
    });
    if sent {
        assert!(Message::from_vec(&out).is_ok(), "unparseable reply {out:02x?}");
        if proto == Transport::Udp {
            assert!(out.len() <= 1232, "UDP reply of {} bytes", out.len());
        }
    }
});
