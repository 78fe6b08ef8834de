//! XEP-0484 FAST tokens in SQLite: two slots per user and client installation, the
//! `count` replay check done by the database in the same transaction as the use.

use meerkat_engine::storage::{FastSlot, FastToken, StorageReply};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::{Fault, Result};

/// What [`use_token`] does, from `StorageRequest::UseFastToken`.
pub(super) struct Use {
    pub slot: FastSlot,
    pub key: Vec<u8>,
    pub count: Option<u64>,
    pub invalidate: bool,
    pub issue: Option<FastToken>,
}

pub(super) fn get(conn: &mut Connection, domain: &str, username: &str, agent: &str) -> Result<StorageReply> {
    let mut stmt = conn.prepare(
        "SELECT slot, mechanism, key, expiry, count FROM fast_tokens
         WHERE domain = ?1 AND username = ?2 AND agent = ?3 ORDER BY slot DESC",
    )?;
    let rows = stmt.query_map(params![domain, username, agent], |r| {
        Ok((
            r.get::<_, String>(0)?,
            FastToken {
                mechanism: r.get(1)?,
                key: r.get(2)?,
                expiry: r.get::<_, i64>(3)? as u64,
                count: r.get::<_, i64>(4)? as u64,
            },
        ))
    })?;
    let mut tokens = Vec::new();
    for row in rows {
        let (slot, token) = row?;
        let slot = FastSlot::parse(&slot).ok_or_else(|| Fault::Corrupt(format!("FAST slot {slot:?}")))?;
        tokens.push((slot, token));
    }
    Ok(StorageReply::FastTokens(tokens))
}

pub(super) fn put(
    tx: &Transaction,
    domain: &str,
    username: &str,
    agent: &str,
    slot: FastSlot,
    token: &FastToken,
) -> Result<()> {
    tx.execute(
        "INSERT OR REPLACE INTO fast_tokens (domain, username, agent, slot, mechanism, key, expiry, count)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            domain,
            username,
            agent,
            slot.as_str(),
            token.mechanism,
            token.key,
            token.expiry as i64,
            token.count as i64
        ],
    )?;
    Ok(())
}

/// See `StorageRequest::UseFastToken`: all of it or nothing, in one transaction.
pub(super) fn use_token(
    tx: &Transaction,
    domain: &str,
    username: &str,
    agent: &str,
    u: Use,
) -> Result<StorageReply> {
    let last: Option<i64> = tx
        .query_row(
            "SELECT count FROM fast_tokens
             WHERE domain = ?1 AND username = ?2 AND agent = ?3 AND slot = ?4 AND key = ?5",
            params![domain, username, agent, u.slot.as_str(), u.key],
            |r| r.get(0),
        )
        .optional()?;
    let Some(last) = last else {
        return Ok(StorageReply::NotFound);
    };
    if let Some(count) = u.count {
        if count as i64 <= last {
            return Ok(StorageReply::Conflict);
        }
        tx.execute(
            "UPDATE fast_tokens SET count = ?5
             WHERE domain = ?1 AND username = ?2 AND agent = ?3 AND slot = ?4",
            params![domain, username, agent, u.slot.as_str(), count as i64],
        )?;
    }
    if u.slot == FastSlot::New {
        tx.execute(
            "DELETE FROM fast_tokens WHERE domain = ?1 AND username = ?2 AND agent = ?3 AND slot = 'current'",
            params![domain, username, agent],
        )?;
        tx.execute(
            "UPDATE fast_tokens SET slot = 'current'
             WHERE domain = ?1 AND username = ?2 AND agent = ?3 AND slot = 'new'",
            params![domain, username, agent],
        )?;
    }
    if u.invalidate {
        tx.execute(
            "DELETE FROM fast_tokens WHERE domain = ?1 AND username = ?2 AND agent = ?3",
            params![domain, username, agent],
        )?;
    }
    if let Some(token) = &u.issue {
        put(tx, domain, username, agent, FastSlot::New, token)?;
    }
    Ok(StorageReply::Done)
}
