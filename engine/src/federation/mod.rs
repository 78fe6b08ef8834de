//! The federation router: where a stanza for a domain not served here goes
//! (RFC 6120 §10.4): to the external component registered for that domain
//! (XEP-0114), or over an outgoing S2S stream to the remote server (RFC 6120 §10.4.3),
//! opened on demand, one per domain pair, with the stanzas queued while it is being
//! set up and bounced if it fails.
//!
//! Like the hub, the router is a sans-IO state machine: inputs through
//! [`Federation::handle`], outputs drained with [`Federation::poll_action`]. There is
//! one per server; the hub shards send it what they cannot deliver locally
//! ([`crate::hub::HubAction::External`]), and the S2S and component connections tell
//! it what happens to them. It also relays Server Dialback verifications
//! (XEP-0220 §2.3) from incoming streams to outgoing ones and back.

mod routes;
pub mod srv;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::hub::{HubInput, SessionId};
use crate::jid::Jid;
use crate::stream::StanzaError;
use crate::xml::Element;

pub use routes::DomainPair;
use routes::OutRoute;

/// S2S policy (MongooseIM's `s2s.default_policy` and `s2s.host_policy`): whether
/// connections to and from a remote domain are allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S2sPolicy {
    /// `default_policy = "allow"`.
    pub default_allow: bool,
    /// `host_policy`: per remote domain, `true` for allow.
    pub hosts: HashMap<String, bool>,
}

impl Default for S2sPolicy {
    fn default() -> Self {
        Self {
            default_allow: true,
            hosts: HashMap::new(),
        }
    }
}

impl S2sPolicy {
    /// True when S2S with `remote` is allowed.
    pub fn allows(&self, remote: &str) -> bool {
        self.hosts.get(remote).copied().unwrap_or(self.default_allow)
    }
}

/// Router settings.
#[derive(Debug, Clone)]
pub struct FederationConfig {
    /// Served domains: a stanza to one of them never reaches the router.
    pub hosts: Vec<String>,
    /// Whether outgoing S2S is configured (`[s2s.outgoing]` or a `[[listen.s2s]]`);
    /// without it, remote domains are unreachable.
    pub s2s: bool,
    /// Who may be federated with.
    pub policy: S2sPolicy,
    /// After a failed connection, how long stanzas to that domain bounce at once
    /// before a new attempt; doubled on each failure up to `max_retry_delay`
    /// (MongooseIM's `s2s.outgoing.max_retry_delay`).
    pub max_retry_delay: Duration,
    /// Stanzas that may wait for one domain pair while its outgoing stream is being
    /// set up (`[s2s.outgoing] max_queued_stanzas`); past it they bounce with
    /// `resource-constraint` (RFC 6120 §8.3.3.18).
    pub max_queued_stanzas: usize,
}

impl FederationConfig {
    /// Components only, no S2S: what tests and simulations start from.
    pub fn new(hosts: Vec<String>) -> Self {
        Self {
            hosts,
            s2s: false,
            policy: S2sPolicy::default(),
            max_retry_delay: Duration::from_secs(300),
            max_queued_stanzas: DEFAULT_MAX_QUEUED_STANZAS,
        }
    }
}

/// [`FederationConfig::max_queued_stanzas`] when not configured.
pub const DEFAULT_MAX_QUEUED_STANZAS: usize = 1000;

/// Why an outgoing S2S connection never got to carry stanzas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutFailure {
    /// No address for the domain, every connect failed, or the peer refused us
    /// (`remote-server-not-found`, RFC 6120 §8.3.3.15).
    NotFound,
    /// A connect or negotiation step timed out (`remote-server-timeout`, §8.3.3.16).
    Timeout,
}

impl OutFailure {
    /// The stanza error queued stanzas bounce with.
    pub fn stanza_error(self) -> StanzaError {
        match self {
            OutFailure::NotFound => StanzaError::RemoteServerNotFound,
            OutFailure::Timeout => StanzaError::RemoteServerTimeout,
        }
    }
}

/// A Server Dialback key to verify (XEP-0220 §2.3): the receiving server `local`
/// got `key` on incoming stream `stream_id` from `remote`, and asks `remote`'s
/// authoritative server whether it is right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialbackRequest {
    /// The incoming connection waiting for the answer.
    pub in_conn: SessionId,
    /// The receiving server (ours).
    pub local: String,
    /// The originating server, whose authoritative server is asked.
    pub remote: String,
    /// The id of the incoming stream.
    pub stream_id: String,
    /// The key the originating server sent.
    pub key: String,
}

/// An input to the router.
#[derive(Debug, Clone, PartialEq)]
pub enum FederationInput {
    /// A stanza for a domain not served here, from the hub (its `from` is final).
    Outbound(Element),
    /// A component authenticated for `domain` on connection `conn`; answered with
    /// [`FederationAction::ComponentAnswer`].
    ComponentUp {
        /// The connection.
        conn: SessionId,
        /// The component's domain.
        domain: String,
        /// Left out of disco#items (`hidden_components`).
        hidden: bool,
        /// `conflict_behaviour = "kick_old"`: a newer component replaces the one
        /// registered; otherwise the newer one is refused.
        kick_old: bool,
    },
    /// A component connection ended.
    ComponentDown {
        /// The connection.
        conn: SessionId,
    },
    /// An outgoing S2S stream is authenticated and can carry stanzas.
    OutEstablished {
        /// The connection.
        conn: SessionId,
    },
    /// An outgoing S2S connection ended. `failure` is set when it never got to
    /// carry stanzas; `unsent` are stanzas it was given but did not write.
    OutClosed {
        /// The connection.
        conn: SessionId,
        /// Why it failed, if it did.
        failure: Option<OutFailure>,
        /// Stanzas given to it and not written.
        unsent: Vec<Element>,
    },
    /// An incoming stream got a dialback key to verify.
    DialbackVerify(DialbackRequest),
    /// An outgoing stream got the authoritative server's answer.
    DialbackVerified {
        /// The request answered.
        request: DialbackRequest,
        /// The answer.
        valid: bool,
    },
}

/// An output of the router.
#[derive(Debug, Clone, PartialEq)]
pub enum FederationAction {
    /// Write `stanza` on connection `conn` (a component or an established S2S
    /// stream).
    Deliver {
        /// The connection.
        conn: SessionId,
        /// The stanza.
        stanza: Element,
    },
    /// Open outgoing S2S connection `conn` from `local` to `remote`.
    Open {
        /// The id the connection gets.
        conn: SessionId,
        /// The domain pair.
        pair: DomainPair,
    },
    /// Ask outgoing connection `conn` to send a dialback verification.
    SendVerify {
        /// The outgoing connection.
        conn: SessionId,
        /// The request.
        request: DialbackRequest,
    },
    /// Tell incoming connection `request.in_conn` the verification result.
    Verified {
        /// The request.
        request: DialbackRequest,
        /// The answer.
        valid: bool,
    },
    /// Whether component connection `conn` may serve its domain.
    ComponentAnswer {
        /// The connection.
        conn: SessionId,
        /// True: registered.
        accepted: bool,
    },
    /// Component `conn` was replaced by a newer one (`kick_old`): close it with
    /// `conflict`.
    Replaced {
        /// The connection.
        conn: SessionId,
    },
    /// An input for the hub: a bounce to route back to a local user, or the new list
    /// of visible components (to every shard).
    Hub(HubInput),
}

/// A registered component.
#[derive(Debug, Clone)]
struct ComponentRoute {
    conn: SessionId,
    hidden: bool,
}

/// Ids of outgoing connections live in their own range so they never meet the ids
/// the runtime gives accepted connections.
pub const FIRST_OUT_CONN: SessionId = 1 << 62;

/// The router (see the module docs).
pub struct Federation {
    config: FederationConfig,
    components: HashMap<String, ComponentRoute>,
    out: HashMap<DomainPair, OutRoute>,
    out_conns: HashMap<SessionId, DomainPair>,
    /// The retry delay of the last failure of a pair whose new attempt is under way.
    retry_delays: HashMap<DomainPair, Option<Duration>>,
    next_conn: SessionId,
    actions: VecDeque<FederationAction>,
}

impl Federation {
    /// A router with `config`.
    pub fn new(config: FederationConfig) -> Self {
        Self {
            config,
            components: HashMap::new(),
            out: HashMap::new(),
            out_conns: HashMap::new(),
            retry_delays: HashMap::new(),
            next_conn: FIRST_OUT_CONN,
            actions: VecDeque::new(),
        }
    }

    /// The next output, `None` when there is nothing to do.
    pub fn poll_action(&mut self) -> Option<FederationAction> {
        self.actions.pop_front()
    }

    /// The domains of the registered components, visible or not.
    pub fn component_domains(&self) -> impl Iterator<Item = &str> {
        self.components.keys().map(String::as_str)
    }

    /// Feeds one input at `now`.
    pub fn handle(&mut self, input: FederationInput, now: Instant) {
        match input {
            FederationInput::Outbound(stanza) => self.outbound(stanza, now),
            FederationInput::ComponentUp {
                conn,
                domain,
                hidden,
                kick_old,
            } => self.component_up(conn, domain, hidden, kick_old),
            FederationInput::ComponentDown { conn } => self.component_down(conn),
            FederationInput::OutEstablished { conn } => self.out_established(conn),
            FederationInput::OutClosed {
                conn,
                failure,
                unsent,
            } => self.out_closed(conn, failure, unsent, now),
            FederationInput::DialbackVerify(request) => self.verify(request, now),
            FederationInput::DialbackVerified { request, valid } => self
                .actions
                .push_back(FederationAction::Verified { request, valid }),
        }
    }

    fn outbound(&mut self, stanza: Element, now: Instant) {
        let Some((from, to)) = addresses(&stanza) else {
            tracing::debug!("dropping a stanza without usable from/to");
            return;
        };
        if let Some(route) = self.components.get(to.domain()) {
            let conn = route.conn;
            return self.actions.push_back(FederationAction::Deliver { conn, stanza });
        }
        if !self.config.s2s || self.is_own_subdomain(to.domain()) {
            // Our own subdomains are only reachable as components, and without S2S
            // nothing remote is (RFC 6120 §10.4.3).
            return self.bounce(&stanza, StanzaError::RemoteServerNotFound);
        }
        if !self.config.policy.allows(to.domain()) {
            tracing::info!(remote = to.domain(), "S2S denied by policy");
            return self.bounce(&stanza, StanzaError::RemoteServerNotFound);
        }
        let pair = DomainPair {
            local: from.domain().to_string(),
            remote: to.domain().to_string(),
        };
        self.send_out(pair, stanza, now);
    }

    fn is_own_subdomain(&self, domain: &str) -> bool {
        self.config.hosts.iter().any(|h| {
            domain.len() > h.len()
                && domain.ends_with(h.as_str())
                && domain[..domain.len() - h.len()].ends_with('.')
        })
    }

    /// RFC 6120 §8.3.1: the error reply to `stanza`, routed back through the hub.
    fn bounce(&mut self, stanza: &Element, error: StanzaError) {
        if stanza.attr("type") == Some("error") || stanza.attr("from").is_none() {
            return;
        }
        // Presence other than subscription requests is not answered (RFC 6121 §4.4.3:
        // a broadcast to an unreachable contact is not an error the user can act on).
        if stanza.name() == "presence" && stanza.attr("type") != Some("subscribe") {
            return;
        }
        if stanza.name() == "iq" && !matches!(stanza.attr("type"), Some("get" | "set")) {
            return;
        }
        self.actions
            .push_back(FederationAction::Hub(HubInput::External(error.reply_to(stanza))));
    }

    fn fresh_conn(&mut self) -> SessionId {
        let id = self.next_conn;
        self.next_conn += 1;
        id
    }

    fn component_up(&mut self, conn: SessionId, domain: String, hidden: bool, kick_old: bool) {
        let conflict = self.config.hosts.contains(&domain);
        if conflict {
            return self.actions.push_back(FederationAction::ComponentAnswer {
                conn,
                accepted: false,
            });
        }
        if let Some(old) = self.components.get(&domain).map(|r| r.conn) {
            if !kick_old {
                return self.actions.push_back(FederationAction::ComponentAnswer {
                    conn,
                    accepted: false,
                });
            }
            self.actions.push_back(FederationAction::Replaced { conn: old });
        }
        self.components.insert(domain, ComponentRoute { conn, hidden });
        self.actions
            .push_back(FederationAction::ComponentAnswer { conn, accepted: true });
        self.announce_components();
    }

    fn component_down(&mut self, conn: SessionId) {
        let before = self.components.len();
        self.components.retain(|_, r| r.conn != conn);
        if self.components.len() != before {
            self.announce_components();
        }
    }

    /// XEP-0030: the hub lists visible components in the server's disco#items.
    fn announce_components(&mut self) {
        let mut visible: Vec<String> = self
            .components
            .iter()
            .filter(|(_, r)| !r.hidden)
            .map(|(d, _)| d.clone())
            .collect();
        visible.sort();
        self.actions
            .push_back(FederationAction::Hub(HubInput::Components(visible)));
    }
}

/// The parsed `from` and `to` of a stanza.
fn addresses(stanza: &Element) -> Option<(Jid, Jid)> {
    let from = Jid::parse(stanza.attr("from")?).ok()?;
    let to = Jid::parse(stanza.attr("to")?).ok()?;
    Some((from, to))
}
