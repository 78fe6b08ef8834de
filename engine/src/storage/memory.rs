//! An in-memory [`Storage`]: the backend of simulations and tests, and a reference for
//! what every request must do. Nothing survives the process.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use super::{RosterItem, Storage, StorageReply, StorageRequest};
use crate::jid::Jid;
use crate::sasl::StoredCredentials;

#[derive(Default)]
struct Account {
    credentials: StoredCredentials,
    roster: BTreeMap<Jid, RosterItem>,
    offline: VecDeque<String>,
}

/// Accounts, rosters and offline messages in a map behind a mutex.
#[derive(Default)]
pub struct MemoryStorage {
    accounts: Mutex<HashMap<Jid, Account>>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Storage for MemoryStorage {
    fn execute(&self, request: StorageRequest) -> StorageReply {
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        match request {
            StorageRequest::GetCredentials { user } => {
                StorageReply::Credentials(accounts.get(&user).map(|a| a.credentials.clone()))
            }
            StorageRequest::CreateUser { user, credentials } => {
                if accounts.contains_key(&user) {
                    return StorageReply::Conflict;
                }
                accounts.insert(
                    user,
                    Account {
                        credentials,
                        ..Account::default()
                    },
                );
                StorageReply::Done
            }
            StorageRequest::SetCredentials { user, credentials } => match accounts.get_mut(&user) {
                Some(a) => {
                    a.credentials = credentials;
                    StorageReply::Done
                }
                None => StorageReply::NotFound,
            },
            StorageRequest::RemoveUser { user } => match accounts.remove(&user) {
                Some(_) => StorageReply::Done,
                None => StorageReply::NotFound,
            },
            StorageRequest::ListUsers { domain } => {
                let mut users: Vec<Jid> = accounts
                    .keys()
                    .filter(|j| j.domain() == domain)
                    .cloned()
                    .collect();
                users.sort();
                StorageReply::Users(users)
            }
            StorageRequest::LoadUser { user } => {
                StorageReply::User(accounts.get(&user).map(|a| a.roster.values().cloned().collect()))
            }
            StorageRequest::PutRosterItem { owner, item } => match accounts.get_mut(&owner) {
                Some(a) => {
                    a.roster.insert(item.jid.clone(), item);
                    StorageReply::Done
                }
                None => StorageReply::NotFound,
            },
            StorageRequest::DeleteRosterItem { owner, contact } => {
                if let Some(a) = accounts.get_mut(&owner) {
                    a.roster.remove(&contact);
                }
                StorageReply::Done
            }
            StorageRequest::StoreOffline { owner, stanza, limit } => match accounts.get_mut(&owner) {
                Some(a) if a.offline.len() >= limit => StorageReply::LimitReached,
                Some(a) => {
                    a.offline.push_back(stanza);
                    StorageReply::Done
                }
                None => StorageReply::NotFound,
            },
            StorageRequest::TakeOffline { owner } => StorageReply::Offline(
                accounts
                    .get_mut(&owner)
                    .map(|a| a.offline.drain(..).collect())
                    .unwrap_or_default(),
            ),
        }
    }
}
