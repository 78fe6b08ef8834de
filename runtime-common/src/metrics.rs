//! Metrics fed by the engine's instrumentation events and by the runtime (sessions
//! by transport, storage latency), rendered in Prometheus' text exposition format
//! (version 0.0.4) for the HTTP listener's `mongoose_prometheus_handler`.
//!
//! Names follow MongooseIM 6.4's Prometheus metrics where it has them
//! (`xmpp_element_in_count`, `xmpp_element_in_byte_size`, `c2s_auth_failed_count`,
//! `sm_session_logins`, ...), so that dashboards made for MongooseIM work; the rest
//! are Meerkat's own and follow Prometheus' naming rules (`_total` counters, base
//! units). `promtool check metrics` parses the page; its naming lints flag only
//! MongooseIM's counter names (no `_total`, a `_count` suffix).
//!
//! Every label set is known when the server starts (the hosts come from the config;
//! connection types, stanza kinds, mechanisms and storage operations are fixed
//! lists), so all counters and histograms are allocated up front and recording is a
//! few relaxed atomic additions: no lock, no allocation.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use meerkat_engine::instrument::{ConnectionType, Direction, ElementKind, Event};
use meerkat_engine::storage::{Storage, StorageReply, StorageRequest};

/// The `connection_type` label values, in the order of the per-type slots.
const CONNECTION_TYPES: [ConnectionType; 3] = [
    ConnectionType::C2s,
    ConnectionType::S2s,
    ConnectionType::Component,
];

/// The slot of `t` in per-type arrays.
fn type_slot(t: ConnectionType) -> usize {
    match t {
        ConnectionType::C2s => 0,
        ConnectionType::S2s => 1,
        ConnectionType::Component => 2,
    }
}

/// How a C2S session reaches the server (the `transport` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A TCP stream (STARTTLS or direct TLS).
    Tcp,
    /// RFC 7395 WebSocket.
    WebSocket,
    /// XEP-0206 BOSH.
    Bosh,
}

const TRANSPORTS: [&str; 3] = ["tcp", "websocket", "bosh"];

impl Transport {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        TRANSPORTS[self as usize]
    }
}

/// SASL mechanism labels; any other name counts as `other`.
const MECHANISMS: [&str; 9] = [
    "PLAIN",
    "SCRAM-SHA-1",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-256",
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-512",
    "SCRAM-SHA-512-PLUS",
    "FAST",
    "other",
];

/// Storage operation labels (see `StorageRequest::operation`); others: `other`.
const OPERATIONS: [&str; 14] = [
    "get_credentials",
    "create_user",
    "set_credentials",
    "remove_user",
    "list_users",
    "load_user",
    "put_roster_item",
    "delete_roster_item",
    "store_offline",
    "take_offline",
    "get_fast_tokens",
    "store_fast_token",
    "use_fast_token",
    "other",
];

/// Upper bounds of the byte-size buckets (MongooseIM uses powers of two too).
const BYTE_BUCKETS: [f64; 15] = [
    16.0,
    32.0,
    64.0,
    128.0,
    256.0,
    512.0,
    1024.0,
    2048.0,
    4096.0,
    8192.0,
    16384.0,
    32768.0,
    65536.0,
    262_144.0,
    1_048_576.0,
];

/// Upper bounds of the duration buckets, in seconds.
const SECOND_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram: per-bucket counts (cumulated when rendered), the sum in the
/// recorded unit (bytes, or nanoseconds for durations) and the count.
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: (0..bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records `value` (in the bounds' unit) adding `raw` to the sum.
    fn observe(&self, value: f64, raw: u64) {
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum.fetch_add(raw, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn observe_bytes(&self, bytes: usize) {
        self.observe(bytes as f64, bytes as u64);
    }

    fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64(), d.as_nanos().min(u128::from(u64::MAX)) as u64);
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines; `sum_scale` turns the raw
    /// sum into the metric's unit.
    fn render(&self, out: &mut String, name: &str, labels: &str, sum_scale: f64) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, bucket) in self.bounds.iter().zip(self.buckets.iter()) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum.load(Ordering::Relaxed) as f64 * sum_scale;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// What one direction of one connection type and host type counts.
#[derive(Debug)]
struct ElementStats {
    count: AtomicU64,
    stanza: AtomicU64,
    message: AtomicU64,
    iq: AtomicU64,
    presence: AtomicU64,
    bytes: Histogram,
}

impl ElementStats {
    fn new() -> Self {
        Self {
            count: AtomicU64::new(0),
            stanza: AtomicU64::new(0),
            message: AtomicU64::new(0),
            iq: AtomicU64::new(0),
            presence: AtomicU64::new(0),
            bytes: Histogram::new(&BYTE_BUCKETS),
        }
    }
}

/// Per host type: sessions, authentications, FAST tokens.
#[derive(Debug)]
struct HostStats {
    logins: AtomicU64,
    logouts: AtomicU64,
    sessions: AtomicI64,
    /// By mechanism, then success (0) / failure (1).
    auth: Box<[[AtomicU64; 2]]>,
    fast_issued: AtomicU64,
    fast_used: AtomicU64,
}

impl HostStats {
    fn new() -> Self {
        Self {
            logins: AtomicU64::new(0),
            logouts: AtomicU64::new(0),
            sessions: AtomicI64::new(0),
            auth: (0..MECHANISMS.len())
                .map(|_| [AtomicU64::new(0), AtomicU64::new(0)])
                .collect(),
            fast_issued: AtomicU64::new(0),
            fast_used: AtomicU64::new(0),
        }
    }
}

/// The server's metrics, shared by every thread.
#[derive(Debug)]
pub struct Metrics {
    /// `host_type` values: the configured hosts, then `""` (not known yet).
    hosts: Vec<String>,
    /// By direction, connection type, host type.
    elements: Box<[ElementStats]>,
    by_host: Box<[HostStats]>,
    /// Open connections by connection type.
    connections: [AtomicI64; CONNECTION_TYPES.len()],
    /// Open C2S connections by transport.
    transports: [AtomicI64; TRANSPORTS.len()],
    /// Payload bytes of WebSocket and BOSH, in and out (MongooseIM's
    /// `mod_websocket_data_received_byte_size` and friends).
    transport_bytes: [[AtomicU64; 2]; TRANSPORTS.len()],
    shaper_delay: Histogram,
    storage: Box<[Histogram]>,
    http_requests: AtomicU64,
    started: Instant,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(&[])
    }
}

impl Metrics {
    /// Metrics for a server of `hosts`.
    pub fn new(hosts: &[String]) -> Self {
        let mut all: Vec<String> = hosts.to_vec();
        all.push(String::new());
        let slots = 2 * CONNECTION_TYPES.len() * all.len();
        Self {
            elements: (0..slots).map(|_| ElementStats::new()).collect(),
            by_host: (0..all.len()).map(|_| HostStats::new()).collect(),
            hosts: all,
            connections: Default::default(),
            transports: Default::default(),
            transport_bytes: Default::default(),
            shaper_delay: Histogram::new(&SECOND_BUCKETS),
            storage: OPERATIONS
                .iter()
                .map(|_| Histogram::new(&SECOND_BUCKETS))
                .collect(),
            http_requests: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    fn host_index(&self, host_type: &str) -> usize {
        self.hosts
            .iter()
            .position(|h| h == host_type)
            .unwrap_or(self.hosts.len() - 1)
    }

    fn element_slot(
        &self,
        direction: Direction,
        connection_type: ConnectionType,
        host: usize,
    ) -> &ElementStats {
        let d = usize::from(direction == Direction::Out);
        &self.elements[(d * CONNECTION_TYPES.len() + type_slot(connection_type)) * self.hosts.len() + host]
    }

    /// Elements of `connection_type` counted in `direction`, over every host type.
    pub fn elements(&self, connection_type: ConnectionType, direction: Direction) -> u64 {
        (0..self.hosts.len())
            .map(|h| {
                self.element_slot(direction, connection_type, h)
                    .count
                    .load(Ordering::Relaxed)
            })
            .sum()
    }

    /// Accounts for one event.
    pub fn record(&self, event: &Event) {
        match event {
            Event::Element {
                direction,
                connection_type,
                host_type,
                kind,
                bytes,
            } => {
                let s = self.element_slot(*direction, *connection_type, self.host_index(host_type));
                s.count.fetch_add(1, Ordering::Relaxed);
                let kind_counter = match kind {
                    ElementKind::Message => Some(&s.message),
                    ElementKind::Iq => Some(&s.iq),
                    ElementKind::Presence => Some(&s.presence),
                    ElementKind::Other => None,
                };
                if let Some(c) = kind_counter {
                    c.fetch_add(1, Ordering::Relaxed);
                    s.stanza.fetch_add(1, Ordering::Relaxed);
                }
                s.bytes.observe_bytes(*bytes);
            }
            Event::Auth {
                mechanism,
                success,
                host_type,
            } => {
                let m = MECHANISMS
                    .iter()
                    .position(|n| n == mechanism)
                    .unwrap_or(MECHANISMS.len() - 1);
                let h = &self.by_host[self.host_index(host_type)];
                h.auth[m][usize::from(!success)].fetch_add(1, Ordering::Relaxed);
            }
            Event::ShaperDelay { micros } => {
                self.shaper_delay.observe_duration(Duration::from_micros(*micros))
            }
            Event::Session { host_type, opened } => {
                let h = &self.by_host[self.host_index(host_type)];
                if *opened {
                    h.logins.fetch_add(1, Ordering::Relaxed);
                    h.sessions.fetch_add(1, Ordering::Relaxed);
                } else {
                    h.logouts.fetch_add(1, Ordering::Relaxed);
                    h.sessions.fetch_sub(1, Ordering::Relaxed);
                }
            }
            Event::FastTokenIssued { host_type } => {
                self.by_host[self.host_index(host_type)]
                    .fast_issued
                    .fetch_add(1, Ordering::Relaxed);
            }
            Event::FastTokenUsed { host_type } => {
                self.by_host[self.host_index(host_type)]
                    .fast_used
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A connection of `connection_type` opened (`true`) or closed.
    pub fn connection(&self, connection_type: ConnectionType, open: bool) {
        self.connections[type_slot(connection_type)].fetch_add(if open { 1 } else { -1 }, Ordering::Relaxed);
    }

    /// A C2S connection over `transport` opened (`true`) or closed.
    pub fn transport(&self, transport: Transport, open: bool) {
        self.transports[transport as usize].fetch_add(if open { 1 } else { -1 }, Ordering::Relaxed);
    }

    /// Payload bytes carried by `transport`, received (`true`) or sent.
    pub fn transport_bytes(&self, transport: Transport, received: bool, bytes: usize) {
        self.transport_bytes[transport as usize][usize::from(!received)]
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// An HTTP request reached a handler (metrics, BOSH, a WebSocket upgrade).
    pub fn http_request(&self) {
        self.http_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// A storage request of `operation` took `took`.
    pub fn storage_request(&self, operation: &str, took: Duration) {
        let i = OPERATIONS
            .iter()
            .position(|o| *o == operation)
            .unwrap_or(OPERATIONS.len() - 1);
        self.storage[i].observe_duration(took);
    }

    /// `storage`, with the latency of every request recorded here.
    pub fn measured(self: &Arc<Self>, storage: Arc<dyn Storage>) -> Arc<dyn Storage> {
        Arc::new(MeasuredStorage {
            inner: storage,
            metrics: self.clone(),
        })
    }

    /// Everything, in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(32 * 1024);
        self.render_elements(&mut out);
        self.render_hosts(&mut out);
        let _ = writeln!(
            out,
            "# HELP meerkat_connections Open connections by connection type.\n# TYPE meerkat_connections gauge"
        );
        for (t, c) in CONNECTION_TYPES.iter().zip(&self.connections) {
            let ct = t.as_str();
            let _ = writeln!(
                out,
                "meerkat_connections{{connection_type=\"{ct}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP meerkat_c2s_connections Open client connections by transport.\n# TYPE meerkat_c2s_connections gauge"
        );
        for (t, c) in TRANSPORTS.iter().zip(&self.transports) {
            let _ = writeln!(
                out,
                "meerkat_c2s_connections{{transport=\"{t}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        for (name, t, dir, help) in [
            (
                "mod_websocket_data_received_byte_size",
                Transport::WebSocket,
                0,
                "Payload bytes received over WebSocket.",
            ),
            (
                "mod_websocket_data_sent_byte_size",
                Transport::WebSocket,
                1,
                "Payload bytes sent over WebSocket.",
            ),
            (
                "mod_bosh_data_received_byte_size",
                Transport::Bosh,
                0,
                "Payload bytes received over BOSH.",
            ),
            (
                "mod_bosh_data_sent_byte_size",
                Transport::Bosh,
                1,
                "Payload bytes sent over BOSH.",
            ),
        ] {
            let v = self.transport_bytes[t as usize][dir].load(Ordering::Relaxed);
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        }
        let _ = writeln!(
            out,
            "# HELP shaper_delay_seconds Time reading was paused by a traffic shaper.\n# TYPE shaper_delay_seconds histogram"
        );
        self.shaper_delay
            .render(&mut out, "shaper_delay_seconds", "", 1e-9);
        let _ = writeln!(
            out,
            "# HELP storage_request_duration_seconds Time a storage request took, by operation.\n\
             # TYPE storage_request_duration_seconds histogram"
        );
        for (op, h) in OPERATIONS.iter().zip(self.storage.iter()) {
            h.render(
                &mut out,
                "storage_request_duration_seconds",
                &format!("operation=\"{op}\""),
                1e-9,
            );
        }
        let _ = writeln!(
            out,
            "# HELP http_handler_requests_total HTTP requests passed to the metrics, BOSH and WebSocket handlers.\n\
             # TYPE http_handler_requests_total counter\nhttp_handler_requests_total {}",
            self.http_requests.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP system_up_time_seconds Time since the server started.\n# TYPE system_up_time_seconds gauge\n\
             system_up_time_seconds {}",
            self.started.elapsed().as_secs()
        );
        out
    }

    fn render_elements(&self, out: &mut String) {
        for (direction, dir_name, verb) in
            [(Direction::In, "in", "received"), (Direction::Out, "out", "sent")]
        {
            type Counter = fn(&ElementStats) -> &AtomicU64;
            let counters: [(&str, &str, Counter); 5] = [
                ("count", "XML elements", |s| &s.count),
                ("stanza_count", "stanzas", |s| &s.stanza),
                ("message_count", "message stanzas", |s| &s.message),
                ("iq_count", "iq stanzas", |s| &s.iq),
                ("presence_count", "presence stanzas", |s| &s.presence),
            ];
            for (suffix, what, get) in counters {
                let name = format!("xmpp_element_{dir_name}_{suffix}");
                let _ = writeln!(
                    out,
                    "# HELP {name} {what} {verb}, by connection type and host type."
                );
                let _ = writeln!(out, "# TYPE {name} counter");
                self.each_element_slot(direction, |labels, s| {
                    let _ = writeln!(out, "{name}{{{labels}}} {}", get(s).load(Ordering::Relaxed));
                });
            }
            let name = format!("xmpp_element_{dir_name}_byte_size");
            let _ = writeln!(out, "# HELP {name} Size of XML elements {verb}, in bytes.");
            let _ = writeln!(out, "# TYPE {name} histogram");
            let mut text = String::new();
            self.each_element_slot(direction, |labels, s| {
                s.bytes.render(&mut text, &name, labels, 1.0)
            });
            out.push_str(&text);
        }
    }

    /// Calls `f` with the labels and stats of every connection type and host type
    /// of `direction`.
    fn each_element_slot(&self, direction: Direction, mut f: impl FnMut(&str, &ElementStats)) {
        for ct in CONNECTION_TYPES {
            for (h, host) in self.hosts.iter().enumerate() {
                let s = self.element_slot(direction, ct, h);
                let labels = format!(
                    "connection_type=\"{}\",host_type=\"{}\"",
                    ct.as_str(),
                    escape_label(host)
                );
                f(&labels, s);
            }
        }
    }

    fn render_hosts(&self, out: &mut String) {
        type Get = fn(&HostStats) -> u64;
        let per_host: [(&str, &str, &str, Get); 6] = [
            ("sm_session_logins", "counter", "Client sessions opened.", |h| {
                h.logins.load(Ordering::Relaxed)
            }),
            ("sm_session_logouts", "counter", "Client sessions closed.", |h| {
                h.logouts.load(Ordering::Relaxed)
            }),
            ("sm_session_count", "gauge", "Client sessions now.", |h| {
                h.sessions.load(Ordering::Relaxed).max(0) as u64
            }),
            (
                "c2s_auth_failed_count",
                "counter",
                "Failed client authentications.",
                |h| h.auth.iter().map(|m| m[1].load(Ordering::Relaxed)).sum(),
            ),
            (
                "fast_tokens_issued_total",
                "counter",
                "XEP-0484 FAST tokens issued.",
                |h| h.fast_issued.load(Ordering::Relaxed),
            ),
            (
                "fast_tokens_used_total",
                "counter",
                "Authentications with a XEP-0484 FAST token.",
                |h| h.fast_used.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, get) in per_host {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (host, h) in self.hosts.iter().zip(self.by_host.iter()) {
                let _ = writeln!(out, "{name}{{host_type=\"{}\"}} {}", escape_label(host), get(h));
            }
        }
        let name = "sasl_authentications_total";
        let _ = writeln!(
            out,
            "# HELP {name} SASL authentications by mechanism and result.\n# TYPE {name} counter"
        );
        for (host, h) in self.hosts.iter().zip(self.by_host.iter()) {
            for (m, mechanism) in MECHANISMS.iter().enumerate() {
                for (r, result) in ["success", "failure"].iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "{name}{{host_type=\"{}\",mechanism=\"{mechanism}\",result=\"{result}\"}} {}",
                        escape_label(host),
                        h.auth[m][r].load(Ordering::Relaxed)
                    );
                }
            }
        }
    }

    /// Logs the totals.
    pub fn log_summary(&self) {
        let total = |d: Direction| -> (u64, u64) {
            let mut count = 0;
            let mut bytes = 0;
            self.each_element_slot(d, |_, s| {
                count += s.count.load(Ordering::Relaxed);
                bytes += s.bytes.sum.load(Ordering::Relaxed);
            });
            (count, bytes)
        };
        let (elements_in, bytes_in) = total(Direction::In);
        let (elements_out, bytes_out) = total(Direction::Out);
        let logins: u64 = self
            .by_host
            .iter()
            .map(|h| h.logins.load(Ordering::Relaxed))
            .sum();
        tracing::info!(
            elements_in,
            elements_out,
            bytes_in,
            bytes_out,
            logins,
            "traffic totals"
        );
    }
}

/// Prometheus label values escape `\`, `"` and newlines.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A storage backend whose every request's latency goes to the metrics.
struct MeasuredStorage {
    inner: Arc<dyn Storage>,
    metrics: Arc<Metrics>,
}

impl Storage for MeasuredStorage {
    fn execute(&self, request: StorageRequest) -> StorageReply {
        let operation = request.operation();
        let started = Instant::now();
        let reply = self.inner.execute(request);
        self.metrics.storage_request(operation, started.elapsed());
        reply
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meerkat_engine::instrument::ConnectionType;

    fn element(direction: Direction, kind: ElementKind, bytes: usize) -> Event {
        Event::Element {
            direction,
            connection_type: ConnectionType::C2s,
            host_type: "localhost".into(),
            kind,
            bytes,
        }
    }

    #[test]
    fn elements_are_counted_by_connection_type_and_direction() {
        let m = Metrics::new(&["localhost".to_string()]);
        let element = |direction, connection_type| Event::Element {
            direction,
            connection_type,
            host_type: "localhost".into(),
            kind: ElementKind::Message,
            bytes: 10,
        };
        m.record(&element(Direction::In, ConnectionType::S2s));
        m.record(&element(Direction::In, ConnectionType::S2s));
        m.record(&element(Direction::Out, ConnectionType::Component));
        assert_eq!(m.elements(ConnectionType::S2s, Direction::In), 2);
        assert_eq!(m.elements(ConnectionType::S2s, Direction::Out), 0);
        assert_eq!(m.elements(ConnectionType::Component, Direction::Out), 1);
        assert_eq!(m.elements(ConnectionType::C2s, Direction::In), 0);
        let page = m.render();
        assert!(page.contains("xmpp_element_in_count{connection_type=\"s2s\",host_type=\"localhost\"} 2"));
        assert!(
            page.contains("xmpp_element_out_count{connection_type=\"component\",host_type=\"localhost\"} 1")
        );
    }

    /// Counts land on their labels; histograms are cumulative; every sample line
    /// belongs to a declared family.
    #[test]
    fn renders_counts_histograms_and_labels() {
        let m = Metrics::new(&["localhost".to_string()]);
        m.record(&element(Direction::In, ElementKind::Message, 100));
        m.record(&element(Direction::In, ElementKind::Other, 20));
        m.record(&element(Direction::Out, ElementKind::Presence, 5000));
        m.record(&Event::Auth {
            mechanism: "SCRAM-SHA-256",
            success: false,
            host_type: "localhost".into(),
        });
        m.record(&Event::Session {
            host_type: "localhost".into(),
            opened: true,
        });
        m.storage_request("load_user", Duration::from_millis(3));
        let text = m.render();
        let has = |line: &str| assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        has("xmpp_element_in_count{connection_type=\"c2s\",host_type=\"localhost\"} 2");
        has("xmpp_element_in_stanza_count{connection_type=\"c2s\",host_type=\"localhost\"} 1");
        has("xmpp_element_in_message_count{connection_type=\"c2s\",host_type=\"localhost\"} 1");
        has("xmpp_element_out_presence_count{connection_type=\"c2s\",host_type=\"localhost\"} 1");
        has("xmpp_element_in_byte_size_bucket{connection_type=\"c2s\",host_type=\"localhost\",le=\"32\"} 1");
        has("xmpp_element_in_byte_size_bucket{connection_type=\"c2s\",host_type=\"localhost\",le=\"128\"} 2");
        has("xmpp_element_in_byte_size_sum{connection_type=\"c2s\",host_type=\"localhost\"} 120");
        has("xmpp_element_in_count{connection_type=\"s2s\",host_type=\"\"} 0");
        has("c2s_auth_failed_count{host_type=\"localhost\"} 1");
        has("sasl_authentications_total{host_type=\"localhost\",mechanism=\"SCRAM-SHA-256\",result=\"failure\"} 1");
        has("sm_session_count{host_type=\"localhost\"} 1");
        has("storage_request_duration_seconds_bucket{operation=\"load_user\",le=\"0.005\"} 1");
        has("storage_request_duration_seconds_count{operation=\"load_user\"} 1");
        // Every sample's family has a TYPE line before it.
        let mut declared = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.insert(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|f| declared.contains(*f)))
                    .unwrap_or(name);
                assert!(declared.contains(family), "{line} has no TYPE");
            }
        }
    }
}
