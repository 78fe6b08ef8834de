//! Listening sockets, made the same way on every runtime, and the answer to a
//! connection refused by [`crate::Admission`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use meerkat_engine::stream::c2s::TlsMode;

use crate::admission::{Admission, Answering, Refusal, Refused};
use crate::spec::ListenerKind;

/// One listener to open: where, what runs on its connections, who may connect.
#[derive(Debug, Clone)]
pub struct Listener {
    /// Address to bind.
    pub addr: SocketAddr,
    /// The state machine its connections run.
    pub kind: ListenerKind,
    /// Its connection count and limits (`backlog` included), shared by every
    /// thread accepting on it.
    pub admission: Arc<Admission>,
}

/// A bound, listening, non-blocking TCP socket on `addr` with the listener's
/// `backlog` (MongooseIM's `listen.*.backlog`; tokio's own bind would use 1024 and
/// std's 128 whatever the config says). SO_REUSEADDR lets a restarted server bind
/// while connections of the previous run linger in TIME_WAIT; `reuse_port` lets
/// several sockets share the address (glommio's one listener per executor).
pub fn listen_socket(
    addr: SocketAddr,
    backlog: u32,
    reuse_port: bool,
) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    #[cfg(not(unix))]
    let _ = reuse_port;
    if addr.is_ipv6() {
        // "::" means IPv6 only, as a separate "0.0.0.0" listener may exist.
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// What to write to a connection refused for `reason` on a listener of `kind`
/// before closing it: on an HTTP listener `503 Service Unavailable`; on the others
/// our stream header, the stream error with its text, and the closing tag (RFC 6120
/// §4.9.1.1), as the listener's state machine writes them (content namespace,
/// `from`). `None` on a direct-TLS listener: nothing can be said
/// there before a TLS handshake, and a handshake for a refused connection would
/// spend the CPU the limit protects; that socket is closed without a word (and the
/// refusal is logged).
pub fn refusal_bytes(kind: &ListenerKind, reason: Refusal) -> Option<Vec<u8>> {
    if kind.tls_mode() == TlsMode::Tls {
        return None;
    }
    if let ListenerKind::Http(_) = kind {
        // RFC 9110 §15.6.4: the server cannot take the request now.
        let text = reason.text();
        return Some(
            format!(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\nRetry-After: 5\r\n\r\n{text}\n",
                text.len() + 1
            )
            .into_bytes(),
        );
    }
    let now = Instant::now();
    let metrics = Arc::new(crate::Metrics::default());
    let mut session = kind.session(0, 1, metrics, &crate::BoshSessions::default(), now);
    session.end_with_error(reason.stream_error(), reason.text(), now);
    let mut bytes = Vec::new();
    while let Some(effect) = session.next_effect() {
        if let crate::Effect::Write(b) = effect {
            bytes.extend_from_slice(&b);
        }
    }
    Some(bytes)
}

impl Refused {
    /// What the adapter writes to the refused connection, with the guard to hold
    /// while it does; `None`: close the socket at once (too many answers in flight,
    /// or a direct-TLS listener, see [`refusal_bytes`]).
    pub fn answer(self, kind: &ListenerKind) -> Option<(Answering, Vec<u8>)> {
        let guard = self.answer?;
        Some((guard, refusal_bytes(kind, self.reason)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meerkat_engine::stream::c2s::C2sConfig;

    #[test]
    fn a_refused_client_gets_a_stream_error_in_its_namespace() {
        let kind = ListenerKind::C2s(Arc::new(C2sConfig::new(vec!["example.com".into()])));
        let bytes = refusal_bytes(&kind, Refusal::AddressFull(3)).expect("plain listener answers");
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.starts_with("<?xml version='1.0'?><stream:stream xmlns='jabber:client'"),
            "{text}"
        );
        assert!(text.contains("from='example.com'"), "{text}");
        assert!(
            text.contains("<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"),
            "{text}"
        );
        assert!(
            text.contains("too many connections from your address (at most 3)"),
            "{text}"
        );
        assert!(text.ends_with("</stream:stream>"), "{text}");
    }

    #[test]
    fn a_refused_http_client_gets_503_with_the_reason() {
        let c2s = Arc::new(C2sConfig::new(vec!["example.com".into()]));
        let kind = ListenerKind::Http(Arc::new(meerkat_engine::http::HttpConfig::new(c2s, Vec::new())));
        let bytes = refusal_bytes(&kind, Refusal::ListenerFull(10)).expect("plain HTTP answers");
        let text = String::from_utf8(bytes).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{text}");
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{text}"
        );
        assert!(body.contains("too many connections (10 open)"), "{text}");
    }

    #[test]
    fn a_direct_tls_listener_cannot_answer_before_a_handshake() {
        let mut config = C2sConfig::new(vec!["example.com".into()]);
        config.tls_mode = TlsMode::Tls;
        let kind = ListenerKind::C2s(Arc::new(config));
        assert_eq!(refusal_bytes(&kind, Refusal::ListenerFull(1)), None);
    }

    #[test]
    fn the_backlog_is_the_configured_one() {
        let socket = listen_socket("127.0.0.1:0".parse().unwrap(), 7, false).unwrap();
        assert!(socket.local_addr().unwrap().port() != 0);
        // A second socket on the same port fails without reuse_port.
        let addr = socket.local_addr().unwrap();
        assert!(listen_socket(addr, 7, false).is_err());
    }
}
