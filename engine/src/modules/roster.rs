//! Rosters (RFC 6121 §2): the in-memory roster of one user, the wire form of its
//! items, and validation of roster sets.
//!
//! A roster also holds records that are not roster items yet: a subscription request
//! from a contact who is not in the roster must be remembered ("Pending In",
//! RFC 6121 §3.1.3) but must not appear in the roster. Such a record has
//! [`RosterItem::in_roster`] false; its shape says nothing, since a contact added
//! without handle or groups looks the same.

use std::collections::BTreeMap;

use crate::jid::Jid;
use crate::ns;
use crate::storage::{RosterItem, Subscription};
use crate::stream::StanzaError;
use crate::xml::Element;

use super::presence::{has_from, has_to};

/// Longest `name` or `<group/>` accepted in a roster set, in bytes (RFC 6121 §2.3.3:
/// a server-configured limit, past which the answer is `not-acceptable`).
pub const MAX_TEXT_LEN: usize = 1023;

/// One user's roster, keyed by the contacts' bare JIDs (sorted, so that roster
/// results are deterministic).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roster {
    items: BTreeMap<Jid, RosterItem>,
}

impl Roster {
    /// A roster holding `items` (as loaded from storage).
    pub fn new(items: Vec<RosterItem>) -> Self {
        Self {
            items: items.into_iter().map(|i| (i.jid.clone(), i)).collect(),
        }
    }

    /// The record for `contact` (a bare JID), hidden or not.
    pub fn get(&self, contact: &Jid) -> Option<&RosterItem> {
        self.items.get(contact)
    }

    /// Inserts or replaces the record `item.jid`.
    pub fn insert(&mut self, item: RosterItem) {
        self.items.insert(item.jid.clone(), item);
    }

    /// Removes the record for `contact`.
    pub fn remove(&mut self, contact: &Jid) -> Option<RosterItem> {
        self.items.remove(contact)
    }

    /// The item for `contact` if it is in the roster (hidden records left out).
    pub fn item(&self, contact: &Jid) -> Option<&RosterItem> {
        self.items.get(contact).filter(|i| i.in_roster)
    }

    /// RFC 6121 §2.1.3: the items a roster get returns (hidden records left out).
    pub fn visible(&self) -> impl Iterator<Item = &RosterItem> {
        self.items.values().filter(|i| i.in_roster)
    }

    /// Contacts that receive the owner's presence (`from` or `both`), RFC 6121 §4.2.2.
    pub fn subscribers(&self) -> impl Iterator<Item = &Jid> {
        self.items.values().filter(|i| has_from(i)).map(|i| &i.jid)
    }

    /// Contacts whose presence the owner receives (`to` or `both`), probed at login
    /// (RFC 6121 §4.2.2).
    pub fn subscriptions(&self) -> impl Iterator<Item = &Jid> {
        self.items.values().filter(|i| has_to(i)).map(|i| &i.jid)
    }

    /// Contacts whose subscription request awaits an answer (RFC 6121 §3.1.3),
    /// redelivered at each login.
    pub fn pending_in(&self) -> impl Iterator<Item = &Jid> {
        self.items.values().filter(|i| i.pending_in).map(|i| &i.jid)
    }
}

/// The part of an item that clients see (RFC 6121 §2.1.2): a change in it is
/// pushed.
pub fn same_on_wire(a: &RosterItem, b: &RosterItem) -> bool {
    a.subscription == b.subscription
        && a.ask_out == b.ask_out
        && a.approved == b.approved
        && a.name == b.name
        && a.groups == b.groups
}

/// RFC 6121 §2.1.2: `<item jid='..' [name='..'] subscription='..' [ask='subscribe']
/// [approved='true']><group>..</group></item>`.
pub fn item_element(item: &RosterItem) -> Element {
    let mut e = Element::new("item", ns::ROSTER).with_attr("jid", item.jid.to_string());
    if let Some(name) = &item.name {
        e.set_attr("name", name.as_str());
    }
    e.set_attr("subscription", item.subscription.as_str());
    if item.ask_out {
        e.set_attr("ask", "subscribe");
    }
    if item.approved {
        e.set_attr("approved", "true");
    }
    for g in &item.groups {
        e.push_child(Element::new("group", ns::ROSTER).with_text(g.as_str()));
    }
    e
}

/// RFC 6121 §2.5.2: the item of a push announcing that `contact` was removed.
pub fn removed_element(contact: &Jid) -> Element {
    Element::new("item", ns::ROSTER)
        .with_attr("jid", contact.to_string())
        .with_attr("subscription", Subscription::Remove.as_str())
}

/// `<query xmlns='jabber:iq:roster'>` holding `items`.
pub fn query<'a>(items: impl IntoIterator<Item = &'a RosterItem>) -> Element {
    let mut q = Element::new("query", ns::ROSTER);
    for i in items {
        q.push_child(item_element(i));
    }
    q
}

/// RFC 6121 §2.1.6: a roster push of `item` (built by [`item_element`] or
/// [`removed_element`]) to the interested resource `to`.
pub fn push(to: &Jid, id: &str, item: Element) -> Element {
    Element::new("iq", ns::CLIENT)
        .with_attr("type", "set")
        .with_attr("id", id)
        .with_attr("to", to.to_string())
        .with_child(Element::new("query", ns::ROSTER).with_child(item))
}

/// A valid roster set (RFC 6121 §2.3, §2.4, §2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RosterSet {
    /// Add or update `jid` with this handle and these groups (§2.3, §2.4). The
    /// subscription state is the server's business: a client's `subscription`
    /// (other than `remove`), `ask` and `approved` are ignored.
    Update {
        /// The contact's bare JID.
        jid: Jid,
        /// The handle, if any.
        name: Option<String>,
        /// The groups, without duplicates.
        groups: Vec<String>,
    },
    /// Delete `jid` (§2.5).
    Remove(Jid),
}

/// Checks the `<query/>` of a roster set (RFC 6121 §2.3.3): exactly one `<item/>`
/// with a bare `jid` (`bad-request`), no duplicate group (`bad-request`), no empty
/// or over-long group or name (`not-acceptable`).
pub fn parse_set(query: &Element) -> Result<RosterSet, StanzaError> {
    let mut items = query.children().filter(|c| c.is("item", ns::ROSTER));
    let (Some(item), None) = (items.next(), items.next()) else {
        return Err(StanzaError::BadRequest);
    };
    let jid = item
        .attr("jid")
        .and_then(|j| Jid::parse(j).ok())
        .filter(Jid::is_bare)
        .ok_or(StanzaError::BadRequest)?;
    if item.attr("subscription") == Some(Subscription::Remove.as_str()) {
        return Ok(RosterSet::Remove(jid));
    }
    let name = match item.attr("name") {
        Some(n) if n.len() > MAX_TEXT_LEN => return Err(StanzaError::NotAcceptable),
        Some("") | None => None,
        Some(n) => Some(n.to_string()),
    };
    let mut groups: Vec<String> = Vec::new();
    for g in item.children().filter(|c| c.is("group", ns::ROSTER)) {
        let text = g.text();
        if text.is_empty() || text.len() > MAX_TEXT_LEN {
            return Err(StanzaError::NotAcceptable);
        }
        if groups.contains(&text) {
            return Err(StanzaError::BadRequest);
        }
        groups.push(text);
    }
    Ok(RosterSet::Update { jid, name, groups })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> Jid {
        Jid::parse(s).unwrap()
    }

    fn query_with(items: Vec<Element>) -> Element {
        let mut q = Element::new("query", ns::ROSTER);
        for i in items {
            q.push_child(i);
        }
        q
    }

    fn item(j: &str) -> Element {
        Element::new("item", ns::ROSTER).with_attr("jid", j)
    }

    fn group(g: &str) -> Element {
        Element::new("group", ns::ROSTER).with_text(g)
    }

    #[test]
    fn item_wire_form() {
        let mut i = RosterItem::new(jid("b@localhost"));
        i.name = Some("Bob".into());
        i.ask_out = true;
        i.groups = vec!["Friends".into()];
        assert_eq!(
            item_element(&i).to_xml_in(ns::ROSTER),
            "<item jid='b@localhost' name='Bob' subscription='none' ask='subscribe'>\
             <group>Friends</group></item>"
        );
    }

    #[test]
    fn parses_update_and_remove() {
        let q = query_with(vec![item("B@localhost")
            .with_attr("name", "Bob")
            .with_attr("subscription", "both")
            .with_child(group("A"))
            .with_child(group("B"))]);
        assert_eq!(
            parse_set(&q),
            Ok(RosterSet::Update {
                jid: jid("b@localhost"),
                name: Some("Bob".into()),
                groups: vec!["A".into(), "B".into()],
            })
        );
        let q = query_with(vec![item("b@localhost").with_attr("subscription", "remove")]);
        assert_eq!(parse_set(&q), Ok(RosterSet::Remove(jid("b@localhost"))));
    }

    #[test]
    fn rejects_bad_sets() {
        assert_eq!(parse_set(&query_with(vec![])), Err(StanzaError::BadRequest));
        assert_eq!(
            parse_set(&query_with(vec![item("a@localhost"), item("b@localhost")])),
            Err(StanzaError::BadRequest)
        );
        assert_eq!(
            parse_set(&query_with(vec![Element::new("item", ns::ROSTER)])),
            Err(StanzaError::BadRequest)
        );
        assert_eq!(
            parse_set(&query_with(vec![item("a@localhost/res")])),
            Err(StanzaError::BadRequest)
        );
        assert_eq!(
            parse_set(&query_with(vec![item("a@")])),
            Err(StanzaError::BadRequest)
        );
        assert_eq!(
            parse_set(&query_with(vec![item("a@localhost")
                .with_child(group("X"))
                .with_child(group("X"))])),
            Err(StanzaError::BadRequest)
        );
        assert_eq!(
            parse_set(&query_with(vec![
                item("a@localhost").with_child(Element::new("group", ns::ROSTER))
            ])),
            Err(StanzaError::NotAcceptable)
        );
        let long = "x".repeat(MAX_TEXT_LEN + 1);
        assert_eq!(
            parse_set(&query_with(vec![item("a@localhost").with_attr("name", long)])),
            Err(StanzaError::NotAcceptable)
        );
    }

    #[test]
    fn records_outside_the_roster_are_hidden_whatever_their_shape() {
        let mut hidden = RosterItem::hidden(jid("b@localhost"));
        hidden.pending_in = true;
        // The same shape, but added by the user: a roster item (RFC 6121 §2.1.3).
        let mut added = RosterItem::new(jid("c@localhost"));
        added.pending_in = true;
        let roster = Roster::new(vec![hidden.clone(), added.clone()]);
        assert_eq!(roster.visible().collect::<Vec<_>>(), vec![&added]);
        assert_eq!(roster.item(&hidden.jid), None);
        assert_eq!(roster.item(&added.jid), Some(&added));
        assert_eq!(roster.get(&hidden.jid), Some(&hidden));
        assert_eq!(roster.pending_in().count(), 2);
    }
}
