//! Command line.

use clap::{Parser, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mechanism {
    #[value(name = "scram-sha-1")]
    ScramSha1,
    #[value(name = "scram-sha-256")]
    ScramSha256,
    #[value(name = "plain")]
    Plain,
}

impl Mechanism {
    pub fn sasl_name(self) -> &'static str {
        match self {
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::Plain => "PLAIN",
        }
    }
}

/// How a session logs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Auth {
    /// SASL (RFC 6120 §6) with --mechanism, stream restart, resource binding (RFC 6120 §7).
    Sasl1,
    /// SASL2 (XEP-0388) with --mechanism and Bind 2 (XEP-0386) inline: no stream restart,
    /// no separate bind.
    Sasl2,
    /// FAST (XEP-0484): a session's first login is SASL2 with --mechanism and Bind 2 and asks
    /// for a token; every later login (reconnect scenario) is SASL2 with the token
    /// (HT-SHA-256-NONE) and Bind 2, taking a rotated token when the server sends one.
    Fast,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TlsMode {
    /// Plain TCP, then STARTTLS (RFC 6120), the usual port 5222 setup.
    Starttls,
    /// TLS from the first byte (XEP-0368 direct TLS, usually port 5223).
    Direct,
    /// No TLS at all (only for servers configured to allow it).
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Connect all sessions, hold them for --hold seconds, report.
    Idle,
    /// Pair sessions 2k and 2k+1; they message each other at --msg-rate for --duration.
    Chat,
    /// Sessions disconnect and reconnect repeatedly for --duration.
    Reconnect,
    /// Each session gets --roster-size contacts (mutual subscriptions, set up through the
    /// protocol); then all send presence updates at --presence-rate for --duration.
    Presence,
}

/// XMPP client load generator: many real c2s sessions (STARTTLS, SASL, bind, presence)
/// against one server address, with setup, chat and reconnect scenarios and a report.
#[derive(Parser, Debug, Clone)]
#[command(name = "meerkat-loadgen", version)]
pub struct Args {
    /// Server address to connect to (IP:PORT or HOST:PORT; resolved once, first address used).
    #[arg(long, default_value = "127.0.0.1:5222")]
    pub addr: String,
    /// XMPP domain: the stream's `to`, the users' domain and the TLS server name.
    #[arg(long, default_value = "localhost")]
    pub domain: String,
    /// Number of sessions (users {prefix}{i} for i in first-index..first-index+sessions).
    #[arg(short = 'n', long, default_value_t = 100)]
    pub sessions: usize,
    /// User name prefix.
    #[arg(long, default_value = "user")]
    pub prefix: String,
    /// Index of the first user.
    #[arg(long, default_value_t = 0)]
    pub first_index: u64,
    /// Password of every user.
    #[arg(long, default_value = "password")]
    pub password: String,
    /// Resource to bind.
    #[arg(long, default_value = "loadgen")]
    pub resource: String,
    /// Register each user in-band (XEP-0077) before authenticating; `conflict` counts as
    /// already registered.
    #[arg(long)]
    pub register: bool,
    /// SASL mechanism (with --auth fast: of each session's first login; later ones use the
    /// FAST token).
    #[arg(long, value_enum, ignore_case = true, default_value_t = Mechanism::ScramSha1)]
    pub mechanism: Mechanism,
    /// Login path: sasl1 (RFC 6120 SASL, restart, bind), sasl2 (XEP-0388 with Bind 2), or
    /// fast (sasl2 first, then XEP-0484 FAST tokens on every reconnect).
    #[arg(long, value_enum, default_value_t = Auth::Sasl1)]
    pub auth: Auth,
    /// How TLS is set up.
    #[arg(long, value_enum, default_value_t = TlsMode::Starttls)]
    pub tls: TlsMode,
    /// Accept any server certificate (the default unless --ca-file is given): for loopback
    /// benchmarks against self-signed certificates only.
    #[arg(long, conflicts_with = "ca_file")]
    pub insecure: bool,
    /// Verify the server certificate against the CA certificates in this PEM file.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// TLS server name (SNI and verification); defaults to --domain.
    #[arg(long)]
    pub tls_server_name: Option<String>,
    /// Let sessions resume TLS sessions from a shared cache (off: each simulated client does a
    /// full handshake, as distinct devices would).
    #[arg(long)]
    pub tls_resumption: bool,
    /// Fetch the (empty) roster after binding.
    #[arg(long)]
    pub roster: bool,
    /// Maximum number of session setups in flight at once.
    #[arg(long, default_value_t = 100)]
    pub concurrency: usize,
    /// Maximum session setups started per second (default: as fast as --concurrency allows).
    #[arg(long)]
    pub rate: Option<f64>,
    /// What to do once sessions are set up.
    #[arg(long, value_enum, default_value_t = Scenario::Idle)]
    pub scenario: Scenario,
    /// idle: seconds to hold all sessions after setup.
    #[arg(long, default_value_t = 10.0)]
    pub hold: f64,
    /// chat: total messages per second across all pairs.
    #[arg(long, default_value_t = 100.0)]
    pub msg_rate: f64,
    /// presence: contacts per session, an even number below --sessions: session i's
    /// contacts are the k/2 sessions on either side of it in a ring of the indices.
    #[arg(long, default_value_t = 10)]
    pub roster_size: usize,
    /// presence: total presence updates per second across all sessions.
    #[arg(long, default_value_t = 100.0)]
    pub presence_rate: f64,
    /// presence: seconds the roster setup may take before the storm starts anyway.
    #[arg(long, default_value_t = 120.0)]
    pub roster_timeout: f64,
    /// chat, presence and reconnect: seconds the scenario runs.
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    /// chat and presence: seconds to wait for stanzas in flight after sending stops.
    #[arg(long, default_value_t = 5.0)]
    pub grace: f64,
    /// reconnect: mean seconds a session stays connected between reconnects (each hold is
    /// drawn uniformly from 0.5x to 1.5x this).
    #[arg(long, default_value_t = 1.0)]
    pub reconnect_hold: f64,
    /// Seconds one session setup may take before it counts as failed.
    #[arg(long, default_value_t = 30.0)]
    pub setup_timeout: f64,
    /// Overall limit in seconds: the run stops and reports whatever it has by then.
    #[arg(long, default_value_t = 600.0)]
    pub timeout: f64,
    /// Server process to measure (RSS and CPU from /proc) before and after setup and after
    /// the scenario.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Print the report as JSON on stdout (progress still goes to stderr unless --quiet).
    #[arg(long)]
    pub json: bool,
    /// Worker threads (default: one per CPU).
    #[arg(long)]
    pub threads: Option<usize>,
    /// No progress lines on stderr.
    #[arg(short, long)]
    pub quiet: bool,
    /// Entries in the client's SCRAM salted-password cache (per password+salt+iterations;
    /// helps reconnects of the same user). 0 disables it.
    #[arg(long, default_value_t = 100_000)]
    pub scram_cache: usize,
    /// Largest stanza accepted from the server, in KiB.
    #[arg(long, default_value_t = 256)]
    pub max_stanza_kib: usize,
}

fn check_secs(name: &str, v: f64, allow_zero: bool) -> Result<(), String> {
    if !v.is_finite() || v < 0.0 || (!allow_zero && v == 0.0) || v > 30.0 * 86400.0 {
        return Err(format!(
            "--{name} must be a {} number of seconds",
            if allow_zero { "non-negative" } else { "positive" }
        ));
    }
    Ok(())
}

impl Args {
    pub fn validate(&self) -> Result<(), String> {
        if self.sessions == 0 {
            return Err("--sessions must be at least 1".into());
        }
        if self.concurrency == 0 {
            return Err("--concurrency must be at least 1".into());
        }
        if let Some(r) = self.rate {
            if !r.is_finite() || r <= 0.0 {
                return Err("--rate must be a positive number of sessions per second".into());
            }
        }
        if !self.msg_rate.is_finite() || self.msg_rate < 0.0 {
            return Err("--msg-rate must be a non-negative number of messages per second".into());
        }
        if !self.presence_rate.is_finite() || self.presence_rate < 0.0 {
            return Err("--presence-rate must be a non-negative number of updates per second".into());
        }
        if self.scenario == Scenario::Presence {
            crate::presence::check_roster_size(self.roster_size, self.sessions)?;
        }
        check_secs("roster-timeout", self.roster_timeout, true)?;
        check_secs("hold", self.hold, true)?;
        check_secs("duration", self.duration, true)?;
        check_secs("grace", self.grace, true)?;
        check_secs("reconnect-hold", self.reconnect_hold, true)?;
        check_secs("setup-timeout", self.setup_timeout, false)?;
        check_secs("timeout", self.timeout, false)?;
        if self.auth == Auth::Fast && self.tls == TlsMode::None {
            return Err(
                "--auth fast needs TLS: servers offer FAST only on encrypted streams (XEP-0484 §6)".into(),
            );
        }
        if self.threads == Some(0) {
            return Err("--threads must be at least 1".into());
        }
        if self.max_stanza_kib == 0 {
            return Err("--max-stanza-kib must be at least 1".into());
        }
        if self.domain.is_empty() || self.domain.contains(['@', '/', '\'', '"', '<', '>', '&']) {
            return Err("--domain must be a plain domain name".into());
        }
        Ok(())
    }

    pub fn username(&self, idx: usize) -> String {
        format!("{}{}", self.prefix, self.first_index + idx as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_defaults_and_values() {
        let a = Args::try_parse_from(["meerkat-loadgen"]).unwrap();
        a.validate().unwrap();
        assert_eq!(a.addr, "127.0.0.1:5222");
        assert_eq!(a.mechanism, Mechanism::ScramSha1);
        assert_eq!(a.tls, TlsMode::Starttls);
        assert_eq!(a.auth, Auth::Sasl1);
        assert_eq!(a.scenario, Scenario::Idle);
        assert_eq!(a.timeout, 600.0);
        assert_eq!(a.username(3), "user3");
        let a = Args::try_parse_from([
            "meerkat-loadgen",
            "--mechanism",
            "SCRAM-SHA-256",
            "--scenario",
            "chat",
            "-n",
            "10",
            "--first-index",
            "1",
        ])
        .unwrap();
        assert_eq!(a.mechanism, Mechanism::ScramSha256);
        assert_eq!(a.scenario, Scenario::Chat);
        assert_eq!(a.username(0), "user1");
        assert!(Args::try_parse_from(["x", "--insecure", "--ca-file", "f"]).is_err());
        let bad = Args::try_parse_from(["x", "--rate", "0"]).unwrap();
        assert!(bad.validate().is_err());
        let p =
            Args::try_parse_from(["x", "--scenario", "presence", "-n", "20", "--roster-size", "6"]).unwrap();
        p.validate().unwrap();
        assert_eq!(
            (p.scenario, p.roster_size, p.presence_rate),
            (Scenario::Presence, 6, 100.0)
        );
        let odd =
            Args::try_parse_from(["x", "--scenario", "presence", "-n", "20", "--roster-size", "5"]).unwrap();
        assert!(odd.validate().unwrap_err().contains("even"));
        let big = Args::try_parse_from(["x", "--scenario", "presence", "-n", "10"]).unwrap();
        assert!(
            big.validate().is_err(),
            "the default 10 contacts need more than 10 sessions"
        );
        let other = Args::try_parse_from(["x", "--scenario", "chat", "-n", "10"]).unwrap();
        other.validate().unwrap();
        let fast = Args::try_parse_from(["x", "--auth", "fast", "--scenario", "reconnect"]).unwrap();
        fast.validate().unwrap();
        assert_eq!(fast.auth, Auth::Fast);
        let plain = Args::try_parse_from(["x", "--auth", "fast", "--tls", "none"]).unwrap();
        assert!(plain.validate().unwrap_err().contains("needs TLS"));
    }
}
