//! The server's configuration: one TOML file in the shape of MongooseIM 6.4's
//! `mongooseim.toml`, so that an operator who knows MongooseIM finds their way.
//!
//! Without `--config`, the embedded default ([`DEFAULT_CONFIG`]) is read by the same
//! code as a file, so it is validated the same way. A complete, commented example is
//! `server/examples/meerkat.toml`.
//!
//! Anything the server does not support is an error, never silently ignored: an
//! unknown option, a value of the wrong type, a missing required option, or a file
//! that cannot be read stops the start with a message naming the file, the line, the
//! option path and what was expected:
//!
//! ```text
//! config error in /etc/meerkat.toml:9: listen.c2s[0].tls.mode: expected one of "starttls", "starttls_required", "tls", got the string "foo"
//! ```
//!
//! Relative paths in the config (`tls.certfile`, `database`, ...) are relative to the
//! working directory of the server, as in MongooseIM.
//!
//! # Reference
//!
//! ## `[general]`
//!
//! | option | value | default |
//! |---|---|---|
//! | `hosts` | non-empty array of domain names (XMPP domains served) | required |
//! | `runtime` | `"tokio"`, `"smol"` or `"glommio"` (io_uring, Linux only); the `--runtime` flag overrides it | `"tokio"` |
//! | `threads` | integer 1..=1024: worker threads (tokio, smol) or executors, one per core (glommio); also the number of hub shards | the number of CPUs |
//! | `loglevel` | `"none"`, `"emergency"`, `"alert"`, `"critical"`, `"error"`, `"warning"`, `"notice"`, `"info"`, `"debug"`, `"all"` | `"info"` (the `RUST_LOG` environment variable overrides it) |
//! | `log_format` | `"text"` or `"json"` (one object per line; Meerkat's own option) | `"text"` |
//!
//! ## `[[listen.c2s]]` (one table per client listener)
//!
//! | option | value | default |
//! |---|---|---|
//! | `port` | integer 1..=65535 | required |
//! | `ip_address` | IPv4 or IPv6 address | `"0.0.0.0"` |
//! | `shaper` | name of a `[shaper.NAME]` section, or `"none"` | no shaper |
//! | `max_stanza_size` | positive integer (bytes) or `"infinity"` | `65536` |
//! | `tls.mode` | `"starttls"`, `"starttls_required"` or `"tls"` (direct TLS, XEP-0368) | `"starttls"` |
//! | `tls.certfile` | PEM certificate chain, end-entity first | self-signed, see below |
//! | `tls.keyfile` | PEM private key (required with `certfile`) | self-signed, see below |
//! | `tls.session_tickets` | `"stateless"` or `"stateful"`: TLS 1.3 resumption tickets | none |
//! | `tls.early_data` | boolean: accept TLS 1.3 0-RTT data carrying a FAST authentication (needs `session_tickets`, direct TLS) | `false` |
//!
//! | `max_connections` | positive integer or `"infinity"`: connections open at once on this listener (MongooseIM's option) | `"infinity"` |
//! | `max_connections_per_ip` | positive integer or `"infinity"`: connections open at once from one source address | `"infinity"` |
//! | `backlog` | integer 1..=65535: connections the kernel queues before they are accepted (MongooseIM's option) | `1024` |
//! | `auth_timeout` | ms or `"infinity"`: time to authenticate (and, for clients, bind); then `connection-timeout` | `30_000` |
//! | `max_send_queue_size` | positive integer (bytes) or `"infinity"`: output waiting for a peer that does not read; past it `policy-violation` and close | `1_048_576` |
//!
//! The last five are on every listener type (`listen.s2s`, `listen.component` too).
//! A connection past `max_connections` gets the stream error `resource-constraint`,
//! past `max_connections_per_ip` `policy-violation`, each with a text, in a stream
//! opened for it, then the connection closes; on a direct-TLS listener (`tls.mode =
//! "tls"`) it is closed without a word, as nothing can be said before a TLS
//! handshake and a handshake for a refused connection would spend what the limit
//! protects. Refusals are logged (a warning at most once a second per listener).
//! The count is per listener and holds across threads and executors. MongooseIM's
//! `listen.c2s.state_timeout` bounds each negotiation step; Meerkat's
//! `auth_timeout` bounds the whole of it, whatever the number of steps.
//!
//! Without a `tls` table the listener has no TLS at all (and never offers PLAIN).
//! With a `tls` table but no `certfile`/`keyfile`, the server uses a self-signed
//! certificate for `localhost`, the configured hosts and `127.0.0.1`, generated on the
//! first start into `meerkat-data/cert.pem` and `meerkat-data/key.pem` (relative to the
//! working directory) and reused afterwards; delete both files to get a new one.
//!
//! ## `[[listen.http]]` (one table per HTTP listener)
//!
//! | option | value | default |
//! |---|---|---|
//! | `port` | integer 1..=65535 | required |
//! | `ip_address` | IPv4 or IPv6 address | `"0.0.0.0"` |
//! | `tls.certfile`, `tls.keyfile` | PEM files (both, or neither for the self-signed pair): HTTPS | no `tls` table: plain HTTP |
//! | `handlers.mongoose_prometheus_handler` | array of tables with `host` (`"_"` for any) and `path`: the metrics, Prometheus text format | none |
//! | `handlers.mongoose_websocket_handler` | the same, plus `timeout` (ms or `"infinity"`, default `"infinity"`), `ping_rate` (ms, default none), `max_stanza_size` (bytes or `"infinity"`, default 65536): XMPP over WebSocket (RFC 7395) | none |
//! | `handlers.mongoose_bosh_handler` | `host` and `path`: XMPP over BOSH (XEP-0206), sessions as `[modules.mod_bosh]` says | none |
//!
//! | `max_connections`, `max_connections_per_ip`, `backlog`, `max_send_queue_size` | as for `listen.c2s`; a connection past a limit gets `503 Service Unavailable` (plain HTTP) or is closed (HTTPS) | as for `listen.c2s` |
//! | `auth_timeout` | ms or `"infinity"`: for the WebSocket and BOSH streams | as for `listen.c2s` |
//!
//! Every HTTP listener also answers `GET /health` (unless a handler has that path):
//! `200 ok`, or `503 stopping` during shutdown. WebSocket and BOSH streams get the
//! server's SASL mechanisms and modules; PLAIN only over HTTPS.
//!
//! ## `[[listen.s2s]]` (one table per server-to-server listener)
//!
//! `port`, `ip_address`, `shaper` and `max_stanza_size` as for `listen.c2s`, and:
//!
//! | option | value | default |
//! |---|---|---|
//! | `tls.mode` | `"starttls"`, `"starttls_required"` or `"tls"` (XEP-0368) | `"starttls"` |
//! | `tls.certfile`, `tls.keyfile` | as for `listen.c2s` | self-signed |
//! | `tls.cacertfile` | PEM CAs trusted beside the OS store | none |
//! | `tls.verify_mode` | `"peer"`: a peer whose client certificate verifies for its domain may use SASL EXTERNAL (XEP-0178), others dialback; `"none"`: dialback only | `"peer"` |
//!
//! ## `[[listen.component]]` (one table per XEP-0114 listener)
//!
//! `port`, `ip_address`, `shaper`, `max_stanza_size` and the `tls` table as for
//! `listen.c2s` (STARTTLS is offered to components opening a version 1.0 stream), and:
//!
//! | option | value | default |
//! |---|---|---|
//! | `password` | the handshake secret | required |
//! | `check_from` | boolean: stanzas must come from the component's domain | `true` |
//! | `hidden_components` | boolean: left out of the server's disco#items | `false` |
//! | `conflict_behaviour` | `"disconnect"` (refuse a second component for a domain) or `"kick_old"` | `"disconnect"` |
//!
//! ## `[s2s]` and `[s2s.outgoing]`
//!
//! | option | value | default |
//! |---|---|---|
//! | `default_policy` | `"allow"` or `"deny"` | `"allow"` |
//! | `host_policy` | array of `{host, policy}` | none |
//! | `shared` | the Server Dialback secret | random per start |
//! | `outgoing.address` | array of `{host, ip_address, port}`: static addresses, no DNS | none |
//! | `outgoing.port` | port when DNS has no SRV record | `5269` |
//! | `outgoing.ip_versions` | array of `4` and `6`, in order of preference | `[4, 6]` |
//! | `outgoing.connection_timeout` | ms or `"infinity"` | `10_000` |
//! | `outgoing.state_timeout` | ms per negotiation step, or `"infinity"` | `5000` |
//! | `outgoing.stream_timeout` | ms an idle stream stays open, or `"infinity"` | `600_000` |
//! | `outgoing.max_retry_delay` | s: the longest a failed domain waits before a retry | `300` |
//! | `outgoing.dns.timeout` | s per DNS attempt | `10` |
//! | `outgoing.dns.retries` | DNS attempts per query | `2` |
//! | `outgoing.shaper`, `outgoing.max_stanza_size`, `outgoing.max_send_queue_size` | as for listeners | |
//! | `outgoing.max_queued_stanzas` | positive integer: stanzas waiting per remote domain while its stream is set up; more bounce with `resource-constraint` (RFC 6120 §8.3.3.18) | `1000` |
//! | `outgoing.tls.*` | as for `listen.s2s`; `verify_mode = "peer"` refuses a server certificate that does not verify; the certificate is presented for SASL EXTERNAL | no TLS |
//!
//! ## `[shaper.NAME]`
//!
//! | option | value | default |
//! |---|---|---|
//! | `max_rate` | positive integer, bytes per second | required |
//!
//! ## `[auth]`
//!
//! | option | value | default |
//! |---|---|---|
//! | `methods` | `["internal"]` or `["rdbms"]`; both mean the configured database | `["internal"]` |
//! | `backoff.after_failures` | positive integer, or `"infinity"` (no backoff): failed authentications (`not-authorized`) from one source address, on any connections, before it has to wait | `5` |
//! | `backoff.initial_delay` | ms: the wait after the `after_failures`-th failure, doubled with each further failure | `1000` |
//! | `backoff.max_delay` | ms: the longest wait; an address is forgotten this long after its last failure | `300_000` |
//! | `sasl_mechanisms` | non-empty array of `"scram_sha512_plus"`, `"scram_sha256_plus"`, `"scram_sha1_plus"`, `"scram_sha512"`, `"scram_sha256"`, `"scram_sha1"`, `"plain"`, offered in that order | all seven, in that order |
//!
//! An attempt made while its address waits is answered `temporary-auth-failure`
//! (RFC 6120 §6.5.12) without its credentials being checked; the connection's own
//! limit (three failures, then `policy-violation`) still applies. Counting is per
//! address, never per account (which would let anyone lock a user out).
//!
//! ## `[outgoing_pools.rdbms.default.connection]` (storage)
//!
//! MongooseIM's RDBMS pool section, with our `sqlite` driver.
//!
//! | option | value | default |
//! |---|---|---|
//! | `driver` | `"sqlite"` | required when the section is present |
//! | `database` | path of the SQLite database file (created if absent) | `"meerkat-data/meerkat.db"` |
//!
//! Without the section, storage is SQLite at `meerkat-data/meerkat.db`.
//!
//! ## `[modules.mod_NAME]`
//!
//! A module is on when its section is present (it may be empty).
//!
//! | module | options | effect |
//! |---|---|---|
//! | `mod_offline` | `max_messages`: non-negative integer, default 5000 (MongooseIM names an access rule, `access_max_user_messages`, whose value is this number; Meerkat takes the number, the same for every user) | XEP-0160 offline storage; past the limit per user, messages bounce with `service-unavailable` |
//! | `mod_register` | none | XEP-0077 in-band registration |
//! | `mod_version` | `os_info`: boolean, default false | XEP-0092 software version (with the OS when `os_info`) |
//! | `mod_roster`, `mod_disco`, `mod_ping` | none | always on in Meerkat; accepted so MongooseIM configs load |
//! | `mod_stream_management` | `buffer_max`: positive integer or `"infinity"`, default 100; `ack_freq`: positive integer or `"never"`, default 1; `resume_timeout`: seconds, default 600 | XEP-0198 stream management with resumption (also inline in SASL2 and Bind 2) |
//! | `mod_carbons` | none | XEP-0280 message carbons |
//! | `mod_csi` | `buffer_max`: non-negative integer, default 20 | XEP-0352: presence and chat states wait while the client is inactive |
//! | `mod_bosh` | `inactivity`, `max_wait`, `max_pause`: seconds, defaults 30, 60, 120; `server_acks`: `false` only; `backend`: accepted | XEP-0124 BOSH session limits |
//! | `mod_fast_auth_token` | `backend`: `"rdbms"`; `validity_period.access` and `validity_period.rotate_before_expire`: `{value = N, unit = "days" \| "hours" \| "minutes" \| "seconds"}`, defaults 3 days and 6 hours | XEP-0484 FAST tokens (HT-* mechanisms) with rotation |
//!
//! ## What else bounds memory
//!
//! - `mod_stream_management.buffer_max`: unacknowledged stanzas per session; past it
//!   `resource-constraint` and the stanzas are kept for the user (offline or
//!   resumption);
//! - `mod_csi.buffer_max`: stanzas held for an inactive client;
//! - `mod_offline.max_messages`: stored messages per user;
//! - `max_stanza_size`: one element's size, checked while parsing;
//! - `shaper`: the rate at which a connection's input is read, so the rate at which
//!   it can feed the hub.
//!
//! The channels into hub shards, into the federation router and into each
//! session's mailbox are unbounded queues (glommio's mesh between executors holds
//! 4096 messages per pair, then its senders wait). What they hold is bounded by
//! what produces it: every session reads at most at its shaper's rate and sends one
//! stanza at a time, and a session's mailbox is drained into its send queue as fast
//! as it fills (a peer that does not read is closed at `max_send_queue_size`), so a
//! backlog only builds when a hub shard is slower than its whole input.

mod error;
mod federation;
mod http;
mod node;
mod parse;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use meerkat_engine::sasl::backoff::BackoffConfig;
use meerkat_engine::sasl::Mechanism;
use meerkat_engine::stream::c2s::{CsiConfig, FastConfig, SmConfig, TlsMode};
use meerkat_runtime_common::ConnectionLimits;

pub use error::{ConfigError, ConfigOrigin, Problem};

/// The config used without `--config`: localhost, STARTTLS on 5222 and direct TLS on
/// 5223 (loopback only), a self-signed certificate and SQLite under `meerkat-data/`.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// The directory, relative to the working directory, that holds the default database
/// and the self-signed certificate.
pub const DATA_DIR: &str = "meerkat-data";

/// `max_stanza_size` when absent.
pub const DEFAULT_MAX_STANZA_SIZE: usize = 65536;

/// A listener's `auth_timeout` (ms) when absent.
pub const DEFAULT_AUTH_TIMEOUT_MS: u64 = 30_000;

/// `mod_offline.max_messages` when absent.
pub const DEFAULT_OFFLINE_LIMIT: usize = 5000;

/// A validated config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where it was read from.
    pub origin: ConfigOrigin,
    /// `general.hosts`, prepared (lower-case).
    pub hosts: Vec<String>,
    /// `general.loglevel`.
    pub loglevel: Option<LogLevel>,
    /// `general.runtime`.
    pub runtime: RuntimeKind,
    /// `general.threads`; `None`: one per CPU.
    pub threads: Option<usize>,
    /// `general.log_format`.
    pub log_format: LogFormat,
    /// `[[listen.c2s]]`, in file order.
    pub c2s: Vec<C2sListenerConfig>,
    /// `[[listen.http]]`, in file order.
    pub http: Vec<HttpListenerConfig>,
    /// `[auth]`.
    pub auth: AuthConfig,
    /// `[outgoing_pools.rdbms.default.connection]`.
    pub storage: StorageConfig,
    /// `[modules.*]`.
    pub modules: ModulesConfig,
    /// `[[listen.s2s]]`, in file order.
    pub s2s_listeners: Vec<S2sListenerConfig>,
    /// `[[listen.component]]`, in file order.
    pub components: Vec<ComponentListenerConfig>,
    /// `[s2s]`, when present.
    pub s2s: Option<FederationConfig>,
}

/// One `[[listen.s2s]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S2sListenerConfig {
    /// `ip_address` and `port`.
    pub addr: SocketAddr,
    /// `shaper`, resolved to its `max_rate`.
    pub shaper_max_rate: Option<u64>,
    /// `max_stanza_size` in bytes.
    pub max_stanza_size: usize,
    /// The `tls` table; `None`: no TLS.
    pub tls: Option<S2sTls>,
    /// `max_connections`, `max_connections_per_ip`, `backlog`,
    /// `max_send_queue_size`.
    pub limits: ConnectionLimits,
    /// `auth_timeout` in ms; `None`: infinity.
    pub auth_timeout_ms: Option<u64>,
}

/// The `tls` table of `[[listen.s2s]]` and `[s2s.outgoing]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S2sTls {
    /// `tls.mode`.
    pub mode: TlsMode,
    /// `tls.certfile` and `tls.keyfile`, or the self-signed pair.
    pub cert: CertSource,
    /// `tls.cacertfile`: trusted CAs added to the OS store.
    pub cacertfile: Option<PathBuf>,
    /// `tls.verify_mode`.
    pub verify_mode: meerkat_engine::stream::s2s::VerifyMode,
}

/// One `[[listen.component]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentListenerConfig {
    /// `ip_address` and `port`.
    pub addr: SocketAddr,
    /// `shaper`, resolved to its `max_rate`.
    pub shaper_max_rate: Option<u64>,
    /// `max_stanza_size` in bytes.
    pub max_stanza_size: usize,
    /// `password`.
    pub password: String,
    /// `check_from`.
    pub check_from: bool,
    /// `hidden_components`.
    pub hidden_components: bool,
    /// `conflict_behaviour`.
    pub conflict: meerkat_engine::stream::component::ConflictBehaviour,
    /// The `tls` table; `None`: no TLS.
    pub tls: Option<ListenerTls>,
    /// `max_connections`, `max_connections_per_ip`, `backlog`,
    /// `max_send_queue_size`.
    pub limits: ConnectionLimits,
    /// `auth_timeout` in ms; `None`: infinity.
    pub auth_timeout_ms: Option<u64>,
}

/// `[s2s]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederationConfig {
    /// `default_policy = "allow"`.
    pub default_allow: bool,
    /// `host_policy`: (host, allow).
    pub host_policy: Vec<(String, bool)>,
    /// `shared`: the dialback secret; `None`: random per start.
    pub shared: Option<String>,
    /// `[s2s.outgoing]`.
    pub outgoing: OutgoingConfig,
}

/// `[s2s.outgoing]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingConfig {
    /// `address`: (host, ip_address, port).
    pub address: Vec<(String, std::net::IpAddr, Option<u16>)>,
    /// `connection_timeout` in ms; `None`: infinity.
    pub connection_timeout_ms: Option<u64>,
    /// `dns.timeout` in seconds, per DNS attempt.
    pub dns_timeout: u64,
    /// `dns.retries`: DNS attempts per query.
    pub dns_retries: u32,
    /// `ip_versions`.
    pub ip_versions: Vec<meerkat_engine::stream::s2s_out::IpVersion>,
    /// `max_retry_delay` in seconds.
    pub max_retry_delay: u64,
    /// `max_stanza_size` in bytes.
    pub max_stanza_size: usize,
    /// `port`.
    pub port: u16,
    /// `shaper`, resolved.
    pub shaper_max_rate: Option<u64>,
    /// `state_timeout` in ms; `None`: infinity.
    pub state_timeout_ms: Option<u64>,
    /// `stream_timeout` in ms; `None`: infinity.
    pub stream_timeout_ms: Option<u64>,
    /// The `tls` table; `None`: outgoing streams stay in clear.
    pub tls: Option<S2sTls>,
    /// `max_queued_stanzas`: stanzas waiting per domain pair while its stream is
    /// set up.
    pub max_queued_stanzas: usize,
    /// `max_send_queue_size` in bytes; `None`: infinity.
    pub max_send_queue_size: Option<usize>,
}

/// The async runtime that drives the engine (`[general] runtime`, `--runtime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeKind {
    /// tokio's multi-threaded work-stealing runtime (the default).
    Tokio,
    /// smol: async-io's reactor with an executor thread per configured thread.
    Smol,
    /// glommio: io_uring, one executor per core, thread per core.
    Glommio,
}

impl RuntimeKind {
    /// The name used in the config and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            RuntimeKind::Tokio => "tokio",
            RuntimeKind::Smol => "smol",
            RuntimeKind::Glommio => "glommio",
        }
    }
}

/// How log lines are written (`[general] log_format`, Meerkat's own option).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    Text,
    /// One JSON object per line, with the connection's span fields.
    Json,
}

/// One `[[listen.http]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpListenerConfig {
    /// `ip_address` and `port`.
    pub addr: SocketAddr,
    /// `tls.certfile` and `tls.keyfile`; `None`: plain HTTP.
    pub tls: Option<CertSource>,
    /// The `[[listen.http.handlers.*]]`, in file order.
    pub handlers: Vec<meerkat_engine::http::Route>,
    /// `backlog`, `max_connections`, `max_connections_per_ip`, `max_send_queue_size`.
    pub limits: ConnectionLimits,
    /// `auth_timeout` (ms) of its WebSocket and BOSH streams; `None`: infinity.
    pub auth_timeout_ms: Option<u64>,
}

/// MongooseIM's (syslog's) log levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// No logging.
    None,
    /// Only the most severe.
    Emergency,
    /// Action needed now.
    Alert,
    /// Critical conditions.
    Critical,
    /// Errors.
    Error,
    /// Warnings.
    Warning,
    /// Normal but significant.
    Notice,
    /// Informational.
    Info,
    /// Debugging.
    Debug,
    /// Everything.
    All,
}

impl LogLevel {
    /// The `tracing` filter directive for this level (tracing has fewer levels; each
    /// syslog level maps to the nearest one that shows at least as much).
    pub fn filter_directive(self) -> &'static str {
        match self {
            LogLevel::None => "off",
            LogLevel::Emergency | LogLevel::Alert | LogLevel::Critical | LogLevel::Error => "error",
            LogLevel::Warning => "warn",
            LogLevel::Notice | LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::All => "trace",
        }
    }
}

/// One `[[listen.c2s]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct C2sListenerConfig {
    /// `ip_address` and `port`.
    pub addr: SocketAddr,
    /// `shaper`, resolved to its `max_rate` (bytes per second).
    pub shaper_max_rate: Option<u64>,
    /// `max_stanza_size` in bytes; `usize::MAX` for `"infinity"`.
    pub max_stanza_size: usize,
    /// The `tls` table; `None`: no TLS on this listener.
    pub tls: Option<ListenerTls>,
    /// `max_connections`, `max_connections_per_ip`, `backlog`,
    /// `max_send_queue_size`.
    pub limits: ConnectionLimits,
    /// `auth_timeout` in ms; `None`: infinity.
    pub auth_timeout_ms: Option<u64>,
}

/// A listener's `tls` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    /// `tls.mode` (never [`TlsMode::None`]).
    pub mode: TlsMode,
    /// Where the certificate comes from.
    pub cert: CertSource,
    /// `tls.early_data`: accept TLS 1.3 0-RTT data (only a FAST authentication).
    pub early_data: bool,
    /// `tls.session_tickets`: TLS 1.3 session resumption tickets; `None`: none.
    pub session_tickets: Option<SessionTickets>,
}

/// `tls.session_tickets`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionTickets {
    /// `"stateless"`: tickets the server can decrypt, no server-side store. With
    /// `early_data`, single-use tickets are issued instead (see `spec`): rustls
    /// accepts 0-RTT only on those (RFC 8446 §8.1 anti-replay).
    Stateless,
    /// `"stateful"`: single-use tickets kept in server memory.
    Stateful,
}

/// The certificate of a TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// `tls.certfile` and `tls.keyfile` (checked readable and usable when loaded).
    Files {
        /// PEM certificate chain.
        certfile: PathBuf,
        /// PEM private key.
        keyfile: PathBuf,
    },
    /// Neither given: the self-signed pair in [`DATA_DIR`].
    SelfSigned,
}

/// `[auth]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// `methods`.
    pub methods: Vec<AuthMethod>,
    /// `sasl_mechanisms`, in the order they are offered.
    pub sasl_mechanisms: Vec<Mechanism>,
    /// `backoff`: per-address backoff after failed authentications; `None`: off.
    pub backoff: Option<BackoffConfig>,
}

/// An `[auth] methods` entry; both read the configured database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// `"internal"`.
    Internal,
    /// `"rdbms"`.
    Rdbms,
}

/// Storage backend settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// The SQLite database file.
    pub database: PathBuf,
}

/// Which modules are on, with their options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModulesConfig {
    /// `mod_offline`.
    pub offline: Option<OfflineConfig>,
    /// `mod_register`.
    pub register: bool,
    /// `mod_version`.
    pub version: Option<VersionConfig>,
    /// `mod_roster` (informational: the roster is always served).
    pub roster: bool,
    /// `mod_disco` (informational: disco is always served).
    pub disco: bool,
    /// `mod_ping` (informational: pings are always answered).
    pub ping: bool,
    /// `mod_stream_management` (XEP-0198).
    pub stream_management: Option<SmConfig>,
    /// `mod_carbons` (XEP-0280).
    pub carbons: bool,
    /// `mod_csi` (XEP-0352).
    pub csi: Option<CsiConfig>,
    /// `mod_fast_auth_token` (XEP-0484).
    pub fast_auth_token: Option<FastConfig>,
    /// `mod_bosh` (XEP-0124 session settings).
    pub bosh: Option<meerkat_engine::http::BoshConfig>,
}

/// `[modules.mod_offline]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineConfig {
    /// Most messages kept per user.
    pub max_messages: usize,
}

/// `[modules.mod_version]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionConfig {
    /// Whether the OS is included in answers.
    pub os_info: bool,
}

impl Config {
    /// Reads and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let origin = ConfigOrigin::File(path.to_path_buf());
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            line: None,
            path: String::new(),
            problem: Problem::Unreadable(e.to_string()),
        })?;
        Self::parse(&text, origin)
    }

    /// The embedded default config.
    pub fn embedded_default() -> Result<Self, ConfigError> {
        Self::parse(DEFAULT_CONFIG, ConfigOrigin::Embedded)
    }

    /// Parses and validates config text read from `origin`.
    pub fn parse(text: &str, origin: ConfigOrigin) -> Result<Self, ConfigError> {
        parse::parse(text, origin)
    }

    /// Where the self-signed certificate lives.
    pub fn data_dir(&self) -> PathBuf {
        PathBuf::from(DATA_DIR)
    }
}
