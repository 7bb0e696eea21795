//! Inputs the fuzzer (`fuzz/`, target `request_path`) once found a bad reply for, kept as
//! regression cases: every reply `Handler::respond` sends must parse back as DNS, carry at
//! most one question, and fit 1232 bytes over UDP. Add a file to `tests/data/request_path/`
//! when the fuzzer finds another.

use std::net::SocketAddr;

use fedns::metrics::Transport;
use fedns_testkit::handler::demo_handler;
use hickory_proto::op::Message;

#[test]
fn fuzzer_finds_stay_fixed() {
    let handler = demo_handler();
    let src: SocketAddr = "127.0.0.1:5353".parse().unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/request_path");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut failures = Vec::new();
    for path in files {
        let input = std::fs::read(&path).unwrap();
        for proto in [Transport::Udp, Transport::Tcp] {
            let Some(reply) = handler.respond_once(&input, src, proto) else {
                continue;
            };
            let name = path.file_name().unwrap().to_string_lossy();
            match Message::from_vec(&reply) {
                Err(e) => failures.push(format!("{name} over {proto:?}: {e}: {reply:02x?}")),
                Ok(m) if m.queries.len() > 1 => failures.push(format!(
                    "{name} over {proto:?}: {} questions",
                    m.queries.len()
                )),
                Ok(_) => {}
            }
            if proto == Transport::Udp && reply.len() > 1232 {
                failures.push(format!("{name}: UDP reply of {} bytes", reply.len()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
