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

on_every_runtime! {
/// The same with federation configured: a connected component and an incoming S2S
/// stream get `system-shutdown`, and the outgoing S2S connection the server opened
/// (to an address where nothing answers the stream) does not hold the exit up.
fn sigterm_with_components_and_s2s(runtime) {
    use std::io::{Read, Write};
    let (component_port, s2s_port, silent) = (support::free_port(), support::free_port(), support::free_port());
    // Something that accepts TCP and never speaks XMPP: the outgoing stream waits.
    let black_hole = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, silent)).unwrap();
    let extra = support::Extra {
        toml: format!(
            "[[listen.component]]\nport = {component_port}\nip_address = \"127.0.0.1\"\npassword = \"pw\"\n\
             [[listen.s2s]]\nport = {s2s_port}\nip_address = \"127.0.0.1\"\n\
             [s2s.outgoing]\naddress = [{{host = \"remote.test\", ip_address = \"127.0.0.1\", port = {silent}}}]\n"
        ),
        ports: vec![component_port, s2s_port],
        ..support::Extra::default()
    };
    let mut server = Server::start_with(runtime, "shutdown-fed", &[("alice", "pw")], extra);
    let mut component = TcpStream::connect((Ipv4Addr::LOCALHOST, component_port)).unwrap();
    component.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    component
        .write_all(b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='echo.localhost'>")
        .unwrap();
    let mut s2s = TcpStream::connect((Ipv4Addr::LOCALHOST, s2s_port)).unwrap();
    s2s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s2s.write_all(b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")
        .unwrap();
    let mut buf = [0u8; 4096];
    for s in [&mut component, &mut s2s] {
        assert!(s.read(&mut buf).unwrap() > 0, "the stream header");
    }
    // A message to remote.test opens an outgoing stream into the black hole.
    let mut alice = support::PlainClient::login(server.starttls_port, support::DOMAIN, "alice", "pw", "r");
    alice.send("<message to='bob@remote.test'><body>hello?</body></message>");
    let (_accepted, _) = black_hole.accept().expect("the outgoing S2S connection");

    // SAFETY: sending a signal to our own child process.
    let rc = unsafe { libc::kill(server.pid() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill failed");
    for s in [&mut component, &mut s2s] {
        let rest = read_until_closed(s);
        assert!(rest.contains("<system-shutdown"), "{rest}");
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
}
}
