//! The command line: `meerkat [--config FILE]` serves; `meerkat user ...` manages
//! accounts in the storage that config names, through the same [`Storage`] requests
//! the server uses, so the CLI and the server always agree on the data.

use std::io::BufRead;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use meerkat_engine::jid::Jid;
use meerkat_engine::sasl::{StoredCredentials, DEFAULT_ITERATIONS};
use meerkat_engine::storage::{Storage, StorageReply, StorageRequest};

use crate::config::{Config, RuntimeKind};
use crate::storage;

/// The Meerkat XMPP server.
///
/// Without a command, serves: the config file given with --config, or the embedded
/// default (localhost on 127.0.0.1, STARTTLS on 5222, direct TLS on 5223, a
/// self-signed certificate and SQLite under ./meerkat-data).
#[derive(Debug, Parser)]
#[command(name = "meerkat", version)]
pub struct Cli {
    /// Config file (TOML in the shape of MongooseIM's mongooseim.toml).
    #[arg(long, short = 'c', value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// The async runtime to serve with; overrides `[general] runtime`.
    #[arg(long, value_enum, value_name = "RUNTIME")]
    pub runtime: Option<RuntimeKind>,
    /// What to do instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Commands other than serving.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage user accounts in the configured storage.
    #[command(subcommand)]
    User(UserCommand),
}

/// `meerkat user ...`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account.
    Add {
        /// The account, USER@HOST, with HOST one of the config's hosts.
        jid: String,
        /// The password, or "-" to read it from the first line of standard input
        /// (keeps it out of the process list and shell history).
        password: String,
    },
    /// Change the password of an account.
    Passwd {
        /// The account, USER@HOST.
        jid: String,
        /// The new password, or "-" to read it from standard input.
        password: String,
    },
    /// Delete an account with its roster and offline messages.
    Remove {
        /// The account, USER@HOST.
        jid: String,
    },
    /// List the accounts of a host, one JID per line.
    List {
        /// One of the config's hosts.
        host: String,
    },
}

/// A user command that did not succeed; the message is shown as is.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UserCommandError(String);

fn fail<T>(message: impl Into<String>) -> Result<T, UserCommandError> {
    Err(UserCommandError(message.into()))
}

/// Runs `command` against the storage of `config`; returns what to print on success.
pub fn run_user(config: &Config, command: UserCommand) -> Result<String, UserCommandError> {
    let storage = storage::open(&config.storage).map_err(|e| UserCommandError(e.to_string()))?;
    run_user_with(config, storage.as_ref(), command)
}

fn run_user_with(
    config: &Config,
    storage: &dyn Storage,
    command: UserCommand,
) -> Result<String, UserCommandError> {
    match command {
        UserCommand::Add { jid, password } => {
            let user = user_jid(config, &jid)?;
            let credentials = derive(&password)?;
            match storage.execute(StorageRequest::CreateUser {
                user: user.clone(),
                credentials,
            }) {
                StorageReply::Done => Ok(format!("created user {user}")),
                StorageReply::Conflict => fail(format!("user {user} already exists")),
                other => unexpected(other),
            }
        }
        UserCommand::Passwd { jid, password } => {
            let user = user_jid(config, &jid)?;
            let credentials = derive(&password)?;
            match storage.execute(StorageRequest::SetCredentials {
                user: user.clone(),
                credentials,
            }) {
                StorageReply::Done => Ok(format!("changed the password of {user}")),
                StorageReply::NotFound => fail(format!("user {user} does not exist")),
                other => unexpected(other),
            }
        }
        UserCommand::Remove { jid } => {
            let user = user_jid(config, &jid)?;
            match storage.execute(StorageRequest::RemoveUser { user: user.clone() }) {
                StorageReply::Done => Ok(format!("removed user {user}")),
                StorageReply::NotFound => fail(format!("user {user} does not exist")),
                other => unexpected(other),
            }
        }
        UserCommand::List { host } => {
            let domain = served_host(config, &host)?;
            match storage.execute(StorageRequest::ListUsers { domain }) {
                StorageReply::Users(users) => Ok(users.iter().map(|u| format!("{u}\n")).collect()),
                other => unexpected(other),
            }
        }
    }
}

fn unexpected<T>(reply: StorageReply) -> Result<T, UserCommandError> {
    match reply {
        StorageReply::Failed(m) => fail(format!("storage error: {m}")),
        other => fail(format!("storage error: unexpected reply {other:?}")),
    }
}

/// A bare user JID on one of the served hosts.
fn user_jid(config: &Config, s: &str) -> Result<Jid, UserCommandError> {
    let jid = match Jid::parse(s) {
        Ok(j) if j.local().is_some() && j.is_bare() => j,
        Ok(_) => return fail(format!("expected USER@HOST, got {s:?}")),
        Err(e) => return fail(format!("invalid JID {s:?}: {e}")),
    };
    served_host(config, jid.domain())?;
    Ok(jid)
}

/// `host` prepared, if the config serves it.
fn served_host(config: &Config, host: &str) -> Result<String, UserCommandError> {
    let domain = match Jid::domain_jid(host) {
        Ok(j) => j.domain().to_string(),
        Err(e) => return fail(format!("invalid host {host:?}: {e}")),
    };
    if !config.hosts.contains(&domain) {
        return fail(format!(
            "host {domain} is not served by {} (hosts: {})",
            config.origin,
            config.hosts.join(", ")
        ));
    }
    Ok(domain)
}

fn derive(password: &str) -> Result<StoredCredentials, UserCommandError> {
    let password = if password == "-" {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| UserCommandError(format!("cannot read the password from standard input: {e}")))?;
        line.trim_end_matches(['\n', '\r']).to_string()
    } else {
        password.to_string()
    };
    StoredCredentials::try_derive(&password, DEFAULT_ITERATIONS, &mut rand_core::OsRng)
        .map_err(|e| UserCommandError(format!("unusable password: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::SqliteStorage;

    fn setup() -> (tempfile::TempDir, Config, SqliteStorage) {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::embedded_default().unwrap();
        let storage = SqliteStorage::open(&dir.path().join("m.db")).unwrap();
        (dir, config, storage)
    }

    fn run(config: &Config, storage: &SqliteStorage, command: UserCommand) -> Result<String, String> {
        run_user_with(config, storage, command).map_err(|e| e.to_string())
    }

    fn add(jid: &str, password: &str) -> UserCommand {
        UserCommand::Add {
            jid: jid.into(),
            password: password.into(),
        }
    }

    #[test]
    fn added_user_can_authenticate_with_that_password_only() {
        let (_dir, config, storage) = setup();
        assert_eq!(
            run(&config, &storage, add("Alice@localhost", "secret")),
            Ok("created user alice@localhost".into())
        );
        let StorageReply::Credentials(Some(creds)) = storage.execute(StorageRequest::GetCredentials {
            user: Jid::parse("alice@localhost").unwrap(),
        }) else {
            panic!("no credentials")
        };
        assert!(creds.verify_password("secret"));
        assert!(!creds.verify_password("Secret"));
    }

    #[test]
    fn jids_and_hosts_are_checked() {
        let (_dir, config, storage) = setup();
        assert_eq!(
            run(&config, &storage, add("localhost", "x")),
            Err("expected USER@HOST, got \"localhost\"".into())
        );
        assert_eq!(
            run(&config, &storage, add("a@localhost/res", "x")),
            Err("expected USER@HOST, got \"a@localhost/res\"".into())
        );
        assert_eq!(
            run(&config, &storage, add("a@example.com", "x")),
            Err("host example.com is not served by the embedded default config (hosts: localhost)".into())
        );
        assert!(run(&config, &storage, add("a@b@c", "x"))
            .unwrap_err()
            .starts_with("invalid JID"));
        assert_eq!(
            run(&config, &storage, add("a@localhost", "")),
            Err("unusable password: password not allowed by the PRECIS OpaqueString profile".into())
        );
        assert_eq!(
            run(
                &config,
                &storage,
                UserCommand::List {
                    host: "example.com".into()
                }
            ),
            Err("host example.com is not served by the embedded default config (hosts: localhost)".into())
        );
    }
}
