use super::*;
use meerkat_engine::storage::FastToken;

struct Db {
    _dir: tempfile::TempDir,
    path: PathBuf,
    storage: SqliteStorage,
}

impl Db {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // A directory that does not exist yet: open creates it.
        let path = dir.path().join("data").join("meerkat.db");
        let storage = SqliteStorage::open(&path).unwrap();
        Db {
            _dir: dir,
            path,
            storage,
        }
    }

    fn run(&self, request: StorageRequest) -> StorageReply {
        self.storage.execute(request)
    }
}

fn jid(s: &str) -> Jid {
    Jid::parse(s).unwrap()
}

fn creds(seed: u8) -> StoredCredentials {
    StoredCredentials {
        scram: [ScramHash::Sha1, ScramHash::Sha256, ScramHash::Sha512]
            .into_iter()
            .map(|hash| ScramCredential {
                hash,
                salt: vec![seed; 16],
                iterations: 4096,
                stored_key: vec![seed.wrapping_add(1); 20],
                server_key: vec![seed.wrapping_add(2); 20],
            })
            .collect(),
    }
}

fn create(db: &Db, user: &str) {
    let reply = db.run(StorageRequest::CreateUser {
        user: jid(user),
        credentials: creds(1),
    });
    assert_eq!(reply, StorageReply::Done);
}

fn item(contact: &str, subscription: Subscription, groups: &[&str]) -> RosterItem {
    RosterItem {
        jid: jid(contact),
        in_roster: true,
        name: Some(format!("name of {contact}")),
        subscription,
        ask_out: true,
        pending_in: false,
        approved: true,
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

fn roster(db: &Db, user: &str) -> Option<Vec<RosterItem>> {
    match db.run(StorageRequest::LoadUser { user: jid(user) }) {
        StorageReply::User(r) => r,
        other => panic!("unexpected {other:?}"),
    }
}

fn store(db: &Db, owner: &str, stanza: &str, limit: usize) -> StorageReply {
    db.run(StorageRequest::StoreOffline {
        owner: jid(owner),
        stanza: stanza.into(),
        limit,
    })
}

#[test]
fn open_creates_the_file_in_wal_mode_with_a_schema_version() {
    let db = Db::new();
    assert!(db.path.exists());
    let conn = Connection::open(&db.path).unwrap();
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = conn
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}

#[test]
fn reopening_keeps_the_data() {
    let db = Db::new();
    create(&db, "alice@localhost");
    let again = SqliteStorage::open(&db.path).unwrap();
    assert_eq!(
        again.execute(StorageRequest::GetCredentials {
            user: jid("alice@localhost")
        }),
        StorageReply::Credentials(Some(creds(1)))
    );
}

#[test]
fn a_newer_schema_is_refused() {
    let db = Db::new();
    Connection::open(&db.path)
        .unwrap()
        .execute("UPDATE schema_version SET version = 99", [])
        .unwrap();
    let err = SqliteStorage::open(&db.path).err().expect("refused");
    assert!(matches!(err, OpenError::TooNew { found: 99, .. }), "{err}");
}

/// A `roster_items` row of schema version 1: owner, contact, name, subscription,
/// ask_out, pending_in, approved.
type Version1Item<'a> = (&'a str, &'a str, Option<&'a str>, &'a str, bool, bool, bool);

/// A database as schema version 1 left it, with these roster items and `groups` of
/// `roster_groups` (owner, contact, name).
fn version_1_database(path: &Path, rows: &[Version1Item], groups: &[(&str, &str, &str)]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(MIGRATIONS[0]).unwrap();
    conn.execute_batch(
        "CREATE TABLE schema_version (version INTEGER NOT NULL);
         INSERT INTO schema_version (version) VALUES (1);
         INSERT INTO users (domain, username) VALUES ('localhost', 'alice'), ('localhost', 'bob');",
    )
    .unwrap();
    for (owner, contact, name, subscription, ask_out, pending_in, approved) in rows {
        conn.execute(
            "INSERT INTO roster_items (owner, contact, name, subscription, ask_out, pending_in, approved)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![owner, contact, name, subscription, ask_out, pending_in, approved],
        )
        .unwrap();
    }
    for (position, (owner, contact, name)) in groups.iter().enumerate() {
        conn.execute(
            "INSERT INTO roster_groups (owner, contact, position, name) VALUES (?1, ?2, ?3, ?4)",
            params![owner, contact, position as i64, name],
        )
        .unwrap();
    }
}

#[test]
fn version_1_rosters_get_in_roster_from_the_old_shape_rule() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data").join("meerkat.db");
    let (alice, bob) = ("alice@localhost", "bob@localhost");
    version_1_database(
        &path,
        &[
            // A stored request alone: the only shape version 1 kept out of the roster.
            (alice, "asker@example.com", None, "none", false, true, false),
            // A request from a contact that also has a name, a group, our own
            // request, a pre-approval or a subscription: in the roster.
            (alice, "named@example.com", Some("N"), "none", false, true, false),
            (alice, "grouped@example.com", None, "none", false, true, false),
            (alice, "asked@example.com", None, "none", true, true, false),
            (alice, "approved@example.com", None, "none", false, true, true),
            (alice, "to@example.com", None, "to", false, true, false),
            // No request: in the roster whatever its shape.
            (alice, "plain@example.com", None, "none", false, false, false),
            // Groups count for their own owner only.
            (bob, "asker@example.com", None, "none", false, true, false),
        ],
        &[
            (alice, "grouped@example.com", "G"),
            (bob, "asker@example.com", "G"),
        ],
    );
    let storage = SqliteStorage::open(&path).unwrap();
    let version: i64 = Connection::open(&path)
        .unwrap()
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let flags = |user: &str| -> Vec<(String, bool)> {
        match storage.execute(StorageRequest::LoadUser { user: jid(user) }) {
            StorageReply::User(Some(items)) => items
                .into_iter()
                .map(|i| (i.jid.to_string(), i.in_roster))
                .collect(),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(
        flags(alice),
        [
            ("approved@example.com", true),
            ("asked@example.com", true),
            ("asker@example.com", false),
            ("grouped@example.com", true),
            ("named@example.com", true),
            ("plain@example.com", true),
            ("to@example.com", true),
        ]
        .map(|(c, f)| (c.to_string(), f))
    );
    assert_eq!(flags(bob), vec![("asker@example.com".to_string(), true)]);
    // The other columns came through untouched.
    match storage.execute(StorageRequest::LoadUser { user: jid(alice) }) {
        StorageReply::User(Some(items)) => {
            let grouped = items
                .iter()
                .find(|i| i.jid == jid("grouped@example.com"))
                .unwrap();
            assert_eq!(grouped.groups, vec!["G".to_string()]);
            assert!(grouped.pending_in);
        }
        other => panic!("unexpected {other:?}"),
    }
    // Migrated once: opening again changes nothing.
    drop(storage);
    let again = SqliteStorage::open(&path).unwrap();
    assert!(matches!(
        again.execute(StorageRequest::LoadUser { user: jid(alice) }),
        StorageReply::User(Some(items)) if items.len() == 7
    ));
}

#[test]
fn credentials_are_stored_per_hash_and_no_password_column_exists() {
    let db = Db::new();
    create(&db, "alice@localhost");
    assert_eq!(
        db.run(StorageRequest::GetCredentials {
            user: jid("alice@localhost")
        }),
        StorageReply::Credentials(Some(creds(1)))
    );
    let conn = Connection::open(&db.path).unwrap();
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM scram_credentials", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 3);
    let password_columns: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE sql LIKE '%password%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(password_columns, 0);
}

#[test]
fn get_credentials_of_an_unknown_user_is_none() {
    let db = Db::new();
    assert_eq!(
        db.run(StorageRequest::GetCredentials {
            user: jid("nobody@localhost")
        }),
        StorageReply::Credentials(None)
    );
}

#[test]
fn create_user_twice_is_a_conflict() {
    let db = Db::new();
    create(&db, "alice@localhost");
    assert_eq!(
        db.run(StorageRequest::CreateUser {
            user: jid("Alice@localhost"),
            credentials: creds(2),
        }),
        StorageReply::Conflict
    );
    // The first credentials are untouched.
    assert_eq!(
        db.run(StorageRequest::GetCredentials {
            user: jid("alice@localhost")
        }),
        StorageReply::Credentials(Some(creds(1)))
    );
}

#[test]
fn create_user_without_localpart_fails() {
    let db = Db::new();
    let reply = db.run(StorageRequest::CreateUser {
        user: jid("localhost"),
        credentials: creds(1),
    });
    assert!(matches!(reply, StorageReply::Failed(_)), "{reply:?}");
}

#[test]
fn set_credentials_replaces_them_for_existing_users_only() {
    let db = Db::new();
    assert_eq!(
        db.run(StorageRequest::SetCredentials {
            user: jid("alice@localhost"),
            credentials: creds(2),
        }),
        StorageReply::NotFound
    );
    create(&db, "alice@localhost");
    assert_eq!(
        db.run(StorageRequest::SetCredentials {
            user: jid("alice@localhost"),
            credentials: creds(2),
        }),
        StorageReply::Done
    );
    assert_eq!(
        db.run(StorageRequest::GetCredentials {
            user: jid("alice@localhost")
        }),
        StorageReply::Credentials(Some(creds(2)))
    );
}

#[test]
fn remove_user_takes_roster_and_offline_messages_along() {
    let db = Db::new();
    create(&db, "alice@localhost");
    create(&db, "bob@localhost");
    for owner in ["alice@localhost", "bob@localhost"] {
        db.run(StorageRequest::PutRosterItem {
            owner: jid(owner),
            item: item("carol@example.com", Subscription::Both, &["Friends"]),
        });
        assert_eq!(store(&db, owner, "<message/>", 10), StorageReply::Done);
    }
    assert_eq!(
        db.run(StorageRequest::RemoveUser {
            user: jid("alice@localhost")
        }),
        StorageReply::Done
    );
    assert_eq!(roster(&db, "alice@localhost"), None);
    assert_eq!(
        db.run(StorageRequest::GetCredentials {
            user: jid("alice@localhost")
        }),
        StorageReply::Credentials(None)
    );
    assert_eq!(
        db.run(StorageRequest::TakeOffline {
            owner: jid("alice@localhost")
        }),
        StorageReply::Offline(vec![])
    );
    let conn = Connection::open(&db.path).unwrap();
    for table in [
        "scram_credentials",
        "roster_items",
        "roster_groups",
        "offline_messages",
    ] {
        let left: i64 = conn
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap();
        let expected = if table == "scram_credentials" { 3 } else { 1 };
        assert_eq!(left, expected, "{table}: only bob's rows remain");
    }
    assert_eq!(
        db.run(StorageRequest::RemoveUser {
            user: jid("alice@localhost")
        }),
        StorageReply::NotFound
    );
}

#[test]
fn list_users_is_per_domain_and_sorted() {
    let db = Db::new();
    for u in [
        "carol@localhost",
        "alice@localhost",
        "bob@example.com",
        "bob@localhost",
    ] {
        create(&db, u);
    }
    assert_eq!(
        db.run(StorageRequest::ListUsers {
            domain: "localhost".into()
        }),
        StorageReply::Users(vec![
            jid("alice@localhost"),
            jid("bob@localhost"),
            jid("carol@localhost")
        ])
    );
    assert_eq!(
        db.run(StorageRequest::ListUsers {
            domain: "nowhere.org".into()
        }),
        StorageReply::Users(vec![])
    );
}

#[test]
fn load_user_tells_unknown_users_from_empty_rosters() {
    let db = Db::new();
    assert_eq!(roster(&db, "alice@localhost"), None);
    create(&db, "alice@localhost");
    assert_eq!(roster(&db, "alice@localhost"), Some(vec![]));
}

#[test]
fn put_roster_item_inserts_then_replaces_with_groups_in_order() {
    let db = Db::new();
    create(&db, "alice@localhost");
    let owner = jid("alice@localhost");
    let first = item("bob@example.com", Subscription::To, &["Work", "Friends"]);
    let other = RosterItem::new(jid("carol@example.com"));
    for i in [&first, &other] {
        assert_eq!(
            db.run(StorageRequest::PutRosterItem {
                owner: owner.clone(),
                item: i.clone(),
            }),
            StorageReply::Done
        );
    }
    assert_eq!(
        roster(&db, "alice@localhost"),
        Some(vec![first.clone(), other.clone()])
    );

    let replaced = RosterItem {
        name: None,
        subscription: Subscription::Both,
        ask_out: false,
        pending_in: true,
        approved: false,
        groups: vec!["Zoo".into()],
        ..first
    };
    db.run(StorageRequest::PutRosterItem {
        owner: owner.clone(),
        item: replaced.clone(),
    });
    assert_eq!(roster(&db, "alice@localhost"), Some(vec![replaced, other]));
}

#[test]
fn the_in_roster_flag_round_trips() {
    let db = Db::new();
    create(&db, "alice@localhost");
    let owner = jid("alice@localhost");
    // Two records of the same shape (a pending request alone): only the flag tells
    // the stored request from the contact the user added.
    let request = |contact: &str, in_roster: bool| RosterItem {
        in_roster,
        pending_in: true,
        ..RosterItem::new(jid(contact))
    };
    let hidden = request("bob@example.com", false);
    let added = request("carol@example.com", true);
    for i in [&hidden, &added] {
        db.run(StorageRequest::PutRosterItem {
            owner: owner.clone(),
            item: i.clone(),
        });
    }
    assert_eq!(
        roster(&db, "alice@localhost"),
        Some(vec![hidden.clone(), added.clone()])
    );
    // Replacing a record updates the flag both ways.
    let joined = RosterItem {
        in_roster: true,
        ..hidden
    };
    let left = RosterItem {
        in_roster: false,
        ..added
    };
    for i in [&joined, &left] {
        db.run(StorageRequest::PutRosterItem {
            owner: owner.clone(),
            item: i.clone(),
        });
    }
    assert_eq!(roster(&db, "alice@localhost"), Some(vec![joined, left]));
}

#[test]
fn put_roster_item_refuses_the_remove_verb() {
    let db = Db::new();
    create(&db, "alice@localhost");
    let reply = db.run(StorageRequest::PutRosterItem {
        owner: jid("alice@localhost"),
        item: item("bob@example.com", Subscription::Remove, &[]),
    });
    assert!(matches!(reply, StorageReply::Failed(_)), "{reply:?}");
}

#[test]
fn delete_roster_item_removes_only_that_contact() {
    let db = Db::new();
    create(&db, "alice@localhost");
    let keep = item("carol@example.com", Subscription::From, &["G"]);
    for i in [item("bob@example.com", Subscription::Both, &["G"]), keep.clone()] {
        db.run(StorageRequest::PutRosterItem {
            owner: jid("alice@localhost"),
            item: i,
        });
    }
    assert_eq!(
        db.run(StorageRequest::DeleteRosterItem {
            owner: jid("alice@localhost"),
            contact: jid("bob@example.com"),
        }),
        StorageReply::Done
    );
    assert_eq!(roster(&db, "alice@localhost"), Some(vec![keep]));
    // Deleting what is not there is not an error.
    assert_eq!(
        db.run(StorageRequest::DeleteRosterItem {
            owner: jid("alice@localhost"),
            contact: jid("bob@example.com"),
        }),
        StorageReply::Done
    );
}

#[test]
fn store_offline_stops_at_the_limit_per_user() {
    let db = Db::new();
    assert_eq!(
        store(&db, "alice@localhost", "<message>1</message>", 2),
        StorageReply::Done
    );
    assert_eq!(
        store(&db, "alice@localhost", "<message>2</message>", 2),
        StorageReply::Done
    );
    assert_eq!(
        store(&db, "alice@localhost", "<message>3</message>", 2),
        StorageReply::LimitReached
    );
    // Another user's store is separate.
    assert_eq!(
        store(&db, "bob@localhost", "<message>b</message>", 2),
        StorageReply::Done
    );
    assert_eq!(
        store(&db, "carol@localhost", "<message/>", 0),
        StorageReply::LimitReached
    );
}

#[test]
fn take_offline_returns_oldest_first_and_empties_the_store() {
    let db = Db::new();
    for i in 1..=3 {
        store(&db, "alice@localhost", &format!("<message>{i}</message>"), 10);
    }
    store(&db, "bob@localhost", "<message>b</message>", 10);
    assert_eq!(
        db.run(StorageRequest::TakeOffline {
            owner: jid("alice@localhost")
        }),
        StorageReply::Offline(vec![
            "<message>1</message>".into(),
            "<message>2</message>".into(),
            "<message>3</message>".into(),
        ])
    );
    assert_eq!(
        db.run(StorageRequest::TakeOffline {
            owner: jid("alice@localhost")
        }),
        StorageReply::Offline(vec![])
    );
    // The limit counts what is left, so the store is usable again.
    assert_eq!(
        store(&db, "alice@localhost", "<message>4</message>", 1),
        StorageReply::Done
    );
    assert_eq!(
        db.run(StorageRequest::TakeOffline {
            owner: jid("bob@localhost")
        }),
        StorageReply::Offline(vec!["<message>b</message>".into()])
    );
}

#[test]
fn storage_is_shared_across_threads() {
    let db = std::sync::Arc::new(Db::new());
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    store(
                        &db,
                        "alice@localhost",
                        &format!("<message>{t}-{i}</message>"),
                        1000,
                    );
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    match db.run(StorageRequest::TakeOffline {
        owner: jid("alice@localhost"),
    }) {
        StorageReply::Offline(m) => assert_eq!(m.len(), 100),
        other => panic!("{other:?}"),
    }
}

fn fast_token(key: u8, expiry: u64) -> FastToken {
    FastToken {
        mechanism: "HT-SHA-256-NONE".into(),
        key: vec![key; 32],
        expiry,
        count: 0,
    }
}

/// XEP-0484 token slots, rotation, the count check and invalidation, run against a
/// backend whose user `alice@localhost` exists. SQLite and the in-memory store of
/// the simulations must agree.
fn fast_tokens_behave(s: &dyn Storage) {
    let (user, agent) = (jid("alice@localhost"), "agent-1".to_string());
    let get = || match s.execute(StorageRequest::GetFastTokens {
        user: user.clone(),
        agent: agent.clone(),
    }) {
        StorageReply::FastTokens(mut t) => {
            t.sort_by_key(|(slot, _)| slot.as_str());
            t
        }
        other => panic!("{other:?}"),
    };
    let use_ = |slot, key: u8, count, invalidate, issue| {
        s.execute(StorageRequest::UseFastToken {
            user: user.clone(),
            agent: agent.clone(),
            slot,
            key: vec![key; 32],
            count,
            invalidate,
            issue,
        })
    };
    assert!(get().is_empty());
    let store = StorageRequest::StoreFastToken {
        user: user.clone(),
        agent: agent.clone(),
        token: fast_token(1, 100),
    };
    assert_eq!(s.execute(store), StorageReply::Done);
    assert_eq!(get(), vec![(FastSlot::New, fast_token(1, 100))]);
    // First use: the new token becomes current; a rotation puts another in New.
    assert_eq!(
        use_(FastSlot::New, 1, Some(3), false, Some(fast_token(2, 200))),
        StorageReply::Done
    );
    let mut current = fast_token(1, 100);
    current.count = 3;
    assert_eq!(
        get(),
        vec![
            (FastSlot::Current, current.clone()),
            (FastSlot::New, fast_token(2, 200))
        ]
    );
    // The count must grow; a wrong key is not the token.
    assert_eq!(
        use_(FastSlot::Current, 1, Some(3), false, None),
        StorageReply::Conflict
    );
    assert_eq!(
        use_(FastSlot::Current, 9, Some(4), false, None),
        StorageReply::NotFound
    );
    assert_eq!(use_(FastSlot::Current, 1, None, false, None), StorageReply::Done);
    // Using the newer token retires the older one.
    assert_eq!(use_(FastSlot::New, 2, Some(1), false, None), StorageReply::Done);
    let mut second = fast_token(2, 200);
    second.count = 1;
    assert_eq!(get(), vec![(FastSlot::Current, second)]);
    // Invalidation removes the client's tokens, a requested one is kept.
    assert_eq!(
        use_(FastSlot::Current, 2, Some(2), true, Some(fast_token(3, 300))),
        StorageReply::Done
    );
    assert_eq!(get(), vec![(FastSlot::New, fast_token(3, 300))]);
    assert_eq!(use_(FastSlot::New, 3, None, true, None), StorageReply::Done);
    assert!(get().is_empty());
}

#[test]
fn fast_tokens_in_sqlite_and_in_memory_agree() {
    let db = Db::new();
    create(&db, "alice@localhost");
    fast_tokens_behave(&db.storage);
    let memory = meerkat_engine::storage::MemoryStorage::new();
    memory.add_user(&jid("alice@localhost"));
    fast_tokens_behave(&memory);
    // Tokens go with the account.
    let store = StorageRequest::StoreFastToken {
        user: jid("alice@localhost"),
        agent: "a".into(),
        token: fast_token(1, 1),
    };
    assert_eq!(db.run(store), StorageReply::Done);
    assert_eq!(
        db.run(StorageRequest::RemoveUser {
            user: jid("alice@localhost")
        }),
        StorageReply::Done
    );
    let conn = Connection::open(&db.path).unwrap();
    let left: i64 = conn
        .query_row("SELECT count(*) FROM fast_tokens", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0);
}
