//! Graceful shutdown on the real binary: on SIGTERM every open session gets the
//! `system-shutdown` stream error and the stream close, the listeners go away, and
//! the process exits successfully.

mod support;

use std::net::{Ipv4Addr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use support::{open_plain_stream, read_until_closed, Server};

on_every_runtime! {
fn sigterm_sends_system_shutdown_and_exits_cleanly(runtime) {
    let mut server = Server::start(runtime, "shutdown", &[]);
    let port = server.starttls_port;
    let sessions: Vec<TcpStream> = (0..3).map(|_| open_plain_stream(port)).collect();

    // SAFETY: sending a signal to our own child process.
    let rc = unsafe { libc::kill(server.pid() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill failed");

    for mut s in sessions {
        let rest = read_until_closed(&mut s);
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
}
