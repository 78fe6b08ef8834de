//! The presence storm's rosters: who is whose contact (a ring of session indices), and
//! the client side of setting those rosters up through the protocol (RFC 6121 §3): each
//! session subscribes to the contacts it is not yet subscribed to, accepts every
//! subscription request it gets, and removes roster items outside its ring, until every
//! contact is `both`. Run again on the same accounts, it finds the rosters done and sends
//! nothing.

use crate::xml::{escape, Element};
use std::collections::HashMap;

/// The contacts of session `idx` among `n` sessions with `k` contacts each: the `k / 2`
/// sessions on either side of it in a ring of the indices. The relation is symmetric, so
/// that every pair can subscribe both ways. `k` must be even and below `n`
/// ([`check_roster_size`]). Sorted.
pub fn ring_contacts(idx: usize, n: usize, k: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (1..=k / 2)
        .flat_map(|d| [(idx + d) % n, (idx + n - d) % n])
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Why `k` contacts each cannot form a ring of `n` sessions, if they cannot.
pub fn check_roster_size(k: usize, n: usize) -> Result<(), String> {
    if k == 0 || k % 2 == 1 {
        return Err(format!(
            "--roster-size must be a positive even number (a ring: k/2 contacts on each side), got {k}"
        ));
    }
    if k >= n {
        return Err(format!(
            "--roster-size {k} needs more sessions than that (-n {n}): each session has k distinct contacts"
        ));
    }
    Ok(())
}

/// A roster item's subscription state, as far as the setup cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemState {
    /// The user receives the contact's presence (`to` or `both`).
    pub to: bool,
    /// The contact receives the user's presence (`from` or `both`).
    pub from: bool,
}

impl ItemState {
    fn of(subscription: Option<&str>) -> Self {
        let s = subscription.unwrap_or("none");
        ItemState {
            to: matches!(s, "to" | "both"),
            from: matches!(s, "from" | "both"),
        }
    }

    pub fn both(self) -> bool {
        self.to && self.from
    }
}

/// One `<item/>` of a roster result or push: the bare JID (lower-case) and its state, or
/// `None` for `subscription='remove'`.
pub type RosterItem = (String, Option<ItemState>);

/// The items of a `jabber:iq:roster` query inside `iq` (a result or a push).
pub fn roster_items(iq: &Element) -> Vec<RosterItem> {
    let Some(q) = iq.child("query") else {
        return Vec::new();
    };
    q.children
        .iter()
        .filter(|c| c.local() == "item")
        .filter_map(|c| {
            let jid = c.attr("jid")?.trim().to_lowercase();
            let sub = c.attr("subscription");
            Some((jid, (sub != Some("remove")).then(|| ItemState::of(sub))))
        })
        .collect()
}

/// The bare JID part of a (full or bare) JID.
pub fn bare(jid: &str) -> &str {
    jid.split_once('/').map_or(jid, |(b, _)| b)
}

/// One session's view of its roster during the setup.
#[derive(Debug, Default)]
pub struct RosterBook {
    /// Bare JIDs of the ring contacts (lower-case), and whether the contact's session is
    /// established (only those can answer a subscription request now).
    ring: HashMap<String, bool>,
    items: HashMap<String, ItemState>,
    /// A roster result has been applied.
    loaded: bool,
}

impl RosterBook {
    /// `contacts`: the ring contacts' bare JIDs with whether each session is established.
    pub fn new(contacts: impl IntoIterator<Item = (String, bool)>) -> Self {
        RosterBook {
            ring: contacts
                .into_iter()
                .map(|(j, up)| (j.to_lowercase(), up))
                .collect(),
            items: HashMap::new(),
            loaded: false,
        }
    }

    /// A roster result: the whole roster, replacing what was known.
    pub fn apply_result(&mut self, items: Vec<RosterItem>) {
        self.items.clear();
        for (j, s) in items {
            if let Some(s) = s {
                self.items.insert(j, s);
            }
        }
        self.loaded = true;
    }

    /// A roster push: one item changed or was removed.
    pub fn apply_push(&mut self, items: Vec<RosterItem>) {
        for (j, s) in items {
            match s {
                Some(s) => self.items.insert(j, s),
                None => self.items.remove(&j),
            };
        }
    }

    pub fn loaded(&self) -> bool {
        self.loaded
    }

    /// True when a roster result has been seen, every established ring contact is `both`
    /// and no item lies outside the ring.
    pub fn complete(&self) -> bool {
        self.loaded
            && self
                .ring
                .iter()
                .filter(|(_, up)| **up)
                .all(|(j, _)| self.items.get(j).is_some_and(|s| s.both()))
            && self.items.keys().all(|j| self.ring.contains_key(j))
    }

    /// Established contacts whose presence the user does not receive yet: send them
    /// `subscribe` (they answer `subscribed`). Sorted, for repeatable output.
    pub fn to_subscribe(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .ring
            .iter()
            .filter(|(j, up)| **up && !self.items.get(*j).is_some_and(|s| s.to))
            .map(|(j, _)| j.as_str())
            .collect();
        v.sort_unstable();
        v
    }

    /// Roster items outside the ring (from earlier runs of another size): removed, so that
    /// they neither receive this run's presence nor send it theirs. Sorted.
    pub fn to_remove(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .items
            .keys()
            .filter(|j| !self.ring.contains_key(*j))
            .map(|j| j.as_str())
            .collect();
        v.sort_unstable();
        v
    }
}

/// `<presence type='subscribe'/>` (or `subscribed`) to a bare JID.
pub fn subscription_stanza(kind: &str, to: &str) -> String {
    format!("<presence type='{kind}' to='{}'/>", escape(to))
}

/// A roster set removing the item for `jid` (RFC 6121 §2.5).
pub fn roster_remove(id: &str, jid: &str) -> String {
    format!(
        "<iq type='set' id='{id}'><query xmlns='jabber:iq:roster'><item jid='{}' subscription='remove'/></query></iq>",
        escape(jid)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_is_symmetric_and_sized() {
        for (n, k) in [(3, 2), (10, 2), (10, 4), (11, 10), (100, 20)] {
            for i in 0..n {
                let c = ring_contacts(i, n, k);
                assert_eq!(c.len(), k, "n={n} k={k} i={i}: {c:?}");
                assert!(!c.contains(&i));
                for &j in &c {
                    assert!(ring_contacts(j, n, k).contains(&i), "{i} <-> {j}");
                }
            }
        }
        assert_eq!(ring_contacts(0, 10, 4), vec![1, 2, 8, 9]);
        assert_eq!(ring_contacts(5, 10, 2), vec![4, 6]);
    }

    #[test]
    fn roster_size_must_fit() {
        assert!(check_roster_size(4, 10).is_ok());
        assert!(check_roster_size(10, 11).is_ok());
        assert!(check_roster_size(3, 10).is_err(), "odd");
        assert!(check_roster_size(0, 10).is_err());
        assert!(
            check_roster_size(10, 10).is_err(),
            "a session cannot be its own contact"
        );
    }

    fn iq(xml: &str) -> Element {
        Element::parse(xml.as_bytes()).unwrap()
    }

    #[test]
    fn items_of_results_and_pushes() {
        let r = iq("<iq type='result' id='rs1'><query xmlns='jabber:iq:roster'>\
             <item jid='P1@localhost' subscription='both'/>\
             <item jid='p2@localhost' subscription='to' ask='subscribe'/>\
             <item jid='p3@localhost'/>\
             <item jid='p4@localhost' subscription='from'><group>g</group></item>\
             <item jid='p5@localhost' subscription='remove'/></query></iq>");
        let items = roster_items(&r);
        let st = |to, from| Some(ItemState { to, from });
        assert_eq!(
            items,
            vec![
                ("p1@localhost".to_string(), st(true, true)),
                ("p2@localhost".to_string(), st(true, false)),
                ("p3@localhost".to_string(), st(false, false)),
                ("p4@localhost".to_string(), st(false, true)),
                ("p5@localhost".to_string(), None),
            ]
        );
        assert!(roster_items(&iq("<iq type='result' id='x'/>")).is_empty());
        assert_eq!(bare("a@b/c/d"), "a@b");
        assert_eq!(bare("a@b"), "a@b");
    }

    fn book() -> RosterBook {
        RosterBook::new([
            ("p1@localhost".to_string(), true),
            ("p2@localhost".to_string(), true),
            ("P3@localhost".to_string(), false), // not established
        ])
    }

    #[test]
    fn setup_from_an_empty_roster() {
        let mut b = book();
        assert!(!b.complete(), "nothing known before the first result");
        b.apply_result(Vec::new());
        assert!(!b.complete());
        assert_eq!(b.to_subscribe(), vec!["p1@localhost", "p2@localhost"]);
        assert!(b.to_remove().is_empty());
        let st = |to, from| Some(ItemState { to, from });
        // p1 accepted ours (to), then we accepted theirs (both).
        b.apply_push(vec![("p1@localhost".into(), st(false, false))]);
        b.apply_push(vec![("p1@localhost".into(), st(true, false))]);
        b.apply_push(vec![("p1@localhost".into(), st(true, true))]);
        assert!(!b.complete());
        assert_eq!(b.to_subscribe(), vec!["p2@localhost"]);
        b.apply_push(vec![("p2@localhost".into(), st(true, true))]);
        assert!(b.complete(), "the contact that is not up does not hold it back");
    }

    #[test]
    fn second_run_finds_the_rosters_done_and_prunes_strays() {
        let st = |to, from| Some(ItemState { to, from });
        let mut b = book();
        b.apply_result(vec![
            ("p1@localhost".into(), st(true, true)),
            ("p2@localhost".into(), st(true, true)),
            ("p3@localhost".into(), st(true, true)),
        ]);
        assert!(b.complete());
        assert!(b.to_subscribe().is_empty(), "nothing to send again");

        let mut b = book();
        b.apply_result(vec![
            ("p1@localhost".into(), st(true, true)),
            ("p2@localhost".into(), st(false, true)),
            ("p9@localhost".into(), st(true, true)),
        ]);
        assert!(!b.complete());
        assert_eq!(b.to_subscribe(), vec!["p2@localhost"]);
        assert_eq!(b.to_remove(), vec!["p9@localhost"]);
        b.apply_push(vec![("p9@localhost".into(), None)]);
        b.apply_push(vec![("p2@localhost".into(), st(true, true))]);
        assert!(b.complete());
    }

    #[test]
    fn stanzas() {
        assert_eq!(
            subscription_stanza("subscribe", "p1@localhost"),
            "<presence type='subscribe' to='p1@localhost'/>"
        );
        assert!(roster_remove("rr1", "a'b@x").contains("jid='a&apos;b@x' subscription='remove'"));
    }
}
