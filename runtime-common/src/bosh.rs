//! Where BOSH sessions are found: HTTP requests name a session by its `sid`
//! (XEP-0124 §7), and may arrive on any connection, thread or executor; the
//! session lives in a task of its own, reached through its mailbox.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use meerkat_engine::http::{BoshBody, BoshReply, HttpConfig};
use rand_core::RngCore;

use crate::{Metrics, Session, Sink, ToSession};

/// Where the answer to one HTTP request goes (the mailbox of the connection that
/// read it).
pub type BoshReplyTo = Box<dyn FnOnce(BoshReply) + Send>;

/// A BOSH request on its way to its session.
pub struct BoshDelivery {
    /// The parsed `<body/>`.
    pub body: BoshBody,
    /// Where its answer goes.
    pub reply_to: BoshReplyTo,
}

impl std::fmt::Debug for BoshDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoshDelivery")
            .field("body", &self.body)
            .finish_non_exhaustive()
    }
}

/// A new session to start: the adapter spawns its task ([`crate::Session::bosh`]),
/// registers its mailbox under `sid`, and the session answers the creation request.
pub struct BoshStart {
    /// The session id, fresh and unguessable.
    pub sid: String,
    /// The HTTP listener's settings (its C2S and BOSH settings).
    pub config: Arc<HttpConfig>,
    /// The creation request.
    pub delivery: BoshDelivery,
    /// The client's address (the authentication backoff counts per address).
    pub peer: Option<std::net::IpAddr>,
}

impl BoshStart {
    /// The new session, reachable from now on by its `sid` through the mailbox
    /// `mailbox` makes for its id, and its logging span (its id, `sid` and, once
    /// bound, its JID).
    pub fn start<M: Sink<ToSession>>(
        self,
        shards: usize,
        metrics: Arc<Metrics>,
        sessions: &BoshSessions,
        mailbox: impl FnOnce(meerkat_engine::hub::SessionId) -> M,
        now: std::time::Instant,
    ) -> (Session, tracing::Span) {
        let id = crate::next_session_id();
        let span = tracing::info_span!(parent: None, "conn", kind = "bosh", id, sid = %self.sid, jid = tracing::field::Empty);
        sessions.register(&self.sid, mailbox(id));
        let session = span.in_scope(|| Session::bosh(id, self, shards, metrics, sessions.clone(), now));
        (session, span)
    }
}

impl std::fmt::Debug for BoshStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoshStart")
            .field("sid", &self.sid)
            .finish_non_exhaustive()
    }
}

type Mailbox = Box<dyn Fn(ToSession) + Send + Sync>;

/// The mailboxes of the live BOSH sessions, by `sid`; shared by every listener and
/// thread of the server.
#[derive(Clone, Default)]
pub struct BoshSessions(Arc<Mutex<HashMap<String, Mailbox>>>);

impl BoshSessions {
    /// A fresh session id: 128 random bits (XEP-0124 §7: unique and unpredictable).
    pub fn new_sid() -> String {
        let mut bytes = [0u8; 16];
        rand_core::OsRng.fill_bytes(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Session `sid` is reached through `mailbox` from now on.
    pub fn register<M: Sink<ToSession>>(&self, sid: &str, mailbox: M) {
        let send: Mailbox = Box::new(move |msg| mailbox.send(msg));
        self.lock().insert(sid.to_string(), send);
    }

    /// Session `sid` is over.
    pub fn unregister(&self, sid: &str) {
        self.lock().remove(sid);
    }

    /// Sends `msg` to session `sid`; gives it back if there is no such session.
    pub fn deliver(&self, sid: &str, msg: ToSession) -> Result<(), ToSession> {
        match self.lock().get(sid) {
            Some(send) => {
                send(msg);
                Ok(())
            }
            None => Err(msg),
        }
    }

    /// Live sessions.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no session is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Mailbox>> {
        // A panic while holding the lock leaves a map that is still consistent.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
