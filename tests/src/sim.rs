//! The in-memory server: one hub, many connections of every type (C2S, components,
//! incoming and outgoing S2S), an optional federation router, storage answered at
//! once, time advanced by hand. Two of them federate through [`crate::federation`].

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use meerkat_engine::federation::{Federation, FederationAction, FederationConfig, FederationInput};
use meerkat_engine::hub::{shard_of, Hub, HubAction, HubConfig, HubInput, RequestId, SessionId};
use meerkat_engine::instrument::Event;
use meerkat_engine::sasl::{StoredCredentials, DEFAULT_ITERATIONS};
use meerkat_engine::storage::{MemoryStorage, Storage, StorageReply, StorageRequest};
use meerkat_engine::stream::c2s::{C2s, C2sConfig, TransportSecurity};
use meerkat_engine::stream::component::{Component, ComponentConfig};
use meerkat_engine::stream::s2s_in::{S2sIn, S2sInConfig};
use meerkat_engine::stream::s2s_out::{DnsAnswer, DnsQuery, S2sOut, S2sOutConfig};
use meerkat_engine::stream::{Action, Connection, ConnectionInput};
use meerkat_engine::Jid;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

struct Conn {
    c2s: Connection,
    output: Vec<u8>,
    /// Every `Transmit` apart (a framed connection's messages).
    messages: Vec<Vec<u8>>,
    closed: bool,
    timer: Option<Instant>,
    /// The hub shard of the bound user, known from the session's bind.
    shard: usize,
}

/// A server in memory. See the crate docs.
pub struct Simulation {
    /// One hub per shard (`HubConfig::shards`, 1 unless a test shards the hub).
    hubs: Vec<Hub>,
    storage: Arc<dyn Storage>,
    config: Arc<C2sConfig>,
    conns: BTreeMap<SessionId, Conn>,
    next_id: SessionId,
    rng: ChaCha20Rng,
    start: Instant,
    now: Instant,
    wall: SystemTime,
    events: Vec<Event>,
    /// The federation router, when components or S2S are simulated.
    federation: Option<Federation>,
    /// Settings of the outgoing S2S connections the router opens.
    outgoing: Option<Arc<S2sOutConfig>>,
    /// TCP connects asked for by outgoing S2S connections, not yet answered.
    connects: Vec<(SessionId, SocketAddr)>,
    /// Every input the federation router got, in order.
    federation_log: Vec<FederationInput>,
}

impl Simulation {
    /// A simulation with the given C2S and hub settings and random seed. With
    /// `hub.shards` > 1 the hub is sharded as a multi-core runtime shards it, and
    /// work crosses shards through [`HubAction::Forward`].
    pub fn new(config: C2sConfig, hub: HubConfig, seed: u64) -> Self {
        let start = Instant::now();
        let shards = hub.shards.max(1);
        let hubs = (0..shards)
            .map(|shard| {
                Hub::new(HubConfig {
                    shard,
                    shards,
                    ..hub.clone()
                })
            })
            .collect();
        Self {
            hubs,
            storage: Arc::new(MemoryStorage::new()),
            config: Arc::new(config),
            conns: BTreeMap::new(),
            next_id: 1,
            rng: ChaCha20Rng::seed_from_u64(seed),
            start,
            now: start,
            // A fixed wall clock so that delay stamps are repeatable.
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_072_000),
            events: Vec::new(),
            federation: None,
            outgoing: None,
            connects: Vec::new(),
            federation_log: Vec::new(),
        }
    }

    /// Every input the federation router got so far.
    pub fn federation_log(&self) -> &[FederationInput] {
        &self.federation_log
    }

    /// Adds a federation router (components; S2S when `config.s2s`), opening
    /// outgoing S2S connections with `outgoing`. The hub then hands stanzas for other
    /// domains to the router.
    pub fn with_federation(mut self, config: FederationConfig, outgoing: Option<Arc<S2sOutConfig>>) -> Self {
        self.federation = Some(Federation::new(config));
        self.outgoing = outgoing;
        let hubs = std::mem::take(&mut self.hubs);
        self.hubs = hubs
            .into_iter()
            .map(|h| {
                Hub::new(HubConfig {
                    federation: true,
                    ..h.config().clone()
                })
            })
            .collect();
        self
    }

    /// Plain-text C2S (no TLS) for `localhost` with default settings.
    pub fn plain(seed: u64) -> Self {
        Self::new(
            C2sConfig::new(vec!["localhost".into()]),
            HubConfig::default(),
            seed,
        )
    }

    /// Creates an account directly in storage (as `meerkat user add` does).
    pub fn add_user(&mut self, jid: &str, password: &str) {
        self.add_user_with_iterations(jid, password, DEFAULT_ITERATIONS);
    }

    /// [`Simulation::add_user`] with another PBKDF2 iteration count: fuzzers and other
    /// harnesses that log in thousands of times a second use 1, which changes nothing
    /// in the protocol but the `i=` the server sends.
    pub fn add_user_with_iterations(&mut self, jid: &str, password: &str, iterations: u32) {
        let user = Jid::parse(jid).expect("valid JID");
        let credentials = StoredCredentials::derive(password, iterations, &mut self.rng);
        let reply = self
            .storage
            .execute(StorageRequest::CreateUser { user, credentials });
        assert_eq!(reply, StorageReply::Done, "creating {jid}");
    }

    /// The storage, to inspect what the server wrote.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Opens a connection and returns its id.
    pub fn connect(&mut self) -> SessionId {
        self.connect_with(None)
    }

    /// Opens a message-framed connection (RFC 7395 WebSocket, XEP-0206 BOSH): each
    /// [`Simulation::client_bytes`] is one message; `security` is what its TLS
    /// transport provides.
    pub fn connect_framed(&mut self, security: Option<TransportSecurity>) -> SessionId {
        self.connect_with(Some(security))
    }

    fn connect_with(&mut self, framed: Option<Option<TransportSecurity>>) -> SessionId {
        let id = self.next_id;
        let rng = self.fork_rng();
        let mut c2s = match framed {
            None => C2s::new(id, self.config.clone(), Box::new(rng), self.now),
            Some(security) => C2s::framed(id, self.config.clone(), Box::new(rng), self.now, security),
        };
        c2s.set_wall_clock(self.now, self.wall);
        self.add(Connection::C2s(c2s))
    }

    /// A component connects to a `[[listen.component]]` with `config`.
    pub fn connect_component(&mut self, config: Arc<ComponentConfig>) -> SessionId {
        let id = self.next_id;
        let rng = self.fork_rng();
        let c = Component::new(id, config, Box::new(rng), self.now);
        self.add(Connection::Component(c))
    }

    /// A remote server connects to a `[[listen.s2s]]` with `config`.
    pub fn accept_s2s(&mut self, config: Arc<S2sInConfig>) -> SessionId {
        let id = self.next_id;
        let rng = self.fork_rng();
        let c = S2sIn::new(id, config, Box::new(rng), self.now);
        self.add(Connection::S2sIn(c))
    }

    /// TCP connects outgoing S2S connections asked for since the last call.
    pub fn take_connects(&mut self) -> Vec<(SessionId, SocketAddr)> {
        std::mem::take(&mut self.connects)
    }

    /// The answer to a connect: the socket is up, or not.
    pub fn connected(&mut self, id: SessionId, ok: bool) {
        self.input(id, ConnectionInput::Connected(ok));
    }

    /// Gives connection `id` an input as the runtime would.
    pub fn input(&mut self, id: SessionId, input: ConnectionInput) {
        let now = self.now;
        if let Some(c) = self.conns.get_mut(&id) {
            c.c2s.handle_input(input, now);
        }
        self.settle();
    }

    fn fork_rng(&mut self) -> ChaCha20Rng {
        ChaCha20Rng::seed_from_u64(self.rng.next_u64())
    }

    fn add(&mut self, connection: Connection) -> SessionId {
        let id = self.next_id;
        self.next_id += 1;
        self.conns.insert(
            id,
            Conn {
                c2s: connection,
                output: Vec::new(),
                messages: Vec::new(),
                closed: false,
                timer: None,
                shard: 0,
            },
        );
        self.settle();
        id
    }

    /// Bytes from the client of connection `id`.
    pub fn client_bytes(&mut self, id: SessionId, bytes: &[u8]) {
        let now = self.now;
        if let Some(c) = self.conns.get_mut(&id) {
            c.c2s.handle_bytes(bytes, now);
        }
        self.settle();
    }

    /// The client of connection `id` hangs up.
    pub fn disconnect(&mut self, id: SessionId) {
        let now = self.now;
        if let Some(c) = self.conns.get_mut(&id) {
            c.c2s.handle_closed(now);
            c.closed = true;
        }
        self.settle();
    }

    /// Takes what the server wrote to connection `id` since the last call.
    pub fn take_output(&mut self, id: SessionId) -> Vec<u8> {
        self.conns
            .get_mut(&id)
            .map(|c| {
                c.messages.clear();
                std::mem::take(&mut c.output)
            })
            .unwrap_or_default()
    }

    /// Each `Transmit` to connection `id` since the last call, as text: on a framed
    /// connection, one message each.
    pub fn take_messages(&mut self, id: SessionId) -> Vec<String> {
        let Some(c) = self.conns.get_mut(&id) else {
            return Vec::new();
        };
        c.output.clear();
        c.messages
            .drain(..)
            .map(|m| String::from_utf8_lossy(&m).into_owned())
            .collect()
    }

    /// [`Simulation::take_output`] as text (for plain-text connections).
    pub fn output_string(&mut self, id: SessionId) -> String {
        String::from_utf8_lossy(&self.take_output(id)).into_owned()
    }

    /// True once the server closed connection `id`.
    pub fn is_closed(&self, id: SessionId) -> bool {
        self.conns.get(&id).is_none_or(|c| c.closed)
    }

    /// Instrumentation events seen so far.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Virtual time elapsed since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Moves the virtual clock (and the wall clock with it) forward, firing due
    /// timers of connections and hub shards.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.wall += by;
        let now = self.now;
        let mut hub_inputs = VecDeque::new();
        let mut fed_inputs = VecDeque::new();
        for shard in 0..self.hubs.len() {
            if self.hubs[shard].next_deadline().is_some_and(|d| d <= self.wall) {
                self.hubs[shard].handle_timeout(self.wall);
                while let Some(action) = self.hubs[shard].poll_action() {
                    self.on_hub_action(shard, action, &mut hub_inputs, &mut fed_inputs);
                }
            }
        }
        self.settle_with(hub_inputs, fed_inputs);
        for c in self.conns.values_mut() {
            if c.timer.is_some_and(|t| t <= now) && !c.closed {
                c.timer = None;
                c.c2s.handle_timeout(now);
            }
        }
        self.settle();
    }

    /// Runs every machine until none has anything left to do.
    fn settle(&mut self) {
        self.settle_with(VecDeque::new(), VecDeque::new());
    }

    fn settle_with(
        &mut self,
        mut hub_inputs: VecDeque<(usize, HubInput)>,
        mut fed_inputs: VecDeque<FederationInput>,
    ) {
        let shards = self.hubs.len();
        let mut replies: VecDeque<(SessionId, RequestId, StorageReply)> = VecDeque::new();
        let mut resolved: VecDeque<(SessionId, DnsAnswer)> = VecDeque::new();
        loop {
            let mut progressed = false;
            for (&id, conn) in self.conns.iter_mut() {
                while let Some(action) = conn.c2s.poll_action() {
                    progressed = true;
                    match action {
                        Action::Transmit(bytes) => {
                            conn.output.extend_from_slice(&bytes);
                            conn.messages.push(bytes);
                        }
                        Action::Hub(HubInput::External(stanza)) => {
                            let shard = stanza
                                .attr("to")
                                .and_then(|t| Jid::parse(t).ok())
                                .map_or(0, |to| shard_of(&to.bare(), shards));
                            hub_inputs.push_back((shard, HubInput::External(stanza)));
                        }
                        Action::Hub(input) => {
                            match &input {
                                HubInput::Bind { jid, .. } => conn.shard = shard_of(&jid.bare(), shards),
                                HubInput::Resume { user, .. } => conn.shard = shard_of(user, shards),
                                _ => {}
                            }
                            hub_inputs.push_back((conn.shard, input));
                        }
                        Action::Federation(input) => fed_inputs.push_back(input),
                        Action::Connect(addr) => self.connects.push((id, addr)),
                        // The simulated network has no DNS: every name is unknown, so
                        // only static addresses are reachable.
                        Action::Resolve(q) => {
                            let answer = match q {
                                DnsQuery::Srv(_) => DnsAnswer::Srv(Vec::new()),
                                DnsQuery::Host(_) => DnsAnswer::Addresses(Vec::new()),
                            };
                            resolved.push_back((id, answer));
                        }
                        Action::Request(rid, request) => {
                            replies.push_back((id, rid, self.storage.execute(request)));
                        }
                        Action::SetTimer(at) => conn.timer = Some(at),
                        // Virtual time: the shaper's pause costs nothing here.
                        Action::PauseReading(_) => {}
                        Action::Instrument(e) => self.events.push(e),
                        Action::Close => conn.closed = true,
                    }
                }
            }
            while let Some((shard, input)) = hub_inputs.pop_front() {
                progressed = true;
                self.hubs[shard].handle(input, self.wall);
                while let Some(action) = self.hubs[shard].poll_action() {
                    self.on_hub_action(shard, action, &mut hub_inputs, &mut fed_inputs);
                }
            }
            while let Some(input) = fed_inputs.pop_front() {
                progressed = true;
                let Some(f) = self.federation.as_mut() else {
                    continue;
                };
                self.federation_log.push(input.clone());
                f.handle(input, self.now);
                let actions: Vec<FederationAction> = std::iter::from_fn(|| f.poll_action()).collect();
                for action in actions {
                    self.on_federation_action(action, &mut hub_inputs);
                }
            }
            while let Some((id, answer)) = resolved.pop_front() {
                progressed = true;
                if let Some(c) = self.conns.get_mut(&id) {
                    c.c2s.handle_input(ConnectionInput::Resolved(answer), self.now);
                }
            }
            while let Some((id, rid, reply)) = replies.pop_front() {
                progressed = true;
                if let Some(c) = self.conns.get_mut(&id) {
                    c.c2s.handle_input(ConnectionInput::Reply(rid, reply), self.now);
                }
            }
            if !progressed {
                break;
            }
        }
    }

    fn deliver(&mut self, id: SessionId, input: ConnectionInput) {
        let now = self.now;
        if let Some(c) = self.conns.get_mut(&id) {
            c.c2s.handle_input(input, now);
        }
    }

    fn on_federation_action(
        &mut self,
        action: FederationAction,
        hub_inputs: &mut VecDeque<(usize, HubInput)>,
    ) {
        let shards = self.hubs.len();
        match action {
            FederationAction::Deliver { conn, stanza } => self.deliver(conn, ConnectionInput::Routed(stanza)),
            FederationAction::Open { conn, pair } => {
                let config = self.outgoing.clone().expect("outgoing S2S configured");
                let rng = self.fork_rng();
                let out = S2sOut::new(conn, pair, config, Box::new(rng), self.now);
                self.conns.insert(
                    conn,
                    Conn {
                        c2s: Connection::S2sOut(Box::new(out)),
                        output: Vec::new(),
                        messages: Vec::new(),
                        closed: false,
                        timer: None,
                        shard: 0,
                    },
                );
            }
            FederationAction::SendVerify { conn, request } => {
                self.deliver(conn, ConnectionInput::Verify(request))
            }
            FederationAction::Verified { request, valid } => {
                let conn = request.in_conn;
                self.deliver(conn, ConnectionInput::Verified(request, valid));
            }
            FederationAction::ComponentAnswer { conn, accepted } => {
                self.deliver(conn, ConnectionInput::ComponentAnswer(accepted))
            }
            FederationAction::Replaced { conn } => self.deliver(conn, ConnectionInput::Replaced),
            FederationAction::Hub(HubInput::Components(list)) => {
                for shard in 0..shards {
                    hub_inputs.push_back((shard, HubInput::Components(list.clone())));
                }
            }
            FederationAction::Hub(input) => {
                let shard = match &input {
                    HubInput::External(s) => s
                        .attr("to")
                        .and_then(|t| Jid::parse(t).ok())
                        .map_or(0, |to| shard_of(&to.bare(), shards)),
                    _ => 0,
                };
                hub_inputs.push_back((shard, input));
            }
        }
    }

    fn on_hub_action(
        &mut self,
        shard: usize,
        action: HubAction,
        hub_inputs: &mut VecDeque<(usize, HubInput)>,
        fed_inputs: &mut VecDeque<FederationInput>,
    ) {
        match action {
            HubAction::Deliver { session, stanza } => self.deliver(session, ConnectionInput::Routed(stanza)),
            HubAction::DeliverRaw { session, xml } => self.deliver(session, ConnectionInput::RoutedRaw(xml)),
            HubAction::Replaced { session } => self.deliver(session, ConnectionInput::Replaced),
            HubAction::External { stanza } => fed_inputs.push_back(FederationInput::Outbound(stanza)),
            HubAction::Request { id, request } => {
                let reply = self.storage.execute(request);
                hub_inputs.push_back((shard, HubInput::Reply { id, reply }));
            }
            HubAction::Forward { shard, work } => hub_inputs.push_back((shard, HubInput::Forwarded(work))),
            HubAction::Resumed { session, resumed } => {
                self.deliver(session, ConnectionInput::Resumed(resumed))
            }
            HubAction::ResumeFailed { session } => self.deliver(session, ConnectionInput::ResumeFailed),
            HubAction::Takeover { session } => self.deliver(session, ConnectionInput::Takeover),
        }
    }
}
