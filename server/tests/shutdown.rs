//! Graceful shutdown on the real binary: on SIGTERM every open session gets the
//! `system-shutdown` stream error and the stream close, the listeners go away, and
//! the process exits successfully.

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use support::Server;

const STREAM_OPEN: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

fn open_stream(port: u16) -> TcpStream {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(STREAM_OPEN.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("</stream:features>") {
        let n = s.read(&mut buf).expect("features");
        assert!(n > 0, "closed before features");
        got.extend_from_slice(&buf[..n]);
    }
    s
}

fn read_to_close(mut s: TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn sigterm_sends_system_shutdown_and_exits_cleanly() {
    let mut server = Server::start("shutdown", &[]);
    let port = server.starttls_port;
    let sessions: Vec<TcpStream> = (0..3).map(|_| open_stream(port)).collect();

    // SAFETY: sending a signal to our own child process.
    let rc = unsafe { libc::kill(server.pid() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill failed");

    for s in sessions {
        let rest = read_to_close(s);
        assert!(
            rest.contains("<system-shutdown") && rest.ends_with("</stream:stream>"),
            "expected system-shutdown then the stream close, got: {rest}"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = server.child().try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "meerkat did not exit after SIGTERM");
        thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "meerkat exited with {status}");
    assert!(
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(),
        "the listener is still open"
    );
}
