//! In-memory storage for tests and simulations that drive a [`Hub`](crate::hub::Hub)
//! (or any engine state machine) without a real backend.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::jid::Jid;
use crate::sasl::StoredCredentials;
use crate::storage::{FastSlot, FastToken, RosterItem, Storage, StorageReply, StorageRequest};

/// A [`Storage`] kept in a `HashMap`, with the semantics the engine expects from a
/// real backend (see [`StorageRequest`]): rosters keep insertion order, offline
/// messages are returned oldest first, `StoreOffline` answers `LimitReached` when
/// the user already has `limit` messages. Nothing is persisted.
///
/// The simulation harness answers the engine's `Request`s with
/// [`Storage::execute`] on one of these.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    users: Mutex<HashMap<Jid, MemoryUser>>,
}

#[derive(Debug, Default)]
struct MemoryUser {
    credentials: StoredCredentials,
    roster: Vec<RosterItem>,
    offline: Vec<String>,
    /// FAST tokens by user-agent id and slot.
    fast: HashMap<(String, FastSlot), FastToken>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Jid, MemoryUser>> {
        self.users.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates `user` (a bare JID) with empty credentials, if absent.
    pub fn add_user(&self, user: &Jid) {
        self.lock().entry(user.bare()).or_default();
    }

    /// Whether `user` exists.
    pub fn has_user(&self, user: &Jid) -> bool {
        self.lock().contains_key(user)
    }

    /// The stored roster of `user` (`None`: no such user).
    pub fn roster(&self, user: &Jid) -> Option<Vec<RosterItem>> {
        self.lock().get(user).map(|u| u.roster.clone())
    }

    /// The stored offline messages of `user`, oldest first.
    pub fn offline(&self, user: &Jid) -> Vec<String> {
        self.lock()
            .get(user)
            .map(|u| u.offline.clone())
            .unwrap_or_default()
    }
}

impl Storage for MemoryStorage {
    fn execute(&self, request: StorageRequest) -> StorageReply {
        let mut users = self.lock();
        match request {
            StorageRequest::GetCredentials { user } => {
                StorageReply::Credentials(users.get(&user).map(|u| u.credentials.clone()))
            }
            StorageRequest::CreateUser { user, credentials } => {
                if users.contains_key(&user) {
                    return StorageReply::Conflict;
                }
                users.insert(
                    user,
                    MemoryUser {
                        credentials,
                        ..MemoryUser::default()
                    },
                );
                StorageReply::Done
            }
            StorageRequest::SetCredentials { user, credentials } => match users.get_mut(&user) {
                Some(u) => {
                    u.credentials = credentials;
                    StorageReply::Done
                }
                None => StorageReply::NotFound,
            },
            StorageRequest::RemoveUser { user } => match users.remove(&user) {
                Some(_) => StorageReply::Done,
                None => StorageReply::NotFound,
            },
            StorageRequest::ListUsers { domain } => {
                let mut list: Vec<Jid> = users.keys().filter(|j| j.domain() == domain).cloned().collect();
                list.sort();
                StorageReply::Users(list)
            }
            StorageRequest::LoadUser { user } => {
                StorageReply::User(users.get(&user).map(|u| u.roster.clone()))
            }
            StorageRequest::PutRosterItem { owner, item } => match users.get_mut(&owner) {
                Some(u) => {
                    match u.roster.iter_mut().find(|i| i.jid == item.jid) {
                        Some(slot) => *slot = item,
                        None => u.roster.push(item),
                    }
                    StorageReply::Done
                }
                None => StorageReply::NotFound,
            },
            StorageRequest::DeleteRosterItem { owner, contact } => match users.get_mut(&owner) {
                Some(u) => {
                    u.roster.retain(|i| i.jid != contact);
                    StorageReply::Done
                }
                None => StorageReply::NotFound,
            },
            StorageRequest::StoreOffline { owner, stanza, limit } => match users.get_mut(&owner) {
                Some(u) if u.offline.len() >= limit => StorageReply::LimitReached,
                Some(u) => {
                    u.offline.push(stanza);
                    StorageReply::Done
                }
                None => StorageReply::NotFound,
            },
            StorageRequest::TakeOffline { owner } => StorageReply::Offline(
                users
                    .get_mut(&owner)
                    .map(|u| std::mem::take(&mut u.offline))
                    .unwrap_or_default(),
            ),
            StorageRequest::GetFastTokens { user, agent } => {
                let mut tokens: Vec<(FastSlot, FastToken)> = users
                    .get(&user)
                    .map(|u| {
                        u.fast
                            .iter()
                            .filter(|((a, _), _)| *a == agent)
                            .map(|((_, slot), t)| (*slot, t.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                tokens.sort_by_key(|(slot, _)| *slot == FastSlot::Current);
                StorageReply::FastTokens(tokens)
            }
            StorageRequest::StoreFastToken { user, agent, token } => match users.get_mut(&user) {
                Some(u) => {
                    u.fast.insert((agent, FastSlot::New), token);
                    StorageReply::Done
                }
                None => StorageReply::NotFound,
            },
            StorageRequest::UseFastToken {
                user,
                agent,
                slot,
                key,
                count,
                invalidate,
                issue,
            } => {
                let Some(u) = users.get_mut(&user) else {
                    return StorageReply::NotFound;
                };
                let slot_key = (agent.clone(), slot);
                let Some(token) = u.fast.get_mut(&slot_key).filter(|t| t.key == key) else {
                    return StorageReply::NotFound;
                };
                if let Some(c) = count {
                    if c <= token.count {
                        return StorageReply::Conflict;
                    }
                    token.count = c;
                }
                if slot == FastSlot::New {
                    let t = u.fast.remove(&slot_key).expect("present");
                    u.fast.insert((agent.clone(), FastSlot::Current), t);
                }
                if invalidate {
                    u.fast.retain(|(a, _), _| *a != agent);
                }
                if let Some(t) = issue {
                    u.fast.insert((agent, FastSlot::New), t);
                }
                StorageReply::Done
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_limit_and_take() {
        let s = MemoryStorage::new();
        let a = Jid::parse("a@localhost").unwrap();
        s.add_user(&a);
        let store = |x: &str| StorageRequest::StoreOffline {
            owner: a.clone(),
            stanza: x.into(),
            limit: 1,
        };
        assert_eq!(s.execute(store("1")), StorageReply::Done);
        assert_eq!(s.execute(store("2")), StorageReply::LimitReached);
        assert_eq!(
            s.execute(StorageRequest::TakeOffline { owner: a.clone() }),
            StorageReply::Offline(vec!["1".into()])
        );
        assert!(s.offline(&a).is_empty());
    }

    #[test]
    fn roster_put_replaces_in_place() {
        let s = MemoryStorage::new();
        let a = Jid::parse("a@localhost").unwrap();
        let b = Jid::parse("b@localhost").unwrap();
        s.add_user(&a);
        let mut item = RosterItem::new(b.clone());
        s.execute(StorageRequest::PutRosterItem {
            owner: a.clone(),
            item: item.clone(),
        });
        item.name = Some("B".into());
        s.execute(StorageRequest::PutRosterItem {
            owner: a.clone(),
            item: item.clone(),
        });
        assert_eq!(s.roster(&a), Some(vec![item]));
        s.execute(StorageRequest::DeleteRosterItem {
            owner: a.clone(),
            contact: b,
        });
        assert_eq!(s.roster(&a), Some(vec![]));
        assert_eq!(
            s.execute(StorageRequest::LoadUser {
                user: Jid::parse("nobody@localhost").unwrap()
            }),
            StorageReply::User(None)
        );
    }
}
