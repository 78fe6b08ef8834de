//! The HTTP listener driven in memory: routing, the health and metrics endpoints,
//! the WebSocket handshake and RFC 7395 framing of a C2S stream, and BOSH sessions
//! (creation, holding, `rid` order, retransmission, restart, termination, inactivity).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::stream::c2s::C2sConfig;
use crate::stream::Action;

fn config() -> Arc<HttpConfig> {
    let mut c2s = C2sConfig::new(vec!["localhost".into()]);
    c2s.registration = true;
    // Longer than any BOSH timing below, so that what ends a session there is BOSH.
    c2s.auth_timeout = Duration::from_secs(600);
    Arc::new(HttpConfig::new(
        Arc::new(c2s),
        vec![
            Route {
                host: None,
                path: "/metrics".into(),
                handler: Handler::Prometheus,
            },
            Route {
                host: None,
                path: "/ws-xmpp".into(),
                handler: Handler::WebSocket(WebSocketOptions {
                    ping_rate: Some(Duration::from_secs(10)),
                    ..WebSocketOptions::default()
                }),
            },
            Route {
                host: Some("localhost".into()),
                path: "/http-bind".into(),
                handler: Handler::Bosh,
            },
        ],
    ))
}

fn connection(now: Instant) -> HttpConnection {
    HttpConnection::new(1, config(), Box::new(rand_core::OsRng), now)
}

/// Everything transmitted, and whether the connection closed.
fn drain(conn: &mut HttpConnection) -> (String, Vec<HttpAction>, bool) {
    let (out, other, closed) = drain_raw(conn);
    (String::from_utf8_lossy(&out).into_owned(), other, closed)
}

fn drain_raw(conn: &mut HttpConnection) -> (Vec<u8>, Vec<HttpAction>, bool) {
    let mut out = Vec::new();
    let mut other = Vec::new();
    let mut closed = false;
    while let Some(a) = conn.poll_action() {
        match a {
            HttpAction::Transmit(b) => out.extend(b),
            HttpAction::Close => closed = true,
            a => other.push(a),
        }
    }
    (out, other, closed)
}

#[test]
fn health_unknown_paths_and_pipelining() {
    let t0 = Instant::now();
    let mut c = connection(t0);
    c.handle_bytes(
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
        t0,
    );
    let (out, _, closed) = drain(&mut c);
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("\r\n\r\nok\n"));
    assert!(out.contains("HTTP/1.1 404 Not Found\r\n"));
    assert!(!closed);
    c.handle_shutdown(t0);
    let (_, _, closed) = drain(&mut c);
    assert!(closed, "an idle connection closes at shutdown");
}

#[test]
fn malformed_request_is_answered_and_closed() {
    let t0 = Instant::now();
    let mut c = connection(t0);
    c.handle_bytes(b"GET / HTTP/7.0\r\n\r\n", t0);
    let (out, _, closed) = drain(&mut c);
    assert!(out.starts_with("HTTP/1.1 505 "), "{out}");
    assert!(closed);
}

#[test]
fn metrics_are_rendered_by_the_runtime() {
    let t0 = Instant::now();
    let mut c = connection(t0);
    c.handle_bytes(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", t0);
    let (out, other, _) = drain(&mut c);
    assert!(out.is_empty());
    assert!(other.iter().any(|a| matches!(a, HttpAction::RenderMetrics)));
    c.handle_metrics("# TYPE x counter\nx 1\n".into(), t0);
    let (out, _, closed) = drain(&mut c);
    assert!(out.contains("Content-Type: text/plain; version=0.0.4"), "{out}");
    assert!(out.ends_with("x 1\n"));
    assert!(!closed);
}

#[test]
fn idle_keep_alive_connection_closes_at_its_deadline() {
    let t0 = Instant::now();
    let mut c = connection(t0);
    let (_, other, _) = drain(&mut c);
    let deadline = other
        .iter()
        .find_map(|a| match a {
            HttpAction::SetTimer(t) => Some(*t),
            _ => None,
        })
        .expect("a keep-alive deadline");
    c.handle_timeout(deadline);
    assert!(drain(&mut c).2);
}

// ---- WebSocket ----

/// A masked client text frame.
fn ws_text(payload: &str) -> Vec<u8> {
    let mask = [1u8, 2, 3, 4];
    let p = payload.as_bytes();
    let mut out = vec![0x81];
    if p.len() < 126 {
        out.push(0x80 | p.len() as u8);
    } else {
        out.push(0x80 | 126);
        out.extend_from_slice(&(p.len() as u16).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(p.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// The server's text messages in `bytes` (unmasked frames).
fn ws_messages(mut bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while bytes.len() >= 2 {
        let opcode = bytes[0] & 0x0f;
        let (len, at) = match bytes[1] {
            126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 => panic!("no huge frames in these tests"),
            n => (n as usize, 2),
        };
        let payload = &bytes[at..at + len];
        out.push(match opcode {
            1 => String::from_utf8(payload.to_vec()).unwrap(),
            8 => format!("CLOSE {}", u16::from_be_bytes([payload[0], payload[1]])),
            9 => "PING".into(),
            10 => "PONG".into(),
            o => format!("opcode {o}"),
        });
        bytes = &bytes[at + len..];
    }
    out
}

const UPGRADE: &str = "GET /ws-xmpp HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n";

fn upgraded(t0: Instant) -> HttpConnection {
    let mut c = connection(t0);
    c.handle_bytes(UPGRADE.as_bytes(), t0);
    let (out, other, closed) = drain(&mut c);
    assert!(out.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{out}");
    assert!(out.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    assert!(out.contains("Sec-WebSocket-Protocol: xmpp\r\n"));
    assert!(other.iter().any(|a| matches!(a, HttpAction::Upgraded)));
    assert!(!closed && c.is_websocket());
    c
}

/// RFC 7395 §3.3–3.4: `<open/>` is answered with `<open/>`, then the features,
/// each its own message, with `stream:` declared; stanzas need a bound session.
#[test]
fn websocket_open_features_and_close() {
    let t0 = Instant::now();
    let mut c = upgraded(t0);
    let open = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";
    c.handle_bytes(&ws_text(open), t0);
    let (out, _, closed) = drain_raw(&mut c);
    let messages = ws_messages(&out);
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages[0].starts_with("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='"));
    assert!(messages[0].contains("from='localhost' version='1.0'"));
    assert!(messages[1].starts_with(
        "<stream:features xmlns:stream='http://etherx.jabber.org/streams'><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
    ));
    // Plain HTTP: no PLAIN, no channel binding.
    assert!(!messages[1].contains(">PLAIN<"));
    assert!(messages[1].contains("<register xmlns='http://jabber.org/features/iq-register'/>"));
    assert!(!closed);

    // In-band registration over the framed stream: one element per message, in
    // jabber:client with its namespace declared.
    c.handle_bytes(
        &ws_text("<iq xmlns='jabber:client' type='get' id='r1'><query xmlns='jabber:iq:register'/></iq>"),
        t0,
    );
    let (out, _, _) = drain_raw(&mut c);
    let messages = ws_messages(&out);
    assert_eq!(messages.len(), 1);
    assert!(
        messages[0].starts_with("<iq xmlns='jabber:client' type='result' id='r1'>"),
        "{messages:?}"
    );

    // The ping rate: a ping after 10 s.
    c.handle_timeout(t0 + Duration::from_secs(10));
    assert_eq!(ws_messages(&drain_raw(&mut c).0), vec!["PING"]);

    c.handle_bytes(
        &ws_text("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"),
        t0,
    );
    let (out, _, closed) = drain_raw(&mut c);
    assert_eq!(
        ws_messages(&out),
        vec![
            "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",
            "CLOSE 1000"
        ]
    );
    assert!(closed);
}

/// Bad XML in a message is a stream error in framed form, then the close.
#[test]
fn websocket_bad_xml_is_a_framed_stream_error() {
    let t0 = Instant::now();
    let mut c = upgraded(t0);
    c.handle_bytes(
        &ws_text("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>"),
        t0,
    );
    drain(&mut c);
    c.handle_bytes(&ws_text("<message><body>unclosed</message>"), t0);
    let (out, _, closed) = drain_raw(&mut c);
    let messages = ws_messages(&out);
    assert_eq!(
        messages,
        vec![
            "<stream:error xmlns:stream='http://etherx.jabber.org/streams'><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
            "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",
            "CLOSE 1000"
        ]
    );
    assert!(closed);
}

#[test]
fn websocket_handshake_needs_the_xmpp_subprotocol() {
    let t0 = Instant::now();
    let mut c = connection(t0);
    c.handle_bytes(
        UPGRADE
            .replace("Sec-WebSocket-Protocol: xmpp", "Sec-WebSocket-Protocol: chat")
            .as_bytes(),
        t0,
    );
    let (out, _, closed) = drain(&mut c);
    assert!(out.starts_with("HTTP/1.1 400 "), "{out}");
    assert!(closed);
    let mut c = connection(t0);
    c.handle_bytes(b"GET /ws-xmpp HTTP/1.1\r\nHost: localhost\r\n\r\n", t0);
    assert!(drain(&mut c).0.starts_with("HTTP/1.1 426 "));
}

// ---- BOSH ----

fn post(body: &str) -> Vec<u8> {
    format!(
        "POST /http-bind HTTP/1.1\r\nHost: localhost:5280\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The BOSH request an HTTP connection parsed out of `body`.
fn bosh_request(body: &str, t0: Instant) -> (HttpConnection, BoshBody) {
    let mut c = connection(t0);
    c.handle_bytes(&post(body), t0);
    let (out, other, _) = drain(&mut c);
    assert!(out.is_empty(), "{out}");
    let body = other
        .into_iter()
        .find_map(|a| match a {
            HttpAction::Bosh(b) => Some(*b),
            _ => None,
        })
        .expect("a BOSH request");
    (c, body)
}

fn body_of(s: &str) -> BoshBody {
    BoshBody::parse(s.as_bytes(), 65536).unwrap()
}

/// Replies by request, stream actions, and whether the session ended.
fn bosh_drain(s: &mut BoshSession) -> (Vec<(HttpRef, String)>, Vec<Action>, bool) {
    let (mut replies, mut stream, mut closed) = (Vec::new(), Vec::new(), false);
    while let Some(a) = s.poll_action() {
        match a {
            BoshAction::Respond { to, reply } => replies.push((to, String::from_utf8(reply.body).unwrap())),
            BoshAction::Stream(a) => stream.push(a),
            BoshAction::Close => closed = true,
            BoshAction::SetTimer(_) => {}
        }
    }
    (replies, stream, closed)
}

const CREATE: &str = "<body content='text/xml; charset=utf-8' hold='1' rid='1000' to='localhost' ver='1.6' \
    wait='20' xml:lang='en' xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>";

fn created(t0: Instant) -> BoshSession {
    let (_, body) = bosh_request(CREATE, t0);
    assert_eq!(body.sid(), None);
    let c2s = config().c2s.clone();
    let mut s = BoshSession::new(
        7,
        "s1d".into(),
        c2s,
        Arc::new(BoshConfig::default()),
        Box::new(rand_core::OsRng),
        body,
        1,
        t0,
        std::time::SystemTime::now(),
    );
    let (replies, _, closed) = bosh_drain(&mut s);
    assert!(!closed);
    assert_eq!(replies.len(), 1);
    let (to, body) = &replies[0];
    assert_eq!(*to, 1);
    for attr in [
        "sid='s1d'",
        "wait='20'",
        "hold='1'",
        "requests='2'",
        "inactivity='30'",
        "ver='1.11'",
        "from='localhost'",
        "xmpp:version='1.0'",
        "authid='",
    ] {
        assert!(body.contains(attr), "{attr} in {body}");
    }
    assert!(
        body.contains("><stream:features xmlns:stream='http://etherx.jabber.org/streams'><mechanisms"),
        "{body}"
    );
    s
}

/// XEP-0124 §7–§10: creation answered with the session's attributes and the
/// features; a request is held until there is something to send, or `wait`.
#[test]
fn bosh_creation_holding_and_wait() {
    let t0 = Instant::now();
    let mut s = created(t0);
    // rid 1001, empty: held.
    s.handle_request(
        body_of("<body rid='1001' sid='s1d' xmlns='http://jabber.org/protocol/httpbind'/>"),
        2,
        t0,
    );
    assert!(bosh_drain(&mut s).0.is_empty());
    // rid 1002 with a registration form request: the held 1001 gets the answer,
    // 1002 is held.
    s.handle_request(
        body_of("<body rid='1002' sid='s1d' xmlns='http://jabber.org/protocol/httpbind'><iq xmlns='jabber:client' type='get' id='g'><query xmlns='jabber:iq:register'/></iq></body>"),
        3,
        t0,
    );
    let (replies, _, _) = bosh_drain(&mut s);
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].0, 2);
    assert!(replies[0].1.starts_with("<body xmlns='http://jabber.org/protocol/httpbind'><iq xmlns='jabber:client' type='result' id='g'>"), "{}", replies[0].1);
    // After `wait`, the held 1002 gets an empty body.
    s.handle_timeout(t0 + Duration::from_secs(20));
    let (replies, _, _) = bosh_drain(&mut s);
    assert_eq!(
        replies,
        vec![(
            3,
            "<body xmlns='http://jabber.org/protocol/httpbind'/>".to_string()
        )]
    );
    // A retransmitted 1001 gets the same answer again (XEP-0124 §14.3).
    s.handle_request(
        body_of("<body rid='1001' sid='s1d' xmlns='http://jabber.org/protocol/httpbind'/>"),
        4,
        t0,
    );
    let (replies, _, _) = bosh_drain(&mut s);
    assert_eq!(replies.len(), 1);
    assert!(replies[0].1.contains("id='g'"));
}

/// XEP-0124 §14.1: a request ahead of its turn waits for the one before it.
#[test]
fn bosh_requests_are_processed_in_rid_order() {
    let t0 = Instant::now();
    let mut s = created(t0);
    s.handle_request(
        body_of("<body rid='1002' sid='s1d' xmlns='http://jabber.org/protocol/httpbind'><iq xmlns='jabber:client' type='get' id='second'><query xmlns='jabber:iq:register'/></iq></body>"),
        3,
        t0,
    );
    assert!(bosh_drain(&mut s).0.is_empty(), "1002 waits for 1001");
    s.handle_request(
        body_of("<body rid='1001' sid='s1d' xmlns='http://jabber.org/protocol/httpbind'><iq xmlns='jabber:client' type='get' id='first'><query xmlns='jabber:iq:register'/></iq></body>"),
        2,
        t0,
    );
    let (replies, _, _) = bosh_drain(&mut s);
    let all: String = replies.iter().map(|(_, b)| b.as_str()).collect();
    let (first, second) = (all.find("id='first'").unwrap(), all.find("id='second'").unwrap());
    assert!(first < second, "{all}");
    // Beyond the window: the session ends with item-not-found.
    s.handle_request(
        body_of("<body rid='1009' sid='s1d' xmlns='http://jabber.org/protocol/httpbind'/>"),
        5,
        t0,
    );
    let (replies, _, closed) = bosh_drain(&mut s);
    assert!(replies
        .iter()
        .any(|(to, b)| *to == 5 && b.contains("condition='item-not-found'")));
    assert!(closed);
}

/// XEP-0124 §12: the client terminates; its held requests are answered.
#[test]
fn bosh_client_terminates() {
    let t0 = Instant::now();
    let mut s = created(t0);
    s.handle_request(
        body_of("<body rid='1001' sid='s1d' type='terminate' xmlns='http://jabber.org/protocol/httpbind'/>"),
        2,
        t0,
    );
    let (replies, _, closed) = bosh_drain(&mut s);
    assert_eq!(
        replies,
        vec![(
            2,
            "<body xmlns='http://jabber.org/protocol/httpbind' type='terminate'/>".to_string()
        )]
    );
    assert!(closed);
}

/// XEP-0124 §10: without a request for `inactivity`, the session ends.
#[test]
fn bosh_inactivity_ends_the_session() {
    let t0 = Instant::now();
    let mut s = created(t0);
    s.handle_timeout(t0 + Duration::from_secs(29));
    assert!(!bosh_drain(&mut s).2);
    s.handle_timeout(t0 + Duration::from_secs(30));
    assert!(bosh_drain(&mut s).2, "ended after 30 s without a request");
}

/// A stream error reaches the client inside a terminate body with the
/// `remote-stream-error` condition (XEP-0206 §6).
#[test]
fn bosh_stream_error_terminates_with_remote_stream_error() {
    let t0 = Instant::now();
    let mut s = created(t0);
    s.handle_request(
        body_of("<body rid='1001' sid='s1d' xmlns='http://jabber.org/protocol/httpbind'><message xmlns='jabber:client'><body>too early</body></message></body>"),
        2,
        t0,
    );
    let (replies, _, closed) = bosh_drain(&mut s);
    assert_eq!(replies.len(), 1);
    assert!(
        replies[0]
            .1
            .contains("type='terminate' condition='remote-stream-error'>"),
        "{}",
        replies[0].1
    );
    assert!(replies[0]
        .1
        .contains("<stream:error xmlns:stream='http://etherx.jabber.org/streams'><not-authorized"));
    assert!(closed);
}

#[test]
fn bosh_bad_bodies_are_refused() {
    let t0 = Instant::now();
    let mut c = connection(t0);
    c.handle_bytes(&post("<notbody xmlns='x'/>"), t0);
    let (out, _, _) = drain(&mut c);
    assert!(out.starts_with("HTTP/1.1 400 "), "{out}");
    assert!(out.contains("condition='bad-request'"));
    // CORS preflight.
    let mut c = connection(t0);
    c.handle_bytes(
        b"OPTIONS /http-bind HTTP/1.1\r\nHost: localhost\r\nOrigin: http://a\r\n\r\n",
        t0,
    );
    let (out, _, _) = drain(&mut c);
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(out.contains("Access-Control-Allow-Origin: *\r\n"));
    // The BOSH handler is only at host localhost.
    let mut c = connection(t0);
    c.handle_bytes(&post(CREATE), t0);
    let (_, other, _) = drain(&mut c);
    assert!(other.iter().any(|a| matches!(a, HttpAction::Bosh(_))));
    let mut c = connection(t0);
    c.handle_bytes(
        &String::from_utf8(post(CREATE))
            .unwrap()
            .replace("Host: localhost:5280", "Host: other")
            .into_bytes(),
        t0,
    );
    assert!(drain(&mut c).0.starts_with("HTTP/1.1 404 "));
    // The reply to a BOSH request, with CORS.
    let (mut c, _) = bosh_request(CREATE, t0);
    c.handle_bosh_reply(BoshReply::terminate("item-not-found"), t0);
    let (out, _, _) = drain(&mut c);
    assert!(out.contains("Access-Control-Allow-Origin: *\r\n"));
    assert!(out.ends_with("condition='item-not-found'/>"));
}

/// XEP-0124 §10: with `hold='1'`, a second empty request makes the server answer
/// the first (empty), so the client always has a request to send on.
#[test]
fn bosh_never_holds_more_than_hold_requests() {
    let t0 = Instant::now();
    let mut s = created(t0);
    s.handle_request(
        body_of("<body rid='1001' sid='s1d' xmlns='http://jabber.org/protocol/httpbind'/>"),
        2,
        t0,
    );
    assert!(bosh_drain(&mut s).0.is_empty());
    s.handle_request(
        body_of("<body rid='1002' sid='s1d' xmlns='http://jabber.org/protocol/httpbind'/>"),
        3,
        t0,
    );
    let (replies, _, _) = bosh_drain(&mut s);
    assert_eq!(
        replies,
        vec![(
            2,
            "<body xmlns='http://jabber.org/protocol/httpbind'/>".to_string()
        )]
    );
}

/// XEP-0124 §10: a pause answers every held request and allows that long without
/// requests (at most `max_pause`), instead of `inactivity`.
#[test]
fn bosh_pause_lengthens_the_inactivity_allowed() {
    let t0 = Instant::now();
    let mut s = created(t0);
    s.handle_request(
        body_of("<body rid='1001' sid='s1d' xmlns='http://jabber.org/protocol/httpbind'/>"),
        2,
        t0,
    );
    s.handle_request(
        body_of("<body rid='1002' sid='s1d' pause='60' xmlns='http://jabber.org/protocol/httpbind'/>"),
        3,
        t0,
    );
    let (replies, _, _) = bosh_drain(&mut s);
    let answered: Vec<HttpRef> = replies.iter().map(|(to, _)| *to).collect();
    assert_eq!(answered, vec![2, 3], "both held requests answered at the pause");
    s.handle_timeout(t0 + Duration::from_secs(45));
    assert!(
        !bosh_drain(&mut s).2,
        "still there after the 30 s inactivity, paused for 60"
    );
    s.handle_timeout(t0 + Duration::from_secs(60));
    assert!(bosh_drain(&mut s).2, "ended at the end of the pause");
    // Requests for an ended session are told so.
    s.handle_request(
        body_of("<body rid='1003' sid='s1d' xmlns='http://jabber.org/protocol/httpbind'/>"),
        4,
        t0,
    );
    let (replies, _, _) = bosh_drain(&mut s);
    assert!(replies[0].1.contains("condition='item-not-found'"));
}
