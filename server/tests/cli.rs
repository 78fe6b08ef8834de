//! The `meerkat user ...` commands, run as a user would: the built binary in a
//! scratch working directory.

use std::path::Path;
use std::process::{Command, Output, Stdio};

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn meerkat(dir: &Path, args: &[&str]) -> Run {
    meerkat_with_stdin(dir, args, "")
}

fn meerkat_with_stdin(dir: &Path, args: &[&str], stdin: &str) -> Run {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_meerkat"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn meerkat");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    Run {
        ok: status.success(),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

fn assert_ok(run: &Run, stdout: &str) {
    assert!(run.ok, "failed: {}", run.stderr);
    assert_eq!(run.stdout, stdout);
}

fn assert_fails(run: &Run, stderr: &str) {
    assert!(!run.ok, "succeeded: {}", run.stdout);
    assert_eq!(run.stderr, stderr);
}

/// The SCRAM salt of `user`'s SHA-256 credential, read straight from the database.
fn salt(db: &Path, user: &str) -> Vec<u8> {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT salt FROM scram_credentials WHERE username = ?1 AND hash = 'SHA-256'",
        [user],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn user_add_list_passwd_remove_round_trip_with_the_default_config() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    assert_ok(
        &meerkat(d, &["user", "add", "alice@localhost", "secret"]),
        "created user alice@localhost\n",
    );
    let db = d.join("meerkat-data/meerkat.db");
    assert!(
        db.exists(),
        "the default config keeps SQLite under ./meerkat-data"
    );
    // Only the user commands ran: no certificate was generated.
    assert!(!d.join("meerkat-data/cert.pem").exists());

    assert_ok(
        &meerkat_with_stdin(d, &["user", "add", "bob@localhost", "-"], "hunter2\n"),
        "created user bob@localhost\n",
    );
    assert_fails(
        &meerkat(d, &["user", "add", "Alice@localhost", "other"]),
        "meerkat: user alice@localhost already exists\n",
    );
    assert_ok(
        &meerkat(d, &["user", "list", "localhost"]),
        "alice@localhost\nbob@localhost\n",
    );

    let before = salt(&db, "alice");
    assert_ok(
        &meerkat(d, &["user", "passwd", "alice@localhost", "new secret"]),
        "changed the password of alice@localhost\n",
    );
    assert_ne!(salt(&db, "alice"), before, "new credentials, new salt");
    assert_fails(
        &meerkat(d, &["user", "passwd", "carol@localhost", "x"]),
        "meerkat: user carol@localhost does not exist\n",
    );

    assert_ok(
        &meerkat(d, &["user", "remove", "alice@localhost"]),
        "removed user alice@localhost\n",
    );
    assert_fails(
        &meerkat(d, &["user", "remove", "alice@localhost"]),
        "meerkat: user alice@localhost does not exist\n",
    );
    assert_ok(&meerkat(d, &["user", "list", "localhost"]), "bob@localhost\n");
}

#[test]
fn user_commands_refuse_bad_jids_and_unknown_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_fails(
        &meerkat(d, &["user", "add", "alice@example.com", "x"]),
        "meerkat: host example.com is not served by the embedded default config (hosts: localhost)\n",
    );
    assert_fails(
        &meerkat(d, &["user", "add", "localhost", "x"]),
        "meerkat: expected USER@HOST, got \"localhost\"\n",
    );
    assert_fails(
        &meerkat(d, &["user", "list", "example.com"]),
        "meerkat: host example.com is not served by the embedded default config (hosts: localhost)\n",
    );
    let run = meerkat(d, &["user", "add", "alice@localhost"]);
    assert!(!run.ok);
    assert!(run.stderr.contains("PASSWORD"), "{}", run.stderr);
}

#[test]
fn user_commands_use_the_storage_and_hosts_of_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("m.toml"),
        "[general]\nhosts = [\"example.com\"]\n\
         [outgoing_pools.rdbms.default.connection]\ndriver = \"sqlite\"\ndatabase = \"db/users.db\"\n",
    )
    .unwrap();
    assert_ok(
        &meerkat(
            d,
            &["--config", "m.toml", "user", "add", "alice@example.com", "pw"],
        ),
        "created user alice@example.com\n",
    );
    assert!(d.join("db/users.db").exists());
    assert!(!d.join("meerkat-data").exists());
    // --config may also follow the subcommand.
    assert_ok(
        &meerkat(d, &["user", "list", "example.com", "--config", "m.toml"]),
        "alice@example.com\n",
    );
    assert_fails(
        &meerkat(d, &["--config", "m.toml", "user", "add", "bob@localhost", "pw"]),
        "meerkat: host localhost is not served by m.toml (hosts: example.com)\n",
    );
}

#[test]
fn a_bad_config_stops_everything_with_a_message_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("bad.toml"),
        "[general]\nhosts = [\"localhost\"]\n\n[[listen.c2s]]\nport = 5222\ntls.mode = \"foo\"\n",
    )
    .unwrap();
    let expected = "config error in bad.toml:6: listen.c2s[0].tls.mode: expected one of \"starttls\", \
                    \"starttls_required\", \"tls\", got the string \"foo\"\n";
    assert_fails(&meerkat(d, &["--config", "bad.toml"]), expected);
    assert_fails(
        &meerkat(d, &["--config", "bad.toml", "user", "list", "localhost"]),
        expected,
    );
    assert_fails(
        &meerkat(d, &["--config", "missing.toml"]),
        "config error in missing.toml: cannot read the file: No such file or directory (os error 2)\n",
    );
}
