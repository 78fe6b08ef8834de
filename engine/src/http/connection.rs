//! One HTTP connection: TLS if the listener has it, requests parsed and routed, and
//! after a WebSocket upgrade (RFC 6455 §4, RFC 7395 §3.1) the frames of the C2S
//! stream it carries.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_core::RngCore;

use super::bosh::{BoshBody, BoshReply};
use super::request::{Request, RequestError, RequestParser};
use super::response::Response;
use super::websocket::{self, close_code, FrameDecoder, Opcode, WsEvent};
use super::{Handler, HttpConfig, WebSocketOptions, HEALTH_PATH, PROMETHEUS_CONTENT_TYPE};
use crate::hub::SessionId;
use crate::stream::c2s::{C2s, TransportSecurity};
use crate::stream::Action;
use crate::tls::TlsSession;

/// An output of an [`HttpConnection`], drained by the runtime until `None`.
// `Stream` carries an engine action inline, as `C2s::poll_action` returns it: the
// queue is drained at once, and boxing would cost an allocation per stanza.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum HttpAction {
    /// Write these bytes to the socket.
    Transmit(Vec<u8>),
    /// Call [`HttpConnection::handle_timeout`] at this instant (replaces any earlier).
    SetTimer(Instant),
    /// The shaper of the WebSocket stream asks to stop reading until this instant.
    PauseReading(Instant),
    /// An action of the C2S stream carried over WebSocket (hub, storage,
    /// instrumentation), to carry out as for any C2S connection.
    Stream(Action),
    /// The metrics page was asked for: answer with [`HttpConnection::handle_metrics`].
    RenderMetrics,
    /// A BOSH request for the session its `sid` names (none: a new session); its
    /// answer comes back through [`HttpConnection::handle_bosh_reply`].
    Bosh(Box<BoshBody>),
    /// The connection upgraded to WebSocket and now carries a C2S stream.
    Upgraded,
    /// Flush what was transmitted, then close. Nothing follows.
    Close,
}

/// Where the connection is.
enum State {
    /// Waiting for (or reading) a request.
    Reading,
    /// A request is being answered elsewhere (metrics, a BOSH session); until its
    /// deadline, after which the client gets a BOSH `item-not-found`.
    Answering { keep_alive: bool, deadline: Instant },
    /// Upgraded: WebSocket frames of a C2S stream.
    WebSocket(Box<WsStream>),
    /// Over; every input is ignored.
    Closed,
}

/// The C2S stream of an upgraded connection.
struct WsStream {
    c2s: C2s,
    decoder: FrameDecoder,
    options: WebSocketOptions,
    c2s_deadline: Option<Instant>,
    ping_due: Option<Instant>,
    idle_deadline: Option<Instant>,
}

/// An HTTP connection.
pub struct HttpConnection {
    id: SessionId,
    config: Arc<HttpConfig>,
    /// For the C2S stream of a WebSocket upgrade; taken then.
    rng: Option<Box<dyn RngCore + Send>>,
    tls: Option<TlsSession>,
    parser: RequestParser,
    state: State,
    idle_deadline: Option<Instant>,
    armed: Option<Instant>,
    stopping: bool,
    /// Plaintext to send (encrypted on flush when TLS is on).
    out: Vec<u8>,
    actions: VecDeque<HttpAction>,
    /// An instant and the wall-clock time it was, for the C2S stream of an upgrade
    /// (see [`C2s::set_wall_clock`]).
    wall: Option<(Instant, std::time::SystemTime)>,
    /// The client's address, for the C2S stream of an upgrade (the
    /// authentication backoff counts failures per address).
    peer: Option<std::net::IpAddr>,
}

/// How long a request may wait for a BOSH session's answer beyond the session's
/// own longest wait, before the client is told the session is gone.
const ANSWER_GRACE: Duration = Duration::from_secs(10);

impl HttpConnection {
    /// A connection accepted at `now` on a listener with `config`; `rng` is for the
    /// C2S stream of a WebSocket upgrade.
    pub fn new(id: SessionId, config: Arc<HttpConfig>, rng: Box<dyn RngCore + Send>, now: Instant) -> Self {
        let tls = config
            .tls
            .as_ref()
            .and_then(|identity| TlsSession::new(identity).ok());
        let mut conn = Self {
            id,
            parser: RequestParser::new(config.limits),
            idle_deadline: Some(now + config.keep_alive_timeout),
            config,
            rng: Some(rng),
            tls,
            state: State::Reading,
            armed: None,
            stopping: false,
            out: Vec::new(),
            actions: VecDeque::new(),
            wall: None,
            peer: None,
        };
        if conn.config.tls.is_some() && conn.tls.is_none() {
            conn.state = State::Closed;
            conn.actions.push_back(HttpAction::Close);
        } else {
            conn.rearm();
        }
        conn
    }

    /// Tells the connection that `at` is the wall-clock time `wall` (runtimes call
    /// it once at creation), for the C2S stream of a WebSocket upgrade (FAST token
    /// expiry).
    pub fn set_wall_clock(&mut self, at: Instant, wall: std::time::SystemTime) {
        self.wall = Some((at, wall));
    }

    /// The client's address (see [`C2s::set_peer`]).
    pub fn set_peer(&mut self, peer: std::net::IpAddr) {
        self.peer = Some(peer);
    }

    /// The client's address, when the runtime said it.
    pub fn peer(&self) -> Option<std::net::IpAddr> {
        self.peer
    }

    /// The listener's settings.
    pub fn config(&self) -> &Arc<HttpConfig> {
        &self.config
    }

    /// True once upgraded to WebSocket.
    pub fn is_websocket(&self) -> bool {
        matches!(self.state, State::WebSocket(_))
    }

    /// Bytes read from the socket.
    pub fn handle_bytes(&mut self, bytes: &[u8], now: Instant) {
        if matches!(self.state, State::Closed) {
            return;
        }
        let plain = match &mut self.tls {
            Some(tls) => {
                let mut plain = Vec::new();
                let result = tls.read(bytes, &mut plain);
                let mut wire = Vec::new();
                tls.take_output(&mut wire);
                if !wire.is_empty() {
                    self.actions.push_back(HttpAction::Transmit(wire));
                }
                if let Err(e) = result {
                    tracing::debug!(error = %e, "TLS failure");
                    return self.close(now);
                }
                plain
            }
            None => bytes.to_vec(),
        };
        if !plain.is_empty() {
            if let State::WebSocket(_) = self.state {
                self.ws_input(&plain, now);
            } else {
                self.parser.feed(&plain);
                self.idle_deadline = None;
                self.read_requests(now);
            }
        }
        self.flush();
        self.rearm();
    }

    /// The deadline of the last `SetTimer` has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.armed = None;
        match &mut self.state {
            State::Closed => return,
            State::WebSocket(ws) => {
                if ws.c2s_deadline.is_some_and(|d| d <= now) {
                    ws.c2s_deadline = None;
                    ws.c2s.handle_timeout(now);
                }
                if ws.idle_deadline.is_some_and(|d| d <= now) {
                    tracing::info!("WebSocket idle past its timeout; closing");
                    ws.c2s.handle_closed(now);
                    let mut frame = Vec::new();
                    websocket::encode_close(close_code::GOING_AWAY, &mut frame);
                    self.out.extend_from_slice(&frame);
                } else if ws.ping_due.is_some_and(|d| d <= now) {
                    websocket::encode_frame(Opcode::Ping, b"", &mut self.out);
                    ws.ping_due = ws.options.ping_rate.map(|r| now + r);
                }
                self.pump_c2s(now);
            }
            State::Answering { deadline, .. } if *deadline <= now => {
                self.handle_bosh_reply(BoshReply::terminate("item-not-found"), now);
            }
            State::Reading if self.idle_deadline.is_some_and(|d| d <= now) => {
                return self.close(now);
            }
            _ => {}
        }
        self.flush();
        self.rearm();
    }

    /// The socket closed or failed.
    pub fn handle_closed(&mut self, now: Instant) {
        if let State::WebSocket(ws) = &mut self.state {
            ws.c2s.handle_closed(now);
            self.pump_c2s(now);
        }
        if !matches!(self.state, State::Closed) {
            self.state = State::Closed;
            self.actions.push_back(HttpAction::Close);
        }
    }

    /// The server is stopping: a WebSocket stream gets `system-shutdown`, an idle
    /// connection closes, the health endpoint says so until then.
    pub fn handle_shutdown(&mut self, now: Instant) {
        self.stopping = true;
        match &mut self.state {
            State::WebSocket(ws) => {
                ws.c2s.handle_shutdown(now);
                self.pump_c2s(now);
            }
            State::Reading => return self.close(now),
            _ => {}
        }
        self.flush();
        self.rearm();
    }

    /// Runs `f` on the C2S stream of an upgraded connection (a message from the hub
    /// or storage for it), then carries out what it did.
    pub fn with_c2s(&mut self, now: Instant, f: impl FnOnce(&mut C2s)) {
        if let State::WebSocket(ws) = &mut self.state {
            f(&mut ws.c2s);
            self.pump_c2s(now);
            self.flush();
            self.rearm();
        }
    }

    /// The metrics page asked for by [`HttpAction::RenderMetrics`].
    pub fn handle_metrics(&mut self, text: String, now: Instant) {
        let response = Response {
            status: 200,
            headers: vec![("Content-Type", PROMETHEUS_CONTENT_TYPE.into())],
            body: text.into_bytes(),
        };
        self.answer(response, now);
    }

    /// A BOSH session's answer to the request of [`HttpAction::Bosh`].
    pub fn handle_bosh_reply(&mut self, reply: BoshReply, now: Instant) {
        let response = Response {
            status: reply.status,
            headers: vec![("Content-Type", "text/xml; charset=utf-8".into())],
            body: reply.body,
        };
        self.answer(with_cors(response), now);
    }

    /// The next action, `None` when there is nothing more to do now.
    pub fn poll_action(&mut self) -> Option<HttpAction> {
        self.actions.pop_front()
    }

    // ---- requests ----

    fn read_requests(&mut self, now: Instant) {
        while matches!(self.state, State::Reading) {
            match self.parser.next_request() {
                Ok(None) => break,
                Ok(Some(request)) => self.on_request(request, now),
                Err(e) => {
                    tracing::debug!(error = %e, "bad HTTP request");
                    self.respond(e.into(), false, now);
                }
            }
        }
    }

    fn on_request(&mut self, request: Request, now: Instant) {
        let keep_alive = request.keep_alive() && !self.stopping;
        let host = request.host();
        let handler = self.config.route(host.as_deref(), request.path()).cloned();
        tracing::debug!(method = %request.method, path = request.path(), "HTTP request");
        match handler {
            None if request.path() == HEALTH_PATH => self.on_health(&request, keep_alive, now),
            None => self.respond(Response::text(404, "no handler at this path\n"), keep_alive, now),
            Some(Handler::Prometheus) => match request.method.as_str() {
                "GET" | "HEAD" => {
                    self.state = State::Answering {
                        keep_alive,
                        deadline: now + ANSWER_GRACE,
                    };
                    self.actions.push_back(HttpAction::RenderMetrics);
                }
                _ => self.respond(not_allowed("GET, HEAD"), keep_alive, now),
            },
            Some(Handler::Bosh) => self.on_bosh_request(request, keep_alive, now),
            Some(Handler::WebSocket(options)) => self.on_upgrade(&request, options, now),
        }
    }

    fn on_health(&mut self, request: &Request, keep_alive: bool, now: Instant) {
        if !matches!(request.method.as_str(), "GET" | "HEAD") {
            return self.respond(not_allowed("GET, HEAD"), keep_alive, now);
        }
        let response = if self.stopping {
            Response::text(503, "stopping\n")
        } else {
            Response::text(200, "ok\n")
        };
        self.respond(response.with_header("Cache-Control", "no-store"), keep_alive, now);
    }

    /// XEP-0124 §7–§8: a `<body/>` for a session. Browsers ask first whether they
    /// may post from another origin (CORS preflight).
    fn on_bosh_request(&mut self, request: Request, keep_alive: bool, now: Instant) {
        match request.method.as_str() {
            "OPTIONS" => {
                let response = Response {
                    status: 200,
                    headers: vec![
                        ("Access-Control-Allow-Methods", "POST, OPTIONS".into()),
                        ("Access-Control-Allow-Headers", "Content-Type".into()),
                        ("Access-Control-Max-Age", "86400".into()),
                    ],
                    body: Vec::new(),
                };
                self.respond(with_cors(response), keep_alive, now);
            }
            "POST" => match BoshBody::parse(&request.body, self.config.c2s.max_stanza_size) {
                Ok(mut body) => {
                    body.secure = self.tls.is_some();
                    self.state = State::Answering {
                        keep_alive,
                        deadline: now + self.config.bosh.max_wait + ANSWER_GRACE,
                    };
                    self.actions.push_back(HttpAction::Bosh(Box::new(body)));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "bad BOSH body");
                    let reply = BoshReply::terminate("bad-request");
                    let response = Response {
                        status: 400,
                        headers: vec![("Content-Type", "text/xml; charset=utf-8".into())],
                        body: reply.body,
                    };
                    self.respond(with_cors(response), keep_alive, now);
                }
            },
            _ => self.respond(not_allowed("POST, OPTIONS"), keep_alive, now),
        }
    }

    /// RFC 6455 §4.2 and RFC 7395 §3.1: the opening handshake, with the `xmpp`
    /// subprotocol; then the C2S stream starts.
    fn on_upgrade(&mut self, request: &Request, options: WebSocketOptions, now: Instant) {
        if request.method != "GET" {
            return self.respond(not_allowed("GET"), false, now);
        }
        if !request.header_has_token("upgrade", "websocket")
            || !request.header_has_token("connection", "upgrade")
        {
            let response = Response::text(426, "this is a WebSocket endpoint (RFC 7395)\n")
                .with_header("Upgrade", "websocket");
            return self.respond(response, false, now);
        }
        let key = request.header("sec-websocket-key").filter(|k| !k.is_empty());
        let (Some(key), Some("13")) = (key, request.header("sec-websocket-version")) else {
            let response = Response::text(400, "a WebSocket version 13 handshake is required\n")
                .with_header("Sec-WebSocket-Version", "13");
            return self.respond(response, false, now);
        };
        if !request.header_has_token("sec-websocket-protocol", "xmpp") {
            return self.respond(
                Response::text(
                    400,
                    "the xmpp WebSocket subprotocol is required (RFC 7395 §3.1)\n",
                ),
                false,
                now,
            );
        }
        let response = Response {
            status: 101,
            headers: vec![
                ("Upgrade", "websocket".into()),
                ("Connection", "Upgrade".into()),
                ("Sec-WebSocket-Accept", websocket::accept_key(key)),
                ("Sec-WebSocket-Protocol", "xmpp".into()),
            ],
            body: Vec::new(),
        };
        self.out.extend_from_slice(&response.to_bytes(true));
        let security = self.tls.as_ref().map(|tls| TransportSecurity {
            channel_bindings: tls.channel_bindings(),
        });
        let rng = self.rng.take().unwrap_or_else(|| Box::new(rand_core::OsRng));
        let mut c2s_config = (*self.config.c2s).clone();
        c2s_config.max_stanza_size = options.max_stanza_size;
        let mut c2s = C2s::framed(self.id, Arc::new(c2s_config), rng, now, security);
        if let Some((at, wall)) = self.wall {
            c2s.set_wall_clock(at, wall);
        }
        if let Some(peer) = self.peer {
            c2s.set_peer(peer);
        }
        let ws = WsStream {
            c2s,
            decoder: FrameDecoder::new(options.max_stanza_size),
            ping_due: options.ping_rate.map(|r| now + r),
            idle_deadline: options.timeout.map(|t| now + t),
            c2s_deadline: None,
            options,
        };
        self.state = State::WebSocket(Box::new(ws));
        self.idle_deadline = None;
        self.actions.push_back(HttpAction::Upgraded);
        tracing::debug!("upgraded to WebSocket");
        let rest = self.parser.take_rest();
        self.pump_c2s(now);
        if !rest.is_empty() {
            self.ws_input(&rest, now);
        }
    }

    /// Writes a response; the connection then reads the next request, or closes.
    fn respond(&mut self, response: Response, keep_alive: bool, now: Instant) {
        self.out.extend_from_slice(&response.to_bytes(keep_alive));
        if keep_alive {
            self.state = State::Reading;
            self.idle_deadline = Some(now + self.config.keep_alive_timeout);
        } else {
            self.close(now);
        }
    }

    /// The answer to the request in `Answering`; then the pipelined ones.
    fn answer(&mut self, response: Response, now: Instant) {
        let State::Answering { keep_alive, .. } = self.state else {
            return;
        };
        self.respond(response, keep_alive, now);
        self.read_requests(now);
        self.flush();
        self.rearm();
    }

    // ---- WebSocket ----

    fn ws_input(&mut self, bytes: &[u8], now: Instant) {
        let State::WebSocket(ws) = &mut self.state else {
            return;
        };
        ws.decoder.feed(bytes);
        ws.idle_deadline = ws.options.timeout.map(|t| now + t);
        loop {
            let State::WebSocket(ws) = &mut self.state else {
                return;
            };
            match ws.decoder.next_event() {
                Ok(None) => break,
                Ok(Some(WsEvent::Message(message))) => {
                    ws.c2s.handle_bytes(&message, now);
                    self.pump_c2s(now);
                }
                Ok(Some(WsEvent::Ping(data))) => websocket::encode_frame(Opcode::Pong, &data, &mut self.out),
                Ok(Some(WsEvent::Pong)) => {}
                Ok(Some(WsEvent::Close(code))) => {
                    // RFC 6455 §5.5.1: answer the close; a stream not closed with
                    // `<close/>` first stays resumable (XEP-0198).
                    tracing::debug!(?code, "WebSocket closed by the client");
                    ws.c2s.handle_closed(now);
                    websocket::encode_close(close_code::NORMAL, &mut self.out);
                    self.pump_c2s(now);
                    return self.close(now);
                }
                Err(violation) => {
                    tracing::info!(code = violation.0, "WebSocket protocol violation");
                    ws.c2s.handle_closed(now);
                    websocket::encode_close(violation.0, &mut self.out);
                    self.pump_c2s(now);
                    return self.close(now);
                }
            }
        }
    }

    /// Carries out what the C2S stream did: each element written becomes a text
    /// message (RFC 7395 §3.3.3); the end of the stream, a close frame.
    fn pump_c2s(&mut self, now: Instant) {
        loop {
            let State::WebSocket(ws) = &mut self.state else {
                return;
            };
            let Some(action) = ws.c2s.poll_action() else {
                return;
            };
            match action {
                Action::Transmit(bytes) => websocket::encode_frame(Opcode::Text, &bytes, &mut self.out),
                Action::SetTimer(at) => ws.c2s_deadline = Some(at),
                Action::PauseReading(until) => self.actions.push_back(HttpAction::PauseReading(until)),
                Action::Close => {
                    websocket::encode_close(close_code::NORMAL, &mut self.out);
                    // Whatever else the stream queued (its unbind) goes first.
                    while let Some(action) = ws.c2s.poll_action() {
                        if !matches!(action, Action::Transmit(_) | Action::SetTimer(_) | Action::Close) {
                            self.actions.push_back(HttpAction::Stream(action));
                        }
                    }
                    return self.close(now);
                }
                other => self.actions.push_back(HttpAction::Stream(other)),
            }
        }
    }

    // ---- output ----

    fn close(&mut self, _now: Instant) {
        if matches!(self.state, State::Closed) {
            return;
        }
        if let Some(tls) = &mut self.tls {
            if !self.out.is_empty() {
                tls.write(&std::mem::take(&mut self.out));
            }
            tls.close();
        }
        self.flush();
        self.state = State::Closed;
        self.actions.push_back(HttpAction::Close);
    }

    fn flush(&mut self) {
        let wire = match &mut self.tls {
            Some(tls) => {
                if !self.out.is_empty() {
                    tls.write(&std::mem::take(&mut self.out));
                }
                let mut wire = Vec::new();
                tls.take_output(&mut wire);
                wire
            }
            None => std::mem::take(&mut self.out),
        };
        if wire.is_empty() {
            return;
        }
        match self.actions.iter().position(|a| matches!(a, HttpAction::Close)) {
            Some(i) => self.actions.insert(i, HttpAction::Transmit(wire)),
            None => self.actions.push_back(HttpAction::Transmit(wire)),
        }
    }

    /// Asks for a timer at the earliest deadline, when that changed.
    fn rearm(&mut self) {
        let next = match &self.state {
            State::Closed => None,
            State::Reading => self.idle_deadline,
            State::Answering { deadline, .. } => Some(*deadline),
            State::WebSocket(ws) => [ws.c2s_deadline, ws.ping_due, ws.idle_deadline]
                .into_iter()
                .flatten()
                .min(),
        };
        if let Some(at) = next.filter(|n| Some(*n) != self.armed) {
            self.armed = Some(at);
            self.actions.push_back(HttpAction::SetTimer(at));
        }
    }
}

fn not_allowed(allow: &str) -> Response {
    Response::text(405, "method not allowed\n").with_header("Allow", allow.to_string())
}

/// BOSH is posted to from web pages of any origin (XEP-0124 §3: a connection
/// manager is a service of its own); the browser enforces nothing else.
fn with_cors(response: Response) -> Response {
    response.with_header("Access-Control-Allow-Origin", "*")
}

/// The answer to a request that cannot be served: its status and why.
impl From<RequestError> for Response {
    fn from(e: RequestError) -> Self {
        Response::text(e.status(), format!("{e}\n"))
    }
}
