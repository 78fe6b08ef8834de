//! The federation router's task (one per server): the engine's
//! [`Federation`] plus the mailboxes of the S2S and component connections it talks to.

use std::collections::HashMap;
use std::time::Instant;

use meerkat_engine::federation::{
    DomainPair, Federation, FederationAction, FederationConfig, FederationInput,
};
use meerkat_engine::hub::{shard_of, HubInput, SessionId};
use meerkat_engine::Jid;

use crate::session::FederationReply;
use crate::{HubMsg, Sink, ToSession};

/// A message to the federation router's task; `M` is the runtime's session mailbox.
#[derive(Debug)]
pub enum FedMsg<M> {
    /// A connection's mailbox, for what the router says to it.
    Attach(SessionId, M),
    /// The connection ended (after its last input).
    Detach(SessionId),
    /// An input for the router.
    Input(FederationInput),
    /// The server is stopping.
    Stop,
}

/// The router and the mailboxes of the connections it knows.
pub struct FederationRouter<M> {
    federation: Federation,
    mailboxes: HashMap<SessionId, M>,
}

impl<M: Sink<ToSession>> FederationRouter<M> {
    /// A router for `config`.
    pub fn new(config: FederationConfig) -> Self {
        Self {
            federation: Federation::new(config),
            mailboxes: HashMap::new(),
        }
    }

    /// Handles one message; `shards` are the hub shards, `open` starts an outgoing
    /// S2S connection and returns its mailbox. Returns false on [`FedMsg::Stop`].
    pub fn on_message<S: Sink<HubMsg<M>>>(
        &mut self,
        msg: FedMsg<M>,
        shards: &[S],
        mut open: impl FnMut(SessionId, DomainPair) -> M,
    ) -> bool {
        match msg {
            FedMsg::Attach(id, mailbox) => {
                self.mailboxes.insert(id, mailbox);
            }
            FedMsg::Detach(id) => {
                self.mailboxes.remove(&id);
            }
            FedMsg::Stop => return false,
            FedMsg::Input(input) => {
                self.federation.handle(input, Instant::now());
                while let Some(action) = self.federation.poll_action() {
                    self.carry_out(action, shards, &mut open);
                }
            }
        }
        true
    }

    fn carry_out<S: Sink<HubMsg<M>>>(
        &mut self,
        action: FederationAction,
        shards: &[S],
        open: &mut impl FnMut(SessionId, DomainPair) -> M,
    ) {
        match action {
            FederationAction::Deliver { conn, stanza } => {
                self.send(conn, ToSession::Routed(Box::new(stanza)))
            }
            FederationAction::Open { conn, pair } => {
                let mailbox = open(conn, pair);
                self.mailboxes.insert(conn, mailbox);
            }
            FederationAction::SendVerify { conn, request } => self.send(
                conn,
                ToSession::Federation(Box::new(FederationReply::Verify(request))),
            ),
            FederationAction::Verified { request, valid } => {
                let conn = request.in_conn;
                self.send(
                    conn,
                    ToSession::Federation(Box::new(FederationReply::Verified(request, valid))),
                )
            }
            FederationAction::ComponentAnswer { conn, accepted } => self.send(
                conn,
                ToSession::Federation(Box::new(FederationReply::ComponentAnswer(accepted))),
            ),
            FederationAction::Replaced { conn } => self.send(conn, ToSession::Replaced),
            FederationAction::Hub(HubInput::Components(domains)) => {
                for shard in shards {
                    shard.send(HubMsg::Input(HubInput::Components(domains.clone())));
                }
            }
            FederationAction::Hub(input) => {
                let shard = match &input {
                    HubInput::External(stanza) => stanza
                        .attr("to")
                        .and_then(|t| Jid::parse(t).ok())
                        .map_or(0, |to| shard_of(&to.bare(), shards.len())),
                    _ => 0,
                };
                shards[shard].send(HubMsg::Input(input));
            }
        }
    }

    fn send(&self, conn: SessionId, msg: ToSession) {
        if let Some(m) = self.mailboxes.get(&conn) {
            m.send(msg);
        } else {
            tracing::debug!(conn, "no mailbox for a federation message");
        }
    }
}
