//! The end-of-run report: a [`Summary`] of numbers, rendered for people or as JSON.

use crate::stats::Histogram;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

/// Percentiles of a latency histogram (recorded in microseconds), in milliseconds.
#[derive(Debug, Clone, Default)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    pub fn from_hist(h: &Histogram) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            count: h.count(),
            p50_ms: ms(h.quantile(0.50)),
            p90_ms: ms(h.quantile(0.90)),
            p99_ms: ms(h.quantile(0.99)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1000.0,
        }
    }

    fn json(&self) -> J {
        J::obj([
            ("count", J::Int(self.count)),
            ("p50_ms", J::num(self.p50_ms)),
            ("p90_ms", J::num(self.p90_ms)),
            ("p99_ms", J::num(self.p99_ms)),
            ("max_ms", J::num(self.max_ms)),
            ("mean_ms", J::num(self.mean_ms)),
        ])
    }

    fn human(&self) -> String {
        if self.count == 0 {
            return "n/a".into();
        }
        format!(
            "p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}  (mean {:.2}, n={})",
            self.p50_ms, self.p90_ms, self.p99_ms, self.max_ms, self.mean_ms, self.count
        )
    }
}

#[derive(Debug, Clone, Default)]
pub struct Sessions {
    pub requested: usize,
    pub established: u64,
    pub failed: u64,
    pub failure_reasons: BTreeMap<String, u64>,
    /// From the first connection attempt until the last session's setup finished.
    pub setup_secs: f64,
    pub setup_latency: Latency,
    pub dropped: u64,
    pub drop_reasons: BTreeMap<String, u64>,
}

/// What became of the tagged stanzas of a send phase (chat messages or presence updates).
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    /// Stanzas written (counted just before the write).
    pub sent: u64,
    /// Receipts they should cause (chat: one each; presence: one per online contact).
    pub expected: u64,
    /// Distinct receipts by an expected receiver.
    pub received: u64,
    pub duplicates: u64,
    pub reordered: u64,
    /// Copies that came back to their sender (presence broadcast to the own resources).
    pub own: u64,
    pub errors: u64,
    pub stale: u64,
    pub unexpected: u64,
    pub latency: Latency,
    /// Received over the time from the start of sending to the last receipt.
    pub delivered_per_sec: f64,
}

impl Delivery {
    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.received)
    }

    pub fn loss_percent(&self) -> Option<f64> {
        per(self.lost() as f64 * 100.0, self.expected as f64)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Chat {
    pub pairs: u64,
    pub msg_rate: f64,
    pub send_secs: f64,
    pub d: Delivery,
}

/// The roster setup before a presence storm.
#[derive(Debug, Clone, Default)]
pub struct RosterSetup {
    pub secs: f64,
    /// Established sessions that took part.
    pub sessions: u64,
    pub complete: u64,
    /// Complete at the first look (set up by an earlier run).
    pub already_complete: u64,
    pub subscribes_sent: u64,
    pub subscriptions_accepted: u64,
    pub items_removed: u64,
    pub errors: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Presence {
    pub roster_size: usize,
    pub rate: f64,
    pub roster: RosterSetup,
    pub send_secs: f64,
    pub d: Delivery,
}

#[derive(Debug, Clone, Default)]
pub struct Reconnect {
    pub secs: f64,
    pub succeeded: u64,
    pub failed: u64,
    pub failure_reasons: BTreeMap<String, u64>,
    pub latency: Latency,
}

/// Successful logins (initial setups and reconnects) by the path they took.
#[derive(Debug, Clone, Default)]
pub struct Logins {
    /// RFC 6120 SASL, restart, bind.
    pub sasl1: u64,
    /// SASL2 with the password mechanism, Bind 2.
    pub sasl2: u64,
    /// SASL2 with a FAST token (HT-SHA-256-NONE), Bind 2.
    pub fast: u64,
    /// FAST tokens received (asked for on a password login, or rotated).
    pub fast_tokens: u64,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ProcPoint {
    pub rss_kib: u64,
    pub cpu_ms: f64,
}

#[derive(Debug, Clone, Default)]
pub struct Server {
    pub pid: u32,
    pub before: Option<ProcPoint>,
    pub after_setup: Option<ProcPoint>,
    /// When the scenario's measured part starts, if not right after setup (the presence
    /// storm starts after the roster setup).
    pub before_scenario: Option<ProcPoint>,
    pub after_scenario: Option<ProcPoint>,
    pub scenario_secs: f64,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Client {
    pub threads: usize,
    pub cpu_ms_setup: f64,
    pub cpu_ms_total: f64,
    pub rss_kib: u64,
    pub pbkdf2_runs: u64,
    pub pbkdf2_cached: u64,
    pub iq_answered: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub addr: String,
    pub domain: String,
    pub scenario: String,
    pub mechanism: String,
    /// The login path asked for (`--auth`).
    pub auth: String,
    pub tls: String,
    /// "completed", "timed out" or "interrupted".
    pub outcome: String,
    pub elapsed_secs: f64,
    pub sessions: Sessions,
    pub logins: Logins,
    pub chat: Option<Chat>,
    pub presence: Option<Presence>,
    pub reconnect: Option<Reconnect>,
    pub server: Option<Server>,
    pub client: Client,
}

fn per(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

impl Summary {
    pub fn sessions_per_sec(&self) -> Option<f64> {
        per(self.sessions.established as f64, self.sessions.setup_secs)
    }

    /// (RSS after setup - RSS before) / established sessions, KiB.
    pub fn server_rss_per_session_kib(&self) -> Option<f64> {
        let s = self.server.as_ref()?;
        let (b, a) = (s.before?, s.after_setup?);
        per(
            a.rss_kib as f64 - b.rss_kib as f64,
            self.sessions.established as f64,
        )
    }

    /// (CPU after setup - CPU before) / established sessions, ms.
    pub fn server_cpu_ms_per_setup(&self) -> Option<f64> {
        let s = self.server.as_ref()?;
        let (b, a) = (s.before?, s.after_setup?);
        per(a.cpu_ms - b.cpu_ms, self.sessions.established as f64)
    }

    /// Server CPU during the scenario phase (for presence: the storm, after the roster
    /// setup), ms.
    pub fn server_cpu_ms_scenario(&self) -> Option<f64> {
        let s = self.server.as_ref()?;
        let from = if self.presence.is_some() {
            s.before_scenario?
        } else {
            s.after_setup?
        };
        Some(s.after_scenario?.cpu_ms - from.cpu_ms)
    }

    /// True when every requested session came up, none dropped, and no message was lost,
    /// duplicated or bounced, and the run finished in time.
    pub fn clean(&self) -> bool {
        let s = &self.sessions;
        let delivered = |d: &Delivery| d.lost() == 0 && d.duplicates == 0 && d.errors == 0;
        let chat_ok = self.chat.as_ref().is_none_or(|c| delivered(&c.d));
        let presence_ok = self.presence.as_ref().is_none_or(|p| {
            delivered(&p.d) && p.roster.complete == p.roster.sessions && p.roster.errors == 0
        });
        let rc_ok = self.reconnect.as_ref().is_none_or(|r| r.failed == 0);
        self.outcome == "completed"
            && s.established == s.requested as u64
            && s.failed == 0
            && s.dropped == 0
            && chat_ok
            && presence_ok
            && rc_ok
    }

    pub fn to_json(&self) -> String {
        let s = &self.sessions;
        let mut top = vec![
            ("tool", J::str("meerkat-loadgen")),
            ("addr", J::str(&self.addr)),
            ("domain", J::str(&self.domain)),
            ("scenario", J::str(&self.scenario)),
            ("mechanism", J::str(&self.mechanism)),
            ("auth", J::str(&self.auth)),
            ("tls", J::str(&self.tls)),
            ("outcome", J::str(&self.outcome)),
            ("clean", J::Bool(self.clean())),
            ("elapsed_secs", J::num(self.elapsed_secs)),
            (
                "sessions",
                J::obj([
                    ("requested", J::Int(s.requested as u64)),
                    ("established", J::Int(s.established)),
                    ("failed", J::Int(s.failed)),
                    ("failure_reasons", J::counts(&s.failure_reasons)),
                    ("setup_secs", J::num(s.setup_secs)),
                    ("sessions_per_sec", J::opt(self.sessions_per_sec())),
                    ("setup_latency", s.setup_latency.json()),
                    ("dropped", J::Int(s.dropped)),
                    ("drop_reasons", J::counts(&s.drop_reasons)),
                ]),
            ),
            (
                "logins",
                J::obj([
                    ("sasl1", J::Int(self.logins.sasl1)),
                    ("sasl2", J::Int(self.logins.sasl2)),
                    ("fast", J::Int(self.logins.fast)),
                    ("fast_tokens", J::Int(self.logins.fast_tokens)),
                ]),
            ),
        ];
        if let Some(c) = &self.chat {
            let d = &c.d;
            top.push((
                "chat",
                J::obj([
                    ("pairs", J::Int(c.pairs)),
                    ("msg_rate", J::num(c.msg_rate)),
                    ("send_secs", J::num(c.send_secs)),
                    ("sent", J::Int(d.sent)),
                    ("received", J::Int(d.received)),
                    ("lost", J::Int(d.lost())),
                    ("duplicates", J::Int(d.duplicates)),
                    ("reordered", J::Int(d.reordered)),
                    ("errors", J::Int(d.errors)),
                    ("stale", J::Int(d.stale)),
                    ("unexpected", J::Int(d.unexpected)),
                    ("latency", d.latency.json()),
                    ("delivered_per_sec", J::num(d.delivered_per_sec)),
                ]),
            ));
        }
        if let Some(p) = &self.presence {
            let (d, r) = (&p.d, &p.roster);
            top.push((
                "presence",
                J::obj([
                    ("roster_size", J::Int(p.roster_size as u64)),
                    ("rate", J::num(p.rate)),
                    (
                        "roster_setup",
                        J::obj([
                            ("secs", J::num(r.secs)),
                            ("sessions", J::Int(r.sessions)),
                            ("complete", J::Int(r.complete)),
                            ("incomplete", J::Int(r.sessions.saturating_sub(r.complete))),
                            ("already_complete", J::Int(r.already_complete)),
                            ("subscribes_sent", J::Int(r.subscribes_sent)),
                            ("subscriptions_accepted", J::Int(r.subscriptions_accepted)),
                            ("items_removed", J::Int(r.items_removed)),
                            ("errors", J::Int(r.errors)),
                        ]),
                    ),
                    ("send_secs", J::num(p.send_secs)),
                    ("updates_sent", J::Int(d.sent)),
                    ("notifications_expected", J::Int(d.expected)),
                    ("notifications_received", J::Int(d.received)),
                    ("lost", J::Int(d.lost())),
                    ("loss_percent", J::opt(d.loss_percent())),
                    ("duplicates", J::Int(d.duplicates)),
                    ("reordered", J::Int(d.reordered)),
                    ("own_echoes", J::Int(d.own)),
                    ("errors", J::Int(d.errors)),
                    ("stale", J::Int(d.stale)),
                    ("unexpected", J::Int(d.unexpected)),
                    ("latency", d.latency.json()),
                    ("delivered_per_sec", J::num(d.delivered_per_sec)),
                ]),
            ));
        }
        if let Some(r) = &self.reconnect {
            top.push((
                "reconnect",
                J::obj([
                    ("secs", J::num(r.secs)),
                    ("succeeded", J::Int(r.succeeded)),
                    ("failed", J::Int(r.failed)),
                    ("failure_reasons", J::counts(&r.failure_reasons)),
                    ("per_sec", J::opt(per(r.succeeded as f64, r.secs))),
                    ("latency", r.latency.json()),
                ]),
            ));
        }
        if let Some(sv) = &self.server {
            let point = |p: Option<ProcPoint>| match p {
                Some(p) => J::obj([("rss_kib", J::Int(p.rss_kib)), ("cpu_ms", J::num(p.cpu_ms))]),
                None => J::Null,
            };
            let mut o = vec![
                ("pid", J::Int(sv.pid as u64)),
                ("before", point(sv.before)),
                ("after_setup", point(sv.after_setup)),
                ("before_scenario", point(sv.before_scenario)),
                ("after_scenario", point(sv.after_scenario)),
                ("rss_per_session_kib", J::opt(self.server_rss_per_session_kib())),
                ("cpu_ms_per_session_setup", J::opt(self.server_cpu_ms_per_setup())),
                ("cpu_ms_scenario", J::opt(self.server_cpu_ms_scenario())),
                ("scenario_secs", J::num(sv.scenario_secs)),
                (
                    "cpu_percent_scenario",
                    J::opt(
                        self.server_cpu_ms_scenario()
                            .and_then(|c| per(c / 10.0, sv.scenario_secs)),
                    ),
                ),
            ];
            if let Some(c) = &self.chat {
                o.push((
                    "cpu_ms_per_1000_messages",
                    J::opt(
                        self.server_cpu_ms_scenario()
                            .and_then(|x| per(x * 1000.0, c.d.received as f64)),
                    ),
                ));
            }
            if let Some(p) = &self.presence {
                o.push((
                    "cpu_ms_per_1000_notifications",
                    J::opt(
                        self.server_cpu_ms_scenario()
                            .and_then(|x| per(x * 1000.0, p.d.received as f64)),
                    ),
                ));
            }
            if let Some(r) = &self.reconnect {
                o.push((
                    "cpu_ms_per_reconnect",
                    J::opt(
                        self.server_cpu_ms_scenario()
                            .and_then(|x| per(x, r.succeeded as f64)),
                    ),
                ));
            }
            o.push(("error", sv.error.as_deref().map_or(J::Null, J::str)));
            top.push(("server", J::obj(o)));
        }
        let c = &self.client;
        top.push((
            "client",
            J::obj([
                ("threads", J::Int(c.threads as u64)),
                ("cpu_ms_total", J::num(c.cpu_ms_total)),
                ("cpu_ms_setup", J::num(c.cpu_ms_setup)),
                (
                    "cpu_ms_per_session_setup",
                    J::opt(per(c.cpu_ms_setup, s.established as f64)),
                ),
                ("rss_kib", J::Int(c.rss_kib)),
                ("pbkdf2_runs", J::Int(c.pbkdf2_runs)),
                ("pbkdf2_cached", J::Int(c.pbkdf2_cached)),
                ("iq_answered", J::Int(c.iq_answered)),
            ]),
        ));
        J::obj(top).to_string()
    }

    pub fn to_human(&self) -> String {
        let mut o = String::new();
        let s = &self.sessions;
        let f2 = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2}"));
        let _ = writeln!(
            o,
            "meerkat-loadgen: {} scenario, {} sessions against {} (domain {}, {}, auth {}, tls {})",
            self.scenario, s.requested, self.addr, self.domain, self.mechanism, self.auth, self.tls
        );
        let _ = writeln!(
            o,
            "  outcome               {} after {:.1} s",
            self.outcome, self.elapsed_secs
        );
        let _ = writeln!(o, "Sessions");
        let _ = writeln!(o, "  established           {} of {}", s.established, s.requested);
        let _ = writeln!(o, "  failed                {}", s.failed);
        for (r, n) in &s.failure_reasons {
            let _ = writeln!(o, "    {n:>8}  {r}");
        }
        let _ = writeln!(
            o,
            "  setup time            {:.3} s  ({} sessions/s)",
            s.setup_secs,
            f2(self.sessions_per_sec())
        );
        let _ = writeln!(o, "  setup latency ms      {}", s.setup_latency.human());
        let _ = writeln!(o, "  dropped later         {}", s.dropped);
        for (r, n) in &s.drop_reasons {
            let _ = writeln!(o, "    {n:>8}  {r}");
        }
        let l = &self.logins;
        let _ = writeln!(
            o,
            "  logins by path        sasl1 {}, sasl2 {}, fast {} ({} FAST tokens received)",
            l.sasl1, l.sasl2, l.fast, l.fast_tokens
        );
        let delivery = |o: &mut String, d: &Delivery, unit: &str| {
            let _ = writeln!(
                o,
                "  lost                  {} ({}%)",
                d.lost(),
                f2(d.loss_percent())
            );
            let _ = writeln!(o, "  duplicates            {}", d.duplicates);
            let _ = writeln!(o, "  reordered             {}", d.reordered);
            let _ = writeln!(o, "  error bounces         {}", d.errors);
            if d.stale + d.unexpected > 0 {
                let _ = writeln!(o, "  stale / unexpected    {} / {}", d.stale, d.unexpected);
            }
            let _ = writeln!(o, "  latency ms            {}", d.latency.human());
            let _ = writeln!(o, "  delivered {unit:<11} {:.1}", d.delivered_per_sec);
        };
        if let Some(c) = &self.chat {
            let _ = writeln!(
                o,
                "Chat ({} pairs, {} msg/s for {:.1} s)",
                c.pairs, c.msg_rate, c.send_secs
            );
            let _ = writeln!(o, "  sent                  {}", c.d.sent);
            let _ = writeln!(o, "  received              {}", c.d.received);
            delivery(&mut o, &c.d, "msg/s");
        }
        if let Some(p) = &self.presence {
            let r = &p.roster;
            let _ = writeln!(
                o,
                "Presence ({} contacts per session, {} updates/s for {:.1} s)",
                p.roster_size, p.rate, p.send_secs
            );
            let _ = writeln!(
                o,
                "  roster setup          {} of {} sessions complete in {:.2} s ({} already were); \
                 {} subscribe sent, {} accepted, {} items removed, {} errors",
                r.complete,
                r.sessions,
                r.secs,
                r.already_complete,
                r.subscribes_sent,
                r.subscriptions_accepted,
                r.items_removed,
                r.errors
            );
            let _ = writeln!(o, "  updates sent          {}", p.d.sent);
            let _ = writeln!(
                o,
                "  notifications         {} received of {} expected (+{} to the sender itself)",
                p.d.received, p.d.expected, p.d.own
            );
            delivery(&mut o, &p.d, "notif/s");
        }
        if let Some(r) = &self.reconnect {
            let _ = writeln!(o, "Reconnect ({:.1} s)", r.secs);
            let _ = writeln!(
                o,
                "  succeeded             {}  ({} reconnects/s)",
                r.succeeded,
                f2(per(r.succeeded as f64, r.secs))
            );
            let _ = writeln!(o, "  failed                {}", r.failed);
            for (reason, n) in &r.failure_reasons {
                let _ = writeln!(o, "    {n:>8}  {reason}");
            }
            let _ = writeln!(o, "  setup latency ms      {}", r.latency.human());
        }
        if let Some(sv) = &self.server {
            let _ = writeln!(o, "Server (pid {})", sv.pid);
            if let Some(e) = &sv.error {
                let _ = writeln!(o, "  measurement error     {e}");
            }
            let p = |x: Option<ProcPoint>| {
                x.map_or("n/a".to_string(), |p| {
                    format!("RSS {} KiB, CPU {:.0} ms", p.rss_kib, p.cpu_ms)
                })
            };
            let _ = writeln!(o, "  before                {}", p(sv.before));
            let _ = writeln!(o, "  after setup           {}", p(sv.after_setup));
            if sv.before_scenario.is_some() {
                let _ = writeln!(o, "  before scenario       {}", p(sv.before_scenario));
            }
            let _ = writeln!(o, "  after scenario        {}", p(sv.after_scenario));
            let _ = writeln!(
                o,
                "  RSS per session       {} KiB",
                f2(self.server_rss_per_session_kib())
            );
            let _ = writeln!(
                o,
                "  CPU per session setup {} ms",
                f2(self.server_cpu_ms_per_setup())
            );
            if let Some(cpu) = self.server_cpu_ms_scenario() {
                let pct = per(cpu / 10.0, sv.scenario_secs);
                let _ = writeln!(
                    o,
                    "  CPU during scenario   {cpu:.0} ms ({}% of one core)",
                    f2(pct)
                );
                if let Some(c) = &self.chat {
                    let _ = writeln!(
                        o,
                        "  CPU per 1000 messages {} ms",
                        f2(per(cpu * 1000.0, c.d.received as f64))
                    );
                }
                if let Some(p) = &self.presence {
                    let _ = writeln!(
                        o,
                        "  CPU per 1000 notif.   {} ms",
                        f2(per(cpu * 1000.0, p.d.received as f64))
                    );
                }
                if let Some(r) = &self.reconnect {
                    let _ = writeln!(
                        o,
                        "  CPU per reconnect     {} ms",
                        f2(per(cpu, r.succeeded as f64))
                    );
                }
            }
        }
        let c = &self.client;
        let _ = writeln!(o, "Client ({} threads)", c.threads);
        let _ = writeln!(
            o,
            "  CPU                   {:.0} ms total, {:.0} ms during setup ({} ms per session)",
            c.cpu_ms_total,
            c.cpu_ms_setup,
            f2(per(c.cpu_ms_setup, s.established as f64))
        );
        let _ = writeln!(o, "  RSS                   {} KiB", c.rss_kib);
        let _ = writeln!(
            o,
            "  PBKDF2 runs / cached  {} / {}",
            c.pbkdf2_runs, c.pbkdf2_cached
        );
        o
    }
}

/// Minimal JSON value, enough for the report.
#[derive(Debug, Clone)]
pub enum J {
    Null,
    Bool(bool),
    Int(u64),
    Num(f64),
    Str(String),
    Obj(Vec<(String, J)>),
}

impl J {
    fn str(s: &str) -> J {
        J::Str(s.to_string())
    }

    fn num(v: f64) -> J {
        J::Num(v)
    }

    fn opt(v: Option<f64>) -> J {
        v.map_or(J::Null, J::Num)
    }

    fn obj<'a>(items: impl IntoIterator<Item = (&'a str, J)>) -> J {
        J::Obj(items.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    fn counts(m: &BTreeMap<String, u64>) -> J {
        J::Obj(m.iter().map(|(k, v)| (k.clone(), J::Int(*v))).collect())
    }
}

fn write_json_str(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if (c as u32) < 0x20 => write!(f, "\\u{:04x}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

impl fmt::Display for J {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            J::Null => f.write_str("null"),
            J::Bool(b) => write!(f, "{b}"),
            J::Int(i) => write!(f, "{i}"),
            J::Num(v) if v.is_finite() => {
                let r = (v * 1000.0).round() / 1000.0;
                if r == r.trunc() && r.abs() < 1e15 {
                    write!(f, "{}", r as i64)
                } else {
                    write!(f, "{r}")
                }
            }
            J::Num(_) => f.write_str("null"),
            J::Str(s) => write_json_str(f, s),
            J::Obj(items) => {
                f.write_char('{')?;
                for (i, (k, v)) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    write_json_str(f, k)?;
                    f.write_char(':')?;
                    write!(f, "{v}")?;
                }
                f.write_char('}')
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_rendering() {
        let j = J::obj([
            ("a", J::Int(1)),
            ("b", J::num(1.23456)),
            ("c", J::str("x\"y\n")),
            ("d", J::Null),
            ("e", J::num(f64::NAN)),
            ("f", J::num(2.0)),
        ]);
        assert_eq!(
            j.to_string(),
            r#"{"a":1,"b":1.235,"c":"x\"y\n","d":null,"e":null,"f":2}"#
        );
    }

    #[test]
    fn summary_numbers() {
        let mut s = Summary {
            outcome: "completed".into(),
            ..Default::default()
        };
        s.sessions.requested = 100;
        s.sessions.established = 100;
        s.sessions.setup_secs = 2.0;
        s.server = Some(Server {
            pid: 1,
            before: Some(ProcPoint {
                rss_kib: 10_000,
                cpu_ms: 100.0,
            }),
            after_setup: Some(ProcPoint {
                rss_kib: 12_000,
                cpu_ms: 300.0,
            }),
            before_scenario: None,
            after_scenario: Some(ProcPoint {
                rss_kib: 12_100,
                cpu_ms: 310.0,
            }),
            scenario_secs: 10.0,
            error: None,
        });
        assert_eq!(s.sessions_per_sec(), Some(50.0));
        assert_eq!(s.server_rss_per_session_kib(), Some(20.0));
        assert_eq!(s.server_cpu_ms_per_setup(), Some(2.0));
        assert_eq!(s.server_cpu_ms_scenario(), Some(10.0));
        assert!(s.clean());
        let j = s.to_json();
        assert!(j.contains(r#""rss_per_session_kib":20"#), "{j}");
        assert!(j.contains(r#""cpu_percent_scenario":0.1"#), "{j}");
        assert!(s.to_human().contains("RSS per session       20.00 KiB"));
        s.auth = "fast".into();
        s.logins = Logins {
            sasl1: 0,
            sasl2: 100,
            fast: 250,
            fast_tokens: 100,
        };
        let j = s.to_json();
        assert!(j.contains(r#""auth":"fast""#), "{j}");
        assert!(
            j.contains(r#""logins":{"sasl1":0,"sasl2":100,"fast":250,"fast_tokens":100}"#),
            "{j}"
        );
        assert!(s
            .to_human()
            .contains("logins by path        sasl1 0, sasl2 100, fast 250 (100 FAST tokens received)"));
        s.sessions.failed = 1;
        assert!(!s.clean());
    }

    #[test]
    fn presence_numbers() {
        let point = |cpu_ms| Some(ProcPoint { rss_kib: 1, cpu_ms });
        let mut s = Summary {
            outcome: "completed".into(),
            ..Default::default()
        };
        s.sessions.requested = 10;
        s.sessions.established = 10;
        s.presence = Some(Presence {
            roster_size: 4,
            rate: 100.0,
            roster: RosterSetup {
                sessions: 10,
                complete: 10,
                ..Default::default()
            },
            send_secs: 2.0,
            d: Delivery {
                sent: 200,
                expected: 800,
                received: 798,
                own: 200,
                ..Default::default()
            },
        });
        s.server = Some(Server {
            pid: 1,
            before: point(0.0),
            after_setup: point(100.0),
            before_scenario: point(500.0),
            after_scenario: point(900.0),
            scenario_secs: 2.0,
            error: None,
        });
        // The roster setup's CPU (100 -> 500) is not the storm's.
        assert_eq!(s.server_cpu_ms_scenario(), Some(400.0));
        let j = s.to_json();
        for want in [
            r#""updates_sent":200"#,
            r#""notifications_expected":800"#,
            r#""notifications_received":798"#,
            r#""lost":2"#,
            r#""loss_percent":0.25"#,
            r#""own_echoes":200"#,
            r#""incomplete":0"#,
            r#""cpu_ms_per_1000_notifications":501.253"#,
        ] {
            assert!(j.contains(want), "{want} in {j}");
        }
        assert!(!s.clean(), "a lost notification");
        let h = s.to_human();
        assert!(
            h.contains("798 received of 800 expected (+200 to the sender itself)"),
            "{h}"
        );
        assert!(h.contains("lost                  2 (0.25%)"), "{h}");
        let p = s.presence.as_mut().unwrap();
        p.d.received = 800;
        assert!(s.clean());
        s.presence.as_mut().unwrap().roster.complete = 9;
        assert!(!s.clean(), "a roster that never completed");
        assert!(s.to_json().contains(r#""incomplete":1"#));
    }
}
