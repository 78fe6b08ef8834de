//! A tiny DNS server on an ephemeral loopback UDP port, answering SRV and A
//! queries from a fixed table: how a peer server that only knows DNS (ejabberd)
//! finds Meerkat's S2S listener on loopback. Other names are NXDOMAIN.

use std::collections::HashMap;
use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// The server; it stops when dropped.
pub struct TestDns {
    /// Its UDP port on 127.0.0.1.
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl TestDns {
    /// Answers `srv` (name, (target, port)) and `a` (name, address).
    pub fn start(srv: &[(&str, (&str, u16))], a: &[(&str, Ipv4Addr)]) -> TestDns {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a UDP port");
        socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let port = socket.local_addr().unwrap().port();
        let fqdn = |n: &str| Name::from_ascii(format!("{}.", n.trim_end_matches('.'))).expect("name");
        let srv: HashMap<Name, (Name, u16)> =
            srv.iter().map(|(n, (t, p))| (fqdn(n), (fqdn(t), *p))).collect();
        let a: HashMap<Name, Ipv4Addr> = a.iter().map(|(n, ip)| (fqdn(n), *ip)).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stopping.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut answer = Message::new();
                answer
                    .set_id(query.id())
                    .set_message_type(MessageType::Response)
                    .set_op_code(query.op_code())
                    .set_recursion_desired(query.recursion_desired())
                    .set_recursion_available(true)
                    .set_authoritative(true);
                for q in query.queries() {
                    answer.add_query(q.clone());
                    let name = q.name().to_lowercase();
                    let known = srv.contains_key(&name) || a.contains_key(&name);
                    match (q.query_type(), srv.get(&name), a.get(&name)) {
                        (RecordType::SRV, Some((target, port)), _) => {
                            let rdata = RData::SRV(SRV::new(0, 0, *port, target.clone()));
                            answer.add_answer(Record::from_rdata(q.name().clone(), 60, rdata));
                        }
                        (RecordType::A, _, Some(ip)) => {
                            answer.add_answer(Record::from_rdata(q.name().clone(), 60, RData::A(A(*ip))));
                        }
                        _ if !known => {
                            answer.set_response_code(ResponseCode::NXDomain);
                        }
                        _ => {}
                    }
                }
                if let Ok(bytes) = answer.to_vec() {
                    let _ = socket.send_to(&bytes, from);
                }
            }
        });
        TestDns { port, stop }
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
