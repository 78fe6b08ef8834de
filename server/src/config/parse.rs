//! From TOML text to a validated [`Config`], section by section.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use meerkat_engine::jid::Jid;
use meerkat_engine::sasl::backoff::BackoffConfig;
use meerkat_engine::sasl::{Mechanism, ScramHash};
use meerkat_engine::stream::c2s::{CsiConfig, FastConfig, SmConfig, TlsMode};
use meerkat_engine::tls::{TlsError, TlsIdentity};
use meerkat_runtime_common::ConnectionLimits;
use toml::de::{DeTable, DeValue};

use super::error::{ConfigError, ConfigOrigin, Problem};
use super::node::{Doc, Node, Result, Table};
use super::{
    AuthConfig, AuthMethod, C2sListenerConfig, CertSource, Config, ListenerTls, LogFormat, LogLevel,
    ModulesConfig, OfflineConfig, RuntimeKind, SessionTickets, StorageConfig, VersionConfig, DATA_DIR,
    DEFAULT_AUTH_TIMEOUT_MS, DEFAULT_MAX_STANZA_SIZE, DEFAULT_OFFLINE_LIMIT,
};

/// MongooseIM's `sasl_mechanisms` names that Meerkat implements, in the default order.
const SASL_MECHANISMS: &[(&str, Mechanism)] = &[
    ("scram_sha512_plus", scram(ScramHash::Sha512, true)),
    ("scram_sha256_plus", scram(ScramHash::Sha256, true)),
    ("scram_sha1_plus", scram(ScramHash::Sha1, true)),
    ("scram_sha512", scram(ScramHash::Sha512, false)),
    ("scram_sha256", scram(ScramHash::Sha256, false)),
    ("scram_sha1", scram(ScramHash::Sha1, false)),
    ("plain", Mechanism::Plain),
];

const fn scram(hash: ScramHash, plus: bool) -> Mechanism {
    Mechanism::Scram { hash, plus }
}

const MODULES: &[&str] = &[
    "mod_bosh",
    "mod_carbons",
    "mod_csi",
    "mod_disco",
    "mod_fast_auth_token",
    "mod_offline",
    "mod_ping",
    "mod_register",
    "mod_roster",
    "mod_stream_management",
    "mod_version",
];

pub(super) fn parse(text: &str, origin: ConfigOrigin) -> std::result::Result<Config, ConfigError> {
    let doc = Doc::new(origin.clone(), text);
    let parsed = DeTable::parse(text)
        .map_err(|e| doc.error(e.span(), "", Problem::Syntax(e.message().trim().to_string())))?;
    let span = parsed.span();
    let value = DeValue::Table(parsed.into_inner());
    let root = Node::root(&doc, &value, span).table(&[
        "general",
        "listen",
        "shaper",
        "auth",
        "outgoing_pools",
        "modules",
        "s2s",
    ])?;

    let general = general(&root.required("general", "a table with at least `hosts`")?)?;
    let shapers = match root.get("shaper") {
        Some(node) => shapers(&node)?,
        None => BTreeMap::new(),
    };
    let auth = match root.get("auth") {
        Some(node) => auth(&node)?,
        None => AuthConfig {
            methods: vec![AuthMethod::Internal],
            sasl_mechanisms: SASL_MECHANISMS.iter().map(|(_, m)| *m).collect(),
            backoff: Some(BackoffConfig::default()),
        },
    };
    let storage = match root.get("outgoing_pools") {
        Some(node) => outgoing_pools(&node)?,
        None => default_storage(),
    };
    let modules = match root.get("modules") {
        Some(node) => modules(&node)?,
        None => ModulesConfig {
            offline: None,
            register: false,
            version: None,
            roster: false,
            disco: false,
            ping: false,
            stream_management: None,
            carbons: false,
            csi: None,
            fast_auth_token: None,
            bosh: None,
        },
    };
    let (c2s, (s2s_listeners, components), http) = match root.get("listen") {
        Some(node) => {
            let t = node.table(&["c2s", "s2s", "component", "http"])?;
            let c2s = listen(&t, &shapers)?;
            let http = super::http::listen_http(&t, &c2s)?;
            (c2s, super::federation::listeners(&t, &shapers)?, http)
        }
        None => (Vec::new(), (Vec::new(), Vec::new()), Vec::new()),
    };
    let s2s = match root.get("s2s") {
        Some(node) => Some(super::federation::s2s(&node, &shapers)?),
        None => None,
    };
    Ok(Config {
        origin,
        hosts: general.hosts,
        loglevel: general.loglevel,
        runtime: general.runtime,
        threads: general.threads,
        log_format: general.log_format,
        c2s,
        http,
        auth,
        storage,
        modules,
        s2s_listeners,
        components,
        s2s,
    })
}

/// The `[general]` section.
struct General {
    log_format: LogFormat,
    hosts: Vec<String>,
    loglevel: Option<LogLevel>,
    runtime: RuntimeKind,
    threads: Option<usize>,
}

fn general(node: &Node) -> Result<General> {
    let t = node.table(&["hosts", "loglevel", "runtime", "threads", "log_format"])?;
    let expected = "a non-empty array of domain names, e.g. [\"example.com\"]";
    let hosts_node = t.required("hosts", expected)?;
    let items = hosts_node.array(expected)?;
    if items.is_empty() {
        return Err(hosts_node.bad_value(expected));
    }
    let mut hosts: Vec<String> = Vec::new();
    for item in items {
        let raw = item.str("a domain name")?;
        let jid = Jid::domain_jid(raw).map_err(|_| item.bad_value("a domain name"))?;
        let domain = jid.domain().to_string();
        if hosts.contains(&domain) {
            return Err(item.error(Problem::Conflict(format!("host {domain:?} is listed twice"))));
        }
        hosts.push(domain);
    }
    let loglevel = match t.get("loglevel") {
        None => None,
        Some(n) => Some(
            match n.one_of(&[
                "none",
                "emergency",
                "alert",
                "critical",
                "error",
                "warning",
                "notice",
                "info",
                "debug",
                "all",
            ])? {
                "none" => LogLevel::None,
                "emergency" => LogLevel::Emergency,
                "alert" => LogLevel::Alert,
                "critical" => LogLevel::Critical,
                "error" => LogLevel::Error,
                "warning" => LogLevel::Warning,
                "notice" => LogLevel::Notice,
                "info" => LogLevel::Info,
                "debug" => LogLevel::Debug,
                _ => LogLevel::All,
            },
        ),
    };
    let runtime = match t.get("runtime") {
        None => RuntimeKind::Tokio,
        Some(n) => match n.one_of(&["tokio", "smol", "glommio"])? {
            "smol" => RuntimeKind::Smol,
            "glommio" => RuntimeKind::Glommio,
            _ => RuntimeKind::Tokio,
        },
    };
    let threads = match t.get("threads") {
        None => None,
        Some(n) => Some(n.integer(1..=1024, "a number of threads from 1 to 1024")? as usize),
    };
    let log_format = match t.get("log_format") {
        None => LogFormat::Text,
        Some(n) => match n.one_of(&["text", "json"])? {
            "json" => LogFormat::Json,
            _ => LogFormat::Text,
        },
    };
    Ok(General {
        log_format,
        hosts,
        loglevel,
        runtime,
        threads,
    })
}

fn shapers(node: &Node) -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for (name, shaper) in node.any_table()?.entries() {
        let t = shaper.table(&["max_rate"])?;
        let expected = "a positive integer (bytes per second)";
        let rate = t
            .required("max_rate", expected)?
            .integer(1..=u64::MAX, expected)?;
        out.insert(name.to_string(), rate);
    }
    Ok(out)
}

fn listen(t: &Table, shapers: &BTreeMap<String, u64>) -> Result<Vec<C2sListenerConfig>> {
    let Some(c2s) = t.get("c2s") else {
        return Ok(Vec::new());
    };
    let mut out: Vec<C2sListenerConfig> = Vec::new();
    let mut paths: Vec<String> = Vec::new();
    for item in c2s.array("an array of tables ([[listen.c2s]])")? {
        let listener = c2s_listener(&item, shapers)?;
        if let Some(i) = out.iter().position(|l| l.addr == listener.addr) {
            return Err(item.error(Problem::Conflict(format!(
                "address {} is already used by {}",
                listener.addr, paths[i]
            ))));
        }
        paths.push(item.path().to_string());
        out.push(listener);
    }
    Ok(out)
}

fn c2s_listener(node: &Node, shapers: &BTreeMap<String, u64>) -> Result<C2sListenerConfig> {
    let mut known = vec!["port", "ip_address", "shaper", "max_stanza_size", "tls"];
    known.extend_from_slice(LIMIT_OPTIONS);
    let t = node.table(&known)?;
    let tls = match t.get("tls") {
        None => None,
        Some(n) => Some(c2s_listener_tls(&n)?),
    };
    Ok(C2sListenerConfig {
        addr: listen_address(&t)?,
        shaper_max_rate: shaper_option(&t, shapers)?,
        max_stanza_size: max_stanza_size_option(&t)?,
        tls,
        limits: connection_limits(&t)?,
        auth_timeout_ms: auth_timeout_option(&t)?,
    })
}

/// The limits every XMPP listener type has (MongooseIM's `listen.*.backlog` and
/// `listen.c2s.max_connections`, and Meerkat's own beside them).
pub(super) const LIMIT_OPTIONS: &[&str] = &[
    "backlog",
    "max_connections",
    "max_connections_per_ip",
    "max_send_queue_size",
    "auth_timeout",
];

/// `backlog`, `max_connections`, `max_connections_per_ip` and
/// `max_send_queue_size` of a listener.
pub(super) fn connection_limits(t: &Table) -> Result<ConnectionLimits> {
    let defaults = ConnectionLimits::default();
    let backlog = match t.get("backlog") {
        None => defaults.backlog,
        Some(n) => n.integer(
            1..=65_535,
            "a positive integer (pending connections), at most 65535",
        )? as u32,
    };
    Ok(ConnectionLimits {
        max_connections: count_or_infinity(t, "max_connections", "a positive integer or \"infinity\"")?
            .unwrap_or(defaults.max_connections),
        max_connections_per_ip: count_or_infinity(
            t,
            "max_connections_per_ip",
            "a positive integer or \"infinity\"",
        )?
        .unwrap_or(defaults.max_connections_per_ip),
        backlog,
        max_send_queue: send_queue_option(t)?,
    })
}

/// `max_send_queue_size`: bytes, or `"infinity"`.
pub(super) fn send_queue_option(t: &Table) -> Result<Option<usize>> {
    Ok(count_or_infinity(
        t,
        "max_send_queue_size",
        "a positive integer (bytes) or \"infinity\"",
    )?
    .unwrap_or(Some(meerkat_runtime_common::DEFAULT_MAX_SEND_QUEUE)))
}

/// A positive integer or `"infinity"` (`Some(None)`); `None` when absent.
fn count_or_infinity(t: &Table, key: &str, expected: &str) -> Result<Option<Option<usize>>> {
    let Some(n) = t.get(key) else { return Ok(None) };
    if n.is_integer() {
        Ok(Some(Some(n.integer(1..=usize::MAX as u64, expected)? as usize)))
    } else if n.str(expected)? == "infinity" {
        Ok(Some(None))
    } else {
        Err(n.bad_value(expected))
    }
}

/// `auth_timeout`: ms a connection has to authenticate, or `"infinity"`.
pub(super) fn auth_timeout_option(t: &Table) -> Result<Option<u64>> {
    milliseconds(t, "auth_timeout", DEFAULT_AUTH_TIMEOUT_MS)
}

/// A duration in milliseconds, or `"infinity"` (`None`).
pub(super) fn milliseconds(t: &Table, key: &str, default: u64) -> Result<Option<u64>> {
    let Some(n) = t.get(key) else {
        return Ok(Some(default));
    };
    let expected = "a positive integer (milliseconds) or \"infinity\"";
    if n.is_integer() {
        Ok(Some(n.integer(1..=u64::MAX / 2, expected)?))
    } else if n.str(expected)? == "infinity" {
        Ok(None)
    } else {
        Err(n.bad_value(expected))
    }
}

/// A listener's `ip_address` and `port` (every listener type has them).
pub(super) fn listen_address(t: &Table) -> Result<SocketAddr> {
    let expected = "a port number from 1 to 65535";
    let port = t.required("port", expected)?.integer(1..=65535, expected)? as u16;
    let ip: IpAddr = match t.get("ip_address") {
        None => IpAddr::from([0, 0, 0, 0]),
        Some(n) => {
            let expected = "an IP address, e.g. \"0.0.0.0\" or \"::\"";
            n.str(expected)?.parse().map_err(|_| n.bad_value(expected))?
        }
    };
    Ok(SocketAddr::new(ip, port))
}

/// `shaper = "NAME"` (on every connection type), resolved to its `max_rate`.
pub(super) fn shaper_option(t: &Table, shapers: &BTreeMap<String, u64>) -> Result<Option<u64>> {
    let Some(n) = t.get("shaper") else { return Ok(None) };
    let expected = if shapers.is_empty() {
        "\"none\" (no [shaper.NAME] section is defined)".to_string()
    } else {
        let names: Vec<String> = shapers.keys().map(|k| format!("{k:?}")).collect();
        format!(
            "the name of a [shaper.NAME] section ({}) or \"none\"",
            names.join(", ")
        )
    };
    match n.str(&expected)? {
        "none" => Ok(None),
        name => Ok(Some(*shapers.get(name).ok_or_else(|| n.bad_value(&expected))?)),
    }
}

/// `max_stanza_size`: bytes, or `"infinity"`.
pub(super) fn max_stanza_size_option(t: &Table) -> Result<usize> {
    let Some(n) = t.get("max_stanza_size") else {
        return Ok(DEFAULT_MAX_STANZA_SIZE);
    };
    let expected = "a positive integer (bytes) or \"infinity\"";
    if n.is_integer() {
        Ok(n.integer(1..=usize::MAX as u64, expected)? as usize)
    } else if n.str(expected)? == "infinity" {
        Ok(usize::MAX)
    } else {
        Err(n.bad_value(expected))
    }
}

/// The `tls` table of a listener without session resumption (components).
pub(super) fn listener_tls(node: &Node) -> Result<ListenerTls> {
    let t = node.table(&["mode", "certfile", "keyfile"])?;
    Ok(ListenerTls {
        mode: tls_mode(&t)?,
        cert: tls_cert(&t)?,
        early_data: false,
        session_tickets: None,
    })
}

/// The `tls` table of `[[listen.c2s]]`: also TLS 1.3 session tickets and 0-RTT.
fn c2s_listener_tls(node: &Node) -> Result<ListenerTls> {
    let t = node.table(&["mode", "certfile", "keyfile", "early_data", "session_tickets"])?;
    let mode = tls_mode(&t)?;
    let cert = tls_cert(&t)?;
    let session_tickets = match t.get("session_tickets") {
        None => None,
        Some(n) => Some(match n.one_of(&["stateless", "stateful"])? {
            "stateless" => SessionTickets::Stateless,
            _ => SessionTickets::Stateful,
        }),
    };
    let early_data = match t.get("early_data") {
        None => false,
        Some(n) => {
            let on = n.bool()?;
            // 0-RTT data only exists on a resumed TLS 1.3 session, and only direct
            // TLS has no plaintext before it.
            if on && session_tickets.is_none() {
                return Err(t.missing(
                    "session_tickets",
                    "\"stateless\" or \"stateful\": early data needs TLS session resumption",
                ));
            }
            if on && mode != TlsMode::Tls {
                return Err(n.bad_value("false: early data needs tls.mode = \"tls\" (direct TLS)"));
            }
            on
        }
    };
    Ok(ListenerTls {
        mode,
        cert,
        early_data,
        session_tickets,
    })
}

/// `tls.mode` (MongooseIM's default: STARTTLS).
pub(super) fn tls_mode(t: &Table) -> Result<TlsMode> {
    Ok(match t.get("mode") {
        None => TlsMode::StartTls,
        Some(n) => match n.one_of(&["starttls", "starttls_required", "tls"])? {
            "starttls" => TlsMode::StartTls,
            "starttls_required" => TlsMode::StartTlsRequired,
            _ => TlsMode::Tls,
        },
    })
}

/// A file path option of a `tls` table, with its node for errors.
pub(super) fn tls_path<'a, 'i>(t: &Table<'a, 'i>, key: &str) -> Result<Option<(PathBuf, Node<'a, 'i>)>> {
    let Some(n) = t.get(key) else { return Ok(None) };
    let expected = "a file path";
    let s = n.str(expected)?;
    if s.is_empty() {
        return Err(n.bad_value(expected));
    }
    Ok(Some((PathBuf::from(s), n)))
}

/// `tls.certfile` and `tls.keyfile`: both (checked usable together), or neither
/// (the self-signed pair).
pub(super) fn tls_cert(t: &Table) -> Result<CertSource> {
    match (tls_path(t, "certfile")?, tls_path(t, "keyfile")?) {
        (None, None) => Ok(CertSource::SelfSigned),
        (Some((certfile, cert_node)), Some((keyfile, key_node))) => {
            check_identity(&certfile, &cert_node, &keyfile, &key_node)?;
            Ok(CertSource::Files { certfile, keyfile })
        }
        (Some(_), None) => Err(t.missing("keyfile", "the PEM private key that goes with tls.certfile")),
        (None, Some(_)) => Err(t.missing("certfile", "the PEM certificate chain that goes with tls.keyfile")),
    }
}

/// Both files must be readable PEM and make a usable rustls identity together.
pub(super) fn check_identity(
    certfile: &Path,
    cert_node: &Node,
    keyfile: &Path,
    key_node: &Node,
) -> Result<()> {
    let read = |file: &Path, node: &Node| {
        std::fs::read(file).map_err(|e| {
            node.error(Problem::File {
                file: file.to_path_buf(),
                reason: e.to_string(),
            })
        })
    };
    let cert = read(certfile, cert_node)?;
    let key = read(keyfile, key_node)?;
    TlsIdentity::from_pem(&cert, &key, &[]).map_err(|e| {
        let (file, node) = match e {
            TlsError::PrivateKey(_) => (keyfile, key_node),
            _ => (certfile, cert_node),
        };
        node.error(Problem::File {
            file: file.to_path_buf(),
            reason: e.to_string(),
        })
    })?;
    Ok(())
}

fn auth(node: &Node) -> Result<AuthConfig> {
    let t = node.table(&["methods", "sasl_mechanisms", "backoff"])?;
    let methods = match t.get("methods") {
        None => vec![AuthMethod::Internal],
        Some(n) => {
            let expected = "[\"internal\"] or [\"rdbms\"]";
            let items = n.array(expected)?;
            let mut methods = Vec::new();
            for item in &items {
                methods.push(match item.one_of(&["internal", "rdbms"])? {
                    "internal" => AuthMethod::Internal,
                    _ => AuthMethod::Rdbms,
                });
            }
            if methods.len() != 1 {
                return Err(n.bad_value(expected));
            }
            methods
        }
    };
    let sasl_mechanisms = match t.get("sasl_mechanisms") {
        None => SASL_MECHANISMS.iter().map(|(_, m)| *m).collect(),
        Some(n) => {
            let expected = "a non-empty array of mechanism names, e.g. [\"scram_sha256\", \"plain\"]";
            let items = n.array(expected)?;
            if items.is_empty() {
                return Err(n.bad_value(expected));
            }
            let names: Vec<&'static str> = SASL_MECHANISMS.iter().map(|(name, _)| *name).collect();
            let mut out = Vec::new();
            for item in &items {
                let name = item.one_of(&names)?;
                let mechanism = SASL_MECHANISMS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, m)| *m)
                    .expect("name from the table");
                if out.contains(&mechanism) {
                    return Err(item.error(Problem::Conflict(format!("{name:?} is listed twice"))));
                }
                out.push(mechanism);
            }
            out
        }
    };
    let backoff = match t.get("backoff") {
        None => Some(BackoffConfig::default()),
        Some(n) => auth_backoff(&n)?,
    };
    Ok(AuthConfig {
        methods,
        sasl_mechanisms,
        backoff,
    })
}

/// `[auth.backoff]`: `after_failures` (or `"infinity"`: no backoff),
/// `initial_delay` and `max_delay` in ms.
fn auth_backoff(node: &Node) -> Result<Option<BackoffConfig>> {
    let t = node.table(&["after_failures", "initial_delay", "max_delay"])?;
    let defaults = BackoffConfig::default();
    let expected = "a positive integer (failed authentications) or \"infinity\"";
    let after_failures = match count_or_infinity(&t, "after_failures", expected)? {
        None => defaults.after_failures,
        Some(None) => return Ok(None),
        Some(Some(n)) => n.min(u32::MAX as usize) as u32,
    };
    let ms = |key: &str, default: Duration| -> Result<Duration> {
        match t.get(key) {
            None => Ok(default),
            Some(n) => Ok(Duration::from_millis(n.integer(
                1..=86_400_000,
                "a positive integer (milliseconds), at most a day",
            )?)),
        }
    };
    let initial_delay = ms("initial_delay", defaults.initial_delay)?;
    let max_delay = ms("max_delay", defaults.max_delay)?;
    if max_delay < initial_delay {
        let n = t
            .get("max_delay")
            .or_else(|| t.get("initial_delay"))
            .expect("one was given");
        return Err(n.bad_value("max_delay at least initial_delay"));
    }
    Ok(Some(BackoffConfig {
        after_failures,
        initial_delay,
        max_delay,
    }))
}

fn default_storage() -> StorageConfig {
    StorageConfig {
        database: Path::new(DATA_DIR).join("meerkat.db"),
    }
}

fn outgoing_pools(node: &Node) -> Result<StorageConfig> {
    let pools = node.table(&["rdbms"])?;
    let Some(rdbms) = pools.get("rdbms") else {
        return Ok(default_storage());
    };
    let rdbms = rdbms.table(&["default"])?;
    let Some(default) = rdbms.get("default") else {
        return Ok(default_storage());
    };
    let default = default.table(&["connection"])?;
    let connection = default
        .required("connection", "a table with `driver = \"sqlite\"`")?
        .table(&["driver", "database"])?;
    connection.required("driver", "\"sqlite\"")?.one_of(&["sqlite"])?;
    let database = match connection.get("database") {
        None => default_storage().database,
        Some(n) => {
            let expected = "the path of the SQLite database file";
            let s = n.str(expected)?;
            if s.is_empty() {
                return Err(n.bad_value(expected));
            }
            PathBuf::from(s)
        }
    };
    Ok(StorageConfig { database })
}

fn modules(node: &Node) -> Result<ModulesConfig> {
    let t = node.table(MODULES)?;
    let flag = |name: &str| -> Result<bool> {
        match t.get(name) {
            None => Ok(false),
            Some(n) => n.table(&[]).map(|_| true),
        }
    };
    let offline = match t.get("mod_offline") {
        None => None,
        Some(n) => {
            let m = n.table(&["max_messages"])?;
            let max_messages = match m.get("max_messages") {
                None => DEFAULT_OFFLINE_LIMIT,
                Some(v) => v.integer(0..=usize::MAX as u64, "a non-negative integer")? as usize,
            };
            Some(OfflineConfig { max_messages })
        }
    };
    let version = match t.get("mod_version") {
        None => None,
        Some(n) => {
            let m = n.table(&["os_info"])?;
            let os_info = match m.get("os_info") {
                None => false,
                Some(v) => v.bool()?,
            };
            Some(VersionConfig { os_info })
        }
    };
    Ok(ModulesConfig {
        offline,
        register: flag("mod_register")?,
        version,
        roster: flag("mod_roster")?,
        disco: flag("mod_disco")?,
        ping: flag("mod_ping")?,
        stream_management: match t.get("mod_stream_management") {
            None => None,
            Some(n) => Some(stream_management(&n)?),
        },
        carbons: flag("mod_carbons")?,
        csi: match t.get("mod_csi") {
            None => None,
            Some(n) => {
                let m = n.table(&["buffer_max"])?;
                let buffer_max = match m.get("buffer_max") {
                    None => 20,
                    Some(v) => v.integer(0..=usize::MAX as u64, "a non-negative integer")? as usize,
                };
                Some(CsiConfig { buffer_max })
            }
        },
        fast_auth_token: match t.get("mod_fast_auth_token") {
            None => None,
            Some(n) => Some(fast_auth_token(&n)?),
        },
        bosh: match t.get("mod_bosh") {
            None => None,
            Some(n) => Some(super::http::mod_bosh(&n)?),
        },
    })
}

/// `[modules.mod_stream_management]`, MongooseIM's options.
fn stream_management(node: &Node) -> Result<SmConfig> {
    let m = node.table(&["buffer_max", "ack_freq", "resume_timeout"])?;
    let mut config = SmConfig::default();
    if let Some(n) = m.get("buffer_max") {
        let expected = "a positive integer or \"infinity\"";
        config.buffer_max = if n.is_integer() {
            Some(n.integer(1..=usize::MAX as u64, expected)? as usize)
        } else if n.str(expected)? == "infinity" {
            None
        } else {
            return Err(n.bad_value(expected));
        };
    }
    if let Some(n) = m.get("ack_freq") {
        let expected = "a positive integer or \"never\"";
        config.ack_freq = if n.is_integer() {
            Some(n.integer(1..=u64::from(u32::MAX), expected)? as u32)
        } else if n.str(expected)? == "never" {
            None
        } else {
            return Err(n.bad_value(expected));
        };
    }
    if let Some(n) = m.get("resume_timeout") {
        let secs = n.integer(1..=u64::from(u32::MAX), "a positive number of seconds")?;
        config.resume_timeout = Duration::from_secs(secs);
    }
    Ok(config)
}

/// `[modules.mod_fast_auth_token]`, MongooseIM's options.
fn fast_auth_token(node: &Node) -> Result<FastConfig> {
    let m = node.table(&["backend", "validity_period"])?;
    if let Some(n) = m.get("backend") {
        n.one_of(&["rdbms"])?;
    }
    let mut config = FastConfig::default();
    if let Some(v) = m.get("validity_period") {
        let v = v.table(&["access", "rotate_before_expire"])?;
        if let Some(n) = v.get("access") {
            config.access = period(&n)?;
        }
        if let Some(n) = v.get("rotate_before_expire") {
            config.rotate_before_expire = period(&n)?;
        }
    }
    Ok(config)
}

/// MongooseIM's `{value = N, unit = "days" | "hours" | "minutes" | "seconds"}`.
fn period(node: &Node) -> Result<Duration> {
    let t = node.table(&["value", "unit"])?;
    let value = t
        .required("value", "a non-negative integer")?
        .integer(0..=u64::from(u32::MAX), "a non-negative integer")?;
    let unit = match t
        .required("unit", "\"days\", \"hours\", \"minutes\" or \"seconds\"")?
        .one_of(&["days", "hours", "minutes", "seconds"])?
    {
        "days" => 86_400,
        "hours" => 3600,
        "minutes" => 60,
        _ => 1,
    };
    Ok(Duration::from_secs(value * unit))
}
