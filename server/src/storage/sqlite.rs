//! The SQLite backend: users with their SCRAM credentials (never a password), roster
//! items with RFC 6121 Appendix A sub-states, and XEP-0160 offline messages.
//!
//! One connection behind a mutex: the runtime runs storage on its own executor, so
//! requests arrive one at a time anyway, and SQLite serialises writers regardless.
//! WAL mode lets the `meerkat user ...` commands work on the database while the server
//! runs; `busy_timeout` makes either side wait for the other's write instead of failing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use meerkat_engine::jid::Jid;
use meerkat_engine::sasl::{ScramCredential, ScramHash, StoredCredentials};
use meerkat_engine::storage::{FastSlot, RosterItem, Storage, StorageReply, StorageRequest, Subscription};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

/// The schema this build reads and writes; [`MIGRATIONS`] has one entry per version.
const SCHEMA_VERSION: i64 = 3;

// Every version is reached by a migration.
const _: () = assert!(MIGRATIONS.len() as i64 == SCHEMA_VERSION);

/// `MIGRATIONS[n]` takes the schema from version `n` to `n + 1`.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE users (
        domain   TEXT NOT NULL,
        username TEXT NOT NULL,
        PRIMARY KEY (domain, username)
    ) WITHOUT ROWID;

    -- RFC 5802 §3: what a server keeps per hash; the password itself is never stored.
    CREATE TABLE scram_credentials (
        domain     TEXT NOT NULL,
        username   TEXT NOT NULL,
        hash       TEXT NOT NULL CHECK (hash IN ('SHA-1', 'SHA-256', 'SHA-512')),
        salt       BLOB NOT NULL,
        iterations INTEGER NOT NULL,
        stored_key BLOB NOT NULL,
        server_key BLOB NOT NULL,
        PRIMARY KEY (domain, username, hash),
        FOREIGN KEY (domain, username) REFERENCES users (domain, username) ON DELETE CASCADE
    ) WITHOUT ROWID;

    -- owner and contact are bare JIDs.
    CREATE TABLE roster_items (
        owner        TEXT NOT NULL,
        contact      TEXT NOT NULL,
        name         TEXT,
        subscription TEXT NOT NULL CHECK (subscription IN ('none', 'to', 'from', 'both')),
        ask_out      INTEGER NOT NULL,
        pending_in   INTEGER NOT NULL,
        approved     INTEGER NOT NULL,
        PRIMARY KEY (owner, contact)
    ) WITHOUT ROWID;

    CREATE TABLE roster_groups (
        owner    TEXT NOT NULL,
        contact  TEXT NOT NULL,
        position INTEGER NOT NULL,
        name     TEXT NOT NULL,
        PRIMARY KEY (owner, contact, position),
        FOREIGN KEY (owner, contact) REFERENCES roster_items (owner, contact) ON DELETE CASCADE
    ) WITHOUT ROWID;

    -- seq orders a user's messages: oldest first on delivery.
    CREATE TABLE offline_messages (
        seq    INTEGER PRIMARY KEY AUTOINCREMENT,
        owner  TEXT NOT NULL,
        stanza TEXT NOT NULL
    );
    CREATE INDEX offline_messages_by_owner ON offline_messages (owner, seq);
",
    // RosterItem::in_roster. Version 1 told a stored request from a contact not in
    // the roster (RFC 6121 §3.1.3) by its shape, so existing rows are classified the
    // same way: Pending In and nothing else (no subscription, ask, pre-approval,
    // name or group) is outside the roster; everything else is in it. A contact the
    // user added bare and who then asked to subscribe cannot be told apart here; it
    // stays hidden, as version 1 showed it; approving the request or adding the
    // contact again puts it back in the roster.
    "
    ALTER TABLE roster_items ADD COLUMN in_roster INTEGER NOT NULL DEFAULT 1;
    UPDATE roster_items SET in_roster = 0
    WHERE pending_in AND subscription = 'none' AND NOT ask_out AND NOT approved
        AND name IS NULL
        AND NOT EXISTS (
            SELECT 1 FROM roster_groups g
            WHERE g.owner = roster_items.owner AND g.contact = roster_items.contact
        );
",
    // XEP-0484 FAST tokens, two slots per client installation (§5.2). The token
    // itself is never stored: `key` is H(token), which HT mechanisms can use as the
    // HMAC key (RFC 2104 §2, see meerkat_engine::sasl::ht).
    "
    CREATE TABLE fast_tokens (
        domain    TEXT NOT NULL,
        username  TEXT NOT NULL,
        agent     TEXT NOT NULL,
        slot      TEXT NOT NULL CHECK (slot IN ('current', 'new')),
        mechanism TEXT NOT NULL,
        key       BLOB NOT NULL,
        expiry    INTEGER NOT NULL,
        count     INTEGER NOT NULL,
        PRIMARY KEY (domain, username, agent, slot),
        FOREIGN KEY (domain, username) REFERENCES users (domain, username) ON DELETE CASCADE
    ) WITHOUT ROWID;
",
];

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The directory for the database file could not be created.
    #[error("cannot create the directory {}: {source}", path.display())]
    Directory {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// SQLite could not open or set up the file.
    #[error("cannot open the SQLite database {}: {source}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: rusqlite::Error,
    },
    /// The file was written by a newer Meerkat.
    #[error(
        "the SQLite database {} has schema version {found}, newer than the {supported} this meerkat \
         understands; run a newer meerkat",
        path.display()
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// Ours.
        supported: i64,
    },
}

/// What went wrong inside one request; becomes [`StorageReply::Failed`].
#[derive(Debug, thiserror::Error)]
enum Fault {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("invalid request: {0}")]
    Invalid(String),
}

type Result<T> = std::result::Result<T, Fault>;

/// The SQLite storage backend.
pub struct SqliteStorage {
    conn: Mutex<Connection>,
}

impl SqliteStorage {
    /// Opens (creating if needed) the database at `path` and brings its schema up to
    /// date.
    pub fn open(path: &Path) -> std::result::Result<Self, OpenError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| OpenError::Directory {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let sqlite = |source| OpenError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let mut conn = Connection::open(path).map_err(sqlite)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(sqlite)?;
        // Readers (the CLI) never block the server's writes, and the reverse.
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(sqlite)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "SQLite refused WAL mode");
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sqlite)?;
        conn.pragma_update(None, "foreign_keys", true).map_err(sqlite)?;
        // Every statement is prepared once and kept (see `exec`).
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        match migrate(&mut conn).map_err(sqlite)? {
            found if found > SCHEMA_VERSION => Err(OpenError::TooNew {
                path: path.to_path_buf(),
                found,
                supported: SCHEMA_VERSION,
            }),
            _ => Ok(Self {
                conn: Mutex::new(conn),
            }),
        }
    }
}

/// Applies the missing migrations; returns the version found (before migrating).
fn migrate(conn: &mut Connection) -> rusqlite::Result<i64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);")?;
    let found: i64 = tx
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Ok(found);
    }
    for sql in &MIGRATIONS[found as usize..] {
        tx.execute_batch(sql)?;
    }
    exec(&tx, "DELETE FROM schema_version", [])?;
    exec(
        &tx,
        "INSERT INTO schema_version (version) VALUES (?1)",
        [SCHEMA_VERSION],
    )?;
    tx.commit()?;
    Ok(found)
}

impl Storage for SqliteStorage {
    fn execute(&self, request: StorageRequest) -> StorageReply {
        // A panic while the lock was held cannot leave a transaction half-applied
        // (rusqlite rolls back on drop), so the connection is still good to use.
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let kind = request_kind(&request);
        match run(&mut conn, request) {
            Ok(reply) => reply,
            Err(fault) => {
                tracing::error!(request = kind, error = %fault, "storage request failed");
                StorageReply::Failed(fault.to_string())
            }
        }
    }
}

fn request_kind(request: &StorageRequest) -> &'static str {
    match request {
        StorageRequest::GetCredentials { .. } => "GetCredentials",
        StorageRequest::CreateUser { .. } => "CreateUser",
        StorageRequest::SetCredentials { .. } => "SetCredentials",
        StorageRequest::RemoveUser { .. } => "RemoveUser",
        StorageRequest::ListUsers { .. } => "ListUsers",
        StorageRequest::LoadUser { .. } => "LoadUser",
        StorageRequest::PutRosterItem { .. } => "PutRosterItem",
        StorageRequest::DeleteRosterItem { .. } => "DeleteRosterItem",
        StorageRequest::StoreOffline { .. } => "StoreOffline",
        StorageRequest::TakeOffline { .. } => "TakeOffline",
        StorageRequest::GetFastTokens { .. } => "GetFastTokens",
        StorageRequest::StoreFastToken { .. } => "StoreFastToken",
        StorageRequest::UseFastToken { .. } => "UseFastToken",
    }
}

fn run(conn: &mut Connection, request: StorageRequest) -> Result<StorageReply> {
    match request {
        StorageRequest::GetCredentials { user } => {
            let (domain, username) = user_key(&user)?;
            let tx = conn.transaction()?;
            let reply = if user_exists(&tx, domain, username)? {
                StorageReply::Credentials(Some(read_credentials(&tx, domain, username)?))
            } else {
                StorageReply::Credentials(None)
            };
            tx.commit()?;
            Ok(reply)
        }
        StorageRequest::CreateUser { user, credentials } => {
            let (domain, username) = user_key(&user)?;
            let tx = write(conn)?;
            if user_exists(&tx, domain, username)? {
                return Ok(StorageReply::Conflict);
            }
            exec(
                &tx,
                "INSERT INTO users (domain, username) VALUES (?1, ?2)",
                params![domain, username],
            )?;
            write_credentials(&tx, domain, username, &credentials)?;
            tx.commit()?;
            Ok(StorageReply::Done)
        }
        StorageRequest::SetCredentials { user, credentials } => {
            let (domain, username) = user_key(&user)?;
            let tx = write(conn)?;
            if !user_exists(&tx, domain, username)? {
                return Ok(StorageReply::NotFound);
            }
            exec(
                &tx,
                "DELETE FROM scram_credentials WHERE domain = ?1 AND username = ?2",
                params![domain, username],
            )?;
            write_credentials(&tx, domain, username, &credentials)?;
            tx.commit()?;
            Ok(StorageReply::Done)
        }
        StorageRequest::RemoveUser { user } => {
            let (domain, username) = user_key(&user)?;
            let owner = user.bare().to_string();
            let tx = write(conn)?;
            let removed = exec(
                &tx,
                "DELETE FROM users WHERE domain = ?1 AND username = ?2",
                params![domain, username],
            )?;
            if removed == 0 {
                return Ok(StorageReply::NotFound);
            }
            exec(&tx, "DELETE FROM roster_items WHERE owner = ?1", [&owner])?;
            exec(&tx, "DELETE FROM offline_messages WHERE owner = ?1", [&owner])?;
            tx.commit()?;
            Ok(StorageReply::Done)
        }
        StorageRequest::ListUsers { domain } => {
            let mut stmt =
                conn.prepare_cached("SELECT username FROM users WHERE domain = ?1 ORDER BY username")?;
            let names = stmt
                .query_map([&domain], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut users = names
                .iter()
                .map(|name| {
                    Jid::new(Some(name), &domain, None)
                        .map_err(|e| Fault::Corrupt(format!("user {name:?}@{domain}: {e}")))
                })
                .collect::<Result<Vec<_>>>()?;
            users.sort();
            Ok(StorageReply::Users(users))
        }
        StorageRequest::LoadUser { user } => {
            let (domain, username) = user_key(&user)?;
            let tx = conn.transaction()?;
            let reply = if user_exists(&tx, domain, username)? {
                StorageReply::User(Some(read_roster(&tx, &user.bare().to_string())?))
            } else {
                StorageReply::User(None)
            };
            tx.commit()?;
            Ok(reply)
        }
        StorageRequest::PutRosterItem { owner, item } => {
            let tx = write(conn)?;
            put_roster_item(&tx, &owner.bare().to_string(), &item)?;
            tx.commit()?;
            Ok(StorageReply::Done)
        }
        StorageRequest::DeleteRosterItem { owner, contact } => {
            exec(
                conn,
                "DELETE FROM roster_items WHERE owner = ?1 AND contact = ?2",
                params![owner.bare().to_string(), contact.bare().to_string()],
            )?;
            Ok(StorageReply::Done)
        }
        StorageRequest::StoreOffline { owner, stanza, limit } => {
            let owner = owner.bare().to_string();
            let tx = write(conn)?;
            let count: i64 = row(
                &tx,
                "SELECT count(*) FROM offline_messages WHERE owner = ?1",
                [&owner],
                |r| r.get(0),
            )?;
            if count as u64 >= limit as u64 {
                return Ok(StorageReply::LimitReached);
            }
            exec(
                &tx,
                "INSERT INTO offline_messages (owner, stanza) VALUES (?1, ?2)",
                params![owner, stanza],
            )?;
            tx.commit()?;
            Ok(StorageReply::Done)
        }
        StorageRequest::TakeOffline { owner } => {
            let owner = owner.bare().to_string();
            let tx = write(conn)?;
            let messages = {
                let mut stmt =
                    tx.prepare_cached("SELECT stanza FROM offline_messages WHERE owner = ?1 ORDER BY seq")?;
                let rows = stmt.query_map([&owner], |r| r.get::<_, String>(0))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            };
            exec(&tx, "DELETE FROM offline_messages WHERE owner = ?1", [&owner])?;
            tx.commit()?;
            Ok(StorageReply::Offline(messages))
        }
        StorageRequest::GetFastTokens { user, agent } => {
            let (domain, username) = user_key(&user)?;
            fast::get(conn, domain, username, &agent)
        }
        StorageRequest::StoreFastToken { user, agent, token } => {
            let (domain, username) = user_key(&user)?;
            let tx = write(conn)?;
            if !user_exists(&tx, domain, username)? {
                return Ok(StorageReply::NotFound);
            }
            fast::put(&tx, domain, username, &agent, FastSlot::New, &token)?;
            tx.commit()?;
            Ok(StorageReply::Done)
        }
        StorageRequest::UseFastToken {
            user,
            agent,
            slot,
            key,
            count,
            invalidate,
            issue,
        } => {
            let (domain, username) = user_key(&user)?;
            let use_ = fast::Use {
                slot,
                key,
                count,
                invalidate,
                issue,
            };
            let tx = write(conn)?;
            let reply = fast::use_token(&tx, domain, username, &agent, use_)?;
            if reply == StorageReply::Done {
                tx.commit()?;
            }
            Ok(reply)
        }
    }
}

/// A write transaction that takes the write lock up front, so that two processes
/// (server and CLI) wait on `busy_timeout` instead of failing to upgrade a read lock.
fn write(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}

/// Statements kept prepared: more than the server's distinct statements.
const STATEMENT_CACHE: usize = 64;

/// Runs `sql` through the connection's statement cache. Parsing and planning a
/// statement on every request was 5 % of the server's CPU per login (perf, 5,000
/// logins): rusqlite's `execute` and `query_row` prepare each time.
fn exec(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// [`exec`] for a statement that returns one row.
fn row<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.prepare_cached(sql)?.query_row(params, f)
}

/// `(domain, username)` of a user JID.
fn user_key(user: &Jid) -> Result<(&str, &str)> {
    let username = user
        .local()
        .ok_or_else(|| Fault::Invalid(format!("{user} is not a user JID")))?;
    Ok((user.domain(), username))
}

fn user_exists(tx: &Transaction, domain: &str, username: &str) -> Result<bool> {
    Ok(tx
        .query_row(
            "SELECT 1 FROM users WHERE domain = ?1 AND username = ?2",
            params![domain, username],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

fn hash_name(hash: ScramHash) -> &'static str {
    match hash {
        ScramHash::Sha1 => "SHA-1",
        ScramHash::Sha256 => "SHA-256",
        ScramHash::Sha512 => "SHA-512",
    }
}

fn parse_hash(name: &str) -> Option<ScramHash> {
    match name {
        "SHA-1" => Some(ScramHash::Sha1),
        "SHA-256" => Some(ScramHash::Sha256),
        "SHA-512" => Some(ScramHash::Sha512),
        _ => None,
    }
}

fn write_credentials(
    tx: &Transaction,
    domain: &str,
    username: &str,
    creds: &StoredCredentials,
) -> Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO scram_credentials (domain, username, hash, salt, iterations, stored_key, server_key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for c in &creds.scram {
        stmt.execute(params![
            domain,
            username,
            hash_name(c.hash),
            c.salt,
            c.iterations,
            c.stored_key,
            c.server_key
        ])?;
    }
    Ok(())
}

fn read_credentials(tx: &Transaction, domain: &str, username: &str) -> Result<StoredCredentials> {
    let mut stmt = tx.prepare_cached(
        "SELECT hash, salt, iterations, stored_key, server_key FROM scram_credentials
         WHERE domain = ?1 AND username = ?2 ORDER BY hash",
    )?;
    let rows = stmt.query_map(params![domain, username], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Vec<u8>>(1)?,
            r.get::<_, u32>(2)?,
            r.get::<_, Vec<u8>>(3)?,
            r.get::<_, Vec<u8>>(4)?,
        ))
    })?;
    let mut scram = Vec::new();
    for row in rows {
        let (hash, salt, iterations, stored_key, server_key) = row?;
        let hash = parse_hash(&hash).ok_or_else(|| Fault::Corrupt(format!("unknown SCRAM hash {hash:?}")))?;
        scram.push(ScramCredential {
            hash,
            salt,
            iterations,
            stored_key,
            server_key,
        });
    }
    scram.sort_by_key(|c| c.hash);
    Ok(StoredCredentials { scram })
}

fn put_roster_item(tx: &Transaction, owner: &str, item: &RosterItem) -> Result<()> {
    if item.subscription == Subscription::Remove {
        return Err(Fault::Invalid(
            "subscription 'remove' is a roster-set verb, not a stored state".into(),
        ));
    }
    let contact = item.jid.bare().to_string();
    exec(
        tx,
        "INSERT INTO roster_items
             (owner, contact, name, subscription, ask_out, pending_in, approved, in_roster)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (owner, contact) DO UPDATE SET
             name = excluded.name, subscription = excluded.subscription, ask_out = excluded.ask_out,
             pending_in = excluded.pending_in, approved = excluded.approved,
             in_roster = excluded.in_roster",
        params![
            owner,
            contact,
            item.name,
            item.subscription.as_str(),
            item.ask_out,
            item.pending_in,
            item.approved,
            item.in_roster
        ],
    )?;
    exec(
        tx,
        "DELETE FROM roster_groups WHERE owner = ?1 AND contact = ?2",
        params![owner, contact],
    )?;
    let mut stmt = tx.prepare_cached(
        "INSERT INTO roster_groups (owner, contact, position, name) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (position, group) in item.groups.iter().enumerate() {
        stmt.execute(params![owner, contact, position as i64, group])?;
    }
    Ok(())
}

fn read_roster(tx: &Transaction, owner: &str) -> Result<Vec<RosterItem>> {
    let mut stmt = tx.prepare_cached(
        "SELECT contact, name, subscription, ask_out, pending_in, approved, in_roster
         FROM roster_items WHERE owner = ?1 ORDER BY contact",
    )?;
    let rows = stmt.query_map([owner], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, bool>(3)?,
            r.get::<_, bool>(4)?,
            r.get::<_, bool>(5)?,
            r.get::<_, bool>(6)?,
        ))
    })?;
    let mut items = Vec::new();
    for row in rows {
        let (contact, name, subscription, ask_out, pending_in, approved, in_roster) = row?;
        let jid =
            Jid::parse(&contact).map_err(|e| Fault::Corrupt(format!("roster contact {contact:?}: {e}")))?;
        let subscription = Subscription::parse(&subscription)
            .ok_or_else(|| Fault::Corrupt(format!("roster subscription {subscription:?}")))?;
        items.push(RosterItem {
            jid,
            in_roster,
            name,
            subscription,
            ask_out,
            pending_in,
            approved,
            groups: Vec::new(),
        });
    }
    let mut stmt = tx.prepare_cached(
        "SELECT contact, name FROM roster_groups WHERE owner = ?1 ORDER BY contact, position",
    )?;
    let groups = stmt.query_map([owner], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    let index: HashMap<String, usize> = items
        .iter()
        .enumerate()
        .map(|(i, item)| (item.jid.to_string(), i))
        .collect();
    for group in groups {
        let (contact, name) = group?;
        if let Some(&i) = index.get(&contact) {
            items[i].groups.push(name);
        }
    }
    Ok(items)
}

mod fast;
#[cfg(test)]
mod tests;
