//! Hub scenarios. [`Harness`] plays the runtime: it feeds inputs, answers storage
//! requests from a [`MemoryStorage`] and collects what each session is sent.
//! Stanzas are compared in a canonical form (attributes sorted, the `jabber:client`
//! namespace of the top element left implicit), so expectations read like the
//! wire.

mod iq;
mod presence;
mod resumption;
mod roster;
mod routing;
mod sessions;
mod shards;
mod subscription;

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Forwarded, Hub, HubAction, HubConfig, HubInput, RequestId, SessionId};
use crate::jid::Jid;
use crate::ns;
use crate::storage::MemoryStorage;
use crate::storage::{RosterItem, Storage, StorageRequest, Subscription};
use crate::xml::{Element, Node};

/// 2026-11-25T12:00:00Z.
const NOW: u64 = 1_795_608_000;

pub(super) struct Harness {
    pub hub: Hub,
    pub storage: MemoryStorage,
    pub now: SystemTime,
    /// When set, storage requests wait in `requests` until [`Harness::answer`].
    pub manual: bool,
    pub requests: VecDeque<(RequestId, StorageRequest)>,
    /// Every request seen, in order.
    pub log: Vec<StorageRequest>,
    pub replaced: Vec<SessionId>,
    /// Work a sharded hub handed to other shards.
    pub forwarded: Vec<(usize, Forwarded)>,
    /// Stanzas handed to the federation router.
    pub external: Vec<String>,
    out: BTreeMap<SessionId, Vec<String>>,
}

pub(super) fn jid(s: &str) -> Jid {
    Jid::parse(s).unwrap()
}

impl Harness {
    pub fn new() -> Self {
        Self::with_config(HubConfig::default())
    }

    pub fn with_config(config: HubConfig) -> Self {
        Self {
            hub: Hub::new(config),
            storage: MemoryStorage::new(),
            now: UNIX_EPOCH + Duration::from_secs(NOW),
            manual: false,
            requests: VecDeque::new(),
            log: Vec::new(),
            replaced: Vec::new(),
            forwarded: Vec::new(),
            external: Vec::new(),
            out: BTreeMap::new(),
        }
    }

    /// A harness with these accounts.
    pub fn with_users(users: &[&str]) -> Self {
        let h = Self::new();
        for u in users {
            h.storage.add_user(&jid(u));
        }
        h
    }

    /// a@localhost/pc (session 1) and b@localhost/phone (session 2), subscribed to
    /// each other, both online with nothing left to read.
    pub fn friends() -> Self {
        let mut h = Self::with_users(&["a@localhost", "b@localhost"]);
        h.seed("a@localhost", "b@localhost", Subscription::Both);
        h.seed("b@localhost", "a@localhost", Subscription::Both);
        h.login(1, "a@localhost/pc");
        h.login(2, "b@localhost/phone");
        h.take(1);
        h
    }

    /// Stores a roster item directly (test setup).
    pub fn seed(&self, owner: &str, contact: &str, sub: Subscription) {
        let mut item = RosterItem::new(jid(contact));
        item.subscription = sub;
        self.seed_item(owner, item);
    }

    pub fn seed_item(&self, owner: &str, item: RosterItem) {
        self.storage.execute(StorageRequest::PutRosterItem {
            owner: jid(owner),
            item,
        });
    }

    pub fn input(&mut self, input: HubInput) {
        self.hub.handle(input, self.now);
        self.pump();
    }

    /// Drains the hub; unless `manual`, answers requests until nothing is left.
    pub fn pump(&mut self) {
        loop {
            while let Some(a) = self.hub.poll_action() {
                match a {
                    HubAction::Deliver { session, stanza } => {
                        self.out.entry(session).or_default().push(canon(&stanza))
                    }
                    HubAction::DeliverRaw { session, xml } => {
                        self.out.entry(session).or_default().push(format!("RAW {xml}"))
                    }
                    HubAction::Replaced { session } => self.replaced.push(session),
                    HubAction::Forward { shard, work } => self.forwarded.push((shard, work)),
                    HubAction::External { stanza } => self.external.push(canon(&stanza)),
                    HubAction::Request { id, request } => {
                        self.log.push(request.clone());
                        self.requests.push_back((id, request));
                    }
                    HubAction::Resumed { session, resumed } => {
                        let r = format!("RESUMED {} {:?}", resumed.jid, resumed.state.unacked);
                        self.out.entry(session).or_default().push(r)
                    }
                    HubAction::ResumeFailed { session } => {
                        self.out.entry(session).or_default().push("RESUME-FAILED".into())
                    }
                    HubAction::Takeover { session } => {
                        self.out.entry(session).or_default().push("TAKEOVER".into())
                    }
                }
            }
            if self.manual || !self.answer() {
                return;
            }
        }
    }

    /// Answers the oldest pending request; false when there was none.
    pub fn answer(&mut self) -> bool {
        let Some((id, request)) = self.requests.pop_front() else {
            return false;
        };
        let reply = self.storage.execute(request);
        self.hub.handle(HubInput::Reply { id, reply }, self.now);
        true
    }

    pub fn bind(&mut self, session: SessionId, full: &str) {
        self.input(HubInput::Bind {
            session,
            jid: jid(full),
        });
    }

    pub fn unbind(&mut self, session: SessionId) {
        self.input(HubInput::Unbind { session });
    }

    /// A stanza from `session` (the hub stamps `from` itself).
    pub fn send(&mut self, session: SessionId, stanza: Element) {
        self.input(HubInput::Stanza { session, stanza });
    }

    /// Bind, roster get, initial presence; clears what the session got.
    pub fn login(&mut self, session: SessionId, full: &str) {
        self.bind(session, full);
        self.send(session, iq("get", "r0", None, Element::new("query", ns::ROSTER)));
        self.send(session, presence(None, None));
        self.take(session);
    }

    /// What `session` received since the last call, in canonical form.
    pub fn take(&mut self, session: SessionId) -> Vec<String> {
        self.out.remove(&session).unwrap_or_default()
    }

    /// Asserts that no session has anything waiting.
    pub fn assert_quiet(&mut self) {
        let left: Vec<_> = std::mem::take(&mut self.out).into_iter().collect();
        assert!(left.is_empty(), "unexpected deliveries: {left:#?}");
    }

    /// The number of bare JIDs the hub holds state for.
    pub fn users_in_memory(&self) -> usize {
        self.hub.users.len()
    }
}

/// Attributes sorted, recursively; top-level `jabber:client` implicit.
pub(super) fn canon(e: &Element) -> String {
    fn sorted(e: &Element) -> Element {
        let mut attrs: Vec<(&str, &str)> = e.attrs().collect();
        attrs.sort();
        let mut out = Element::new(e.name(), e.ns());
        for (n, v) in attrs {
            out.set_attr(n, v);
        }
        for node in e.nodes() {
            match node {
                Node::Element(c) => out.push_child(sorted(c)),
                Node::Text(t) => out.push_text(t.clone()),
            }
        }
        out
    }
    sorted(e).to_xml_in(ns::CLIENT)
}

pub(super) fn message(to: &str, kind: &str, body: &str) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attr("to", to)
        .with_attr("type", kind)
        .with_child(Element::new("body", ns::CLIENT).with_text(body))
}

/// `<presence/>` with optional `to` and `type`.
pub(super) fn presence(to: Option<&str>, kind: Option<&str>) -> Element {
    let mut p = Element::new("presence", ns::CLIENT);
    if let Some(t) = to {
        p.set_attr("to", t);
    }
    if let Some(k) = kind {
        p.set_attr("type", k);
    }
    p
}

pub(super) fn presence_with_priority(priority: i8) -> Element {
    presence(None, None).with_child(Element::new("priority", ns::CLIENT).with_text(priority.to_string()))
}

pub(super) fn iq(kind: &str, id: &str, to: Option<&str>, payload: Element) -> Element {
    let mut e = Element::new("iq", ns::CLIENT)
        .with_attr("type", kind)
        .with_attr("id", id);
    if let Some(t) = to {
        e.set_attr("to", t);
    }
    e.with_child(payload)
}

pub(super) fn roster_item(contact: &str) -> Element {
    Element::new("item", ns::ROSTER).with_attr("jid", contact)
}

pub(super) fn roster_set(id: &str, item: Element) -> Element {
    iq(
        "set",
        id,
        None,
        Element::new("query", ns::ROSTER).with_child(item),
    )
}
