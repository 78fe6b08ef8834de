//! Outgoing S2S routes, one per domain pair (RFC 6120 §13.4: a server may open one
//! stream per pair; several pairs may share a stream, but Meerkat opens one per
//! pair so that each is authenticated on its own).

use std::time::{Duration, Instant};

use super::{DialbackRequest, Federation, FederationAction, OutFailure};
use crate::hub::SessionId;
use crate::xml::Element;

/// A local domain and a remote domain: what an S2S stream is authenticated for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DomainPair {
    /// Ours.
    pub local: String,
    /// Theirs.
    pub remote: String,
}

/// Where a pair's outgoing stream is.
#[derive(Debug)]
pub(super) enum OutRoute {
    /// Connection `conn` is being set up; stanzas wait in `queue`.
    Connecting { conn: SessionId, queue: Vec<Element> },
    /// Connection `conn` carries stanzas.
    Established { conn: SessionId },
    /// The last attempt failed: stanzas bounce with `failure` until `retry_at`;
    /// the next failure waits twice `delay`.
    Failed {
        failure: OutFailure,
        retry_at: Instant,
        delay: Duration,
    },
}

/// The wait after a first failure.
const FIRST_RETRY_DELAY: Duration = Duration::from_secs(1);

impl Federation {
    /// Sends `stanza` over the pair's stream, opening it if needed.
    pub(super) fn send_out(&mut self, pair: DomainPair, stanza: Element, now: Instant) {
        match self.out.get_mut(&pair) {
            Some(OutRoute::Established { conn }) => {
                let conn = *conn;
                self.actions.push_back(FederationAction::Deliver { conn, stanza });
            }
            Some(OutRoute::Connecting { queue, .. }) => {
                if queue.len() < self.config.max_queued_stanzas {
                    queue.push(stanza);
                } else {
                    // RFC 6120 §8.3.3.18: the server lacks the resources to take
                    // more for this domain now; the sender may retry later.
                    tracing::warn!(
                        remote = %pair.remote,
                        queued = queue.len(),
                        "S2S queue full while connecting: bouncing (max_queued_stanzas)"
                    );
                    self.bounce(&stanza, crate::stream::StanzaError::ResourceConstraint);
                }
            }
            Some(OutRoute::Failed {
                failure, retry_at, ..
            }) if now < *retry_at => {
                let error = failure.stanza_error();
                self.bounce(&stanza, error);
            }
            _ => {
                let conn = self.open(pair);
                if let Some(OutRoute::Connecting { queue, .. }) = self.out_route(conn) {
                    queue.push(stanza);
                }
            }
        }
    }

    fn out_route(&mut self, conn: SessionId) -> Option<&mut OutRoute> {
        let pair = self.out_conns.get(&conn)?;
        self.out.get_mut(pair)
    }

    /// Starts a connection for `pair`, remembering how long the last failure made us
    /// wait (kept in the `Failed` state this replaces).
    fn open(&mut self, pair: DomainPair) -> SessionId {
        let conn = self.fresh_conn();
        let delay = match self.out.get(&pair) {
            Some(OutRoute::Failed { delay, .. }) => Some(*delay),
            _ => None,
        };
        self.retry_delays_insert(&pair, delay);
        self.out.insert(
            pair.clone(),
            OutRoute::Connecting {
                conn,
                queue: Vec::new(),
            },
        );
        self.out_conns.insert(conn, pair.clone());
        self.actions.push_back(FederationAction::Open { conn, pair });
        conn
    }

    pub(super) fn out_established(&mut self, conn: SessionId) {
        let Some(route) = self.out_route(conn) else { return };
        let queue = match std::mem::replace(route, OutRoute::Established { conn }) {
            OutRoute::Connecting { queue, .. } => queue,
            _ => Vec::new(),
        };
        if let Some(pair) = self.out_conns.get(&conn).cloned() {
            self.retry_delays.remove(&pair);
        }
        for stanza in queue {
            self.actions.push_back(FederationAction::Deliver { conn, stanza });
        }
    }

    pub(super) fn out_closed(
        &mut self,
        conn: SessionId,
        failure: Option<OutFailure>,
        unsent: Vec<Element>,
        now: Instant,
    ) {
        let Some(pair) = self.out_conns.remove(&conn) else {
            return;
        };
        let current = matches!(
            self.out.get(&pair),
            Some(OutRoute::Connecting { conn: c, .. } | OutRoute::Established { conn: c }) if *c == conn
        );
        if !current {
            // An older connection of the pair; its stanzas still deserve a route.
            for stanza in unsent {
                self.outbound(stanza, now);
            }
            return;
        }
        let queue = match self.out.remove(&pair) {
            Some(OutRoute::Connecting { queue, .. }) => queue,
            _ => Vec::new(),
        };
        let pending = queue.into_iter().chain(unsent);
        match failure {
            Some(failure) => {
                let delay = self
                    .retry_delays
                    .remove(&pair)
                    .flatten()
                    .map_or(FIRST_RETRY_DELAY, |d| (d * 2).min(self.config.max_retry_delay));
                tracing::info!(remote = %pair.remote, ?failure, ?delay, "outgoing S2S failed");
                let error = failure.stanza_error();
                for stanza in pending {
                    self.bounce(&stanza, error);
                }
                self.out.insert(
                    pair,
                    OutRoute::Failed {
                        failure,
                        retry_at: now + delay,
                        delay,
                    },
                );
            }
            None => {
                // A stream that closed after working (idle timeout, peer close): what
                // it did not write goes over a new one.
                self.retry_delays.remove(&pair);
                for stanza in pending {
                    self.outbound(stanza, now);
                }
            }
        }
    }

    fn retry_delays_insert(&mut self, pair: &DomainPair, delay: Option<Duration>) {
        self.retry_delays.insert(pair.clone(), delay);
    }

    /// XEP-0220 §2.3: the verification goes to the originating domain's
    /// authoritative server over our outgoing stream to it (any state: a `db:verify`
    /// needs no authenticated stream).
    pub(super) fn verify(&mut self, request: DialbackRequest, now: Instant) {
        let pair = DomainPair {
            local: request.local.clone(),
            remote: request.remote.clone(),
        };
        let conn = match self.out.get(&pair) {
            Some(OutRoute::Connecting { conn, .. } | OutRoute::Established { conn }) => *conn,
            Some(OutRoute::Failed { retry_at, .. }) if now < *retry_at => {
                return self.actions.push_back(FederationAction::Verified {
                    request,
                    valid: false,
                });
            }
            _ => self.open(pair),
        };
        self.actions
            .push_back(FederationAction::SendVerify { conn, request });
    }
}
