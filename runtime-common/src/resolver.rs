//! DNS for outgoing S2S, shared by every runtime: hickory's resolver (system
//! configuration), run on a thread of its own ([`Resolver::start`]) or on a
//! runtime's blocking pool ([`Resolver::with_spawner`] and [`resolve_blocking`]),
//! answering each query through the callback its requester gave. Only resolution
//! lives here; which records to try, in what order and with which fallback is the
//! engine's decision (`stream::s2s_out`).

use std::sync::{mpsc, Arc, OnceLock};

use meerkat_engine::federation::srv::SrvRecord;
use meerkat_engine::stream::s2s_out::{DnsAnswer, DnsQuery};

/// Where an answer goes.
pub type AnswerTo = Box<dyn FnOnce(DnsAnswer) + Send>;

/// Runs a query somewhere and answers through the callback.
pub type Spawner = Arc<dyn Fn(DnsQuery, AnswerTo) + Send + Sync>;

/// A handle to the resolver; cheap to clone.
#[derive(Clone)]
pub struct Resolver {
    run: Runner,
}

#[derive(Clone)]
enum Runner {
    Thread(mpsc::Sender<(DnsQuery, AnswerTo)>),
    Spawn(Spawner),
}

impl Resolver {
    /// Starts a resolver thread; answers are called on it.
    pub fn start() -> Self {
        let (tx, rx) = mpsc::channel::<(DnsQuery, AnswerTo)>();
        std::thread::Builder::new()
            .name("meerkat-dns".into())
            .spawn(move || {
                for (query, answer) in rx {
                    answer(resolve_blocking(&query));
                }
            })
            .expect("spawning the DNS thread");
        Self {
            run: Runner::Thread(tx),
        }
    }

    /// A resolver whose queries `spawner` runs (calling [`resolve_blocking`] on a
    /// blocking pool, say) and answers where the runtime wants the answer.
    pub fn with_spawner(spawner: Spawner) -> Self {
        Self {
            run: Runner::Spawn(spawner),
        }
    }

    /// Queues `query`; `answer` is called with the result.
    pub fn resolve(&self, query: DnsQuery, answer: AnswerTo) {
        match &self.run {
            Runner::Thread(tx) => {
                if let Err(mpsc::SendError((_, answer))) = tx.send((query, answer)) {
                    answer(DnsAnswer::Failed);
                }
            }
            Runner::Spawn(spawn) => spawn(query, answer),
        }
    }
}

/// Per-attempt timeout and attempts of DNS queries (`s2s.outgoing.dns.timeout` and
/// `dns.retries`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsOptions {
    /// How long one attempt waits.
    pub timeout: std::time::Duration,
    /// How many attempts a query gets.
    pub attempts: usize,
}

static OPTIONS: OnceLock<DnsOptions> = OnceLock::new();

/// Sets the DNS options, once, before the first query (later calls are ignored).
pub fn configure_dns(options: DnsOptions) {
    let _ = OPTIONS.set(options);
}

/// Answers `query` with the process's hickory resolver (made on first use from the
/// system's configuration, `/etc/resolv.conf`, with [`configure_dns`]'s timeout and
/// attempts; without a system configuration, hickory's defaults). Blocks: call it
/// off the event loop.
pub fn resolve_blocking(query: &DnsQuery) -> DnsAnswer {
    static RESOLVER: OnceLock<Option<hickory_resolver::Resolver>> = OnceLock::new();
    let resolver = RESOLVER.get_or_init(|| {
        let (config, mut opts) = match hickory_resolver::system_conf::read_system_conf() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "no system DNS configuration; using defaults");
                Default::default()
            }
        };
        if let Some(o) = OPTIONS.get() {
            opts.timeout = o.timeout;
            opts.attempts = o.attempts;
        }
        hickory_resolver::Resolver::new(config, opts)
            .map_err(|e| tracing::error!(error = %e, "no DNS resolver"))
            .ok()
    });
    match resolver {
        Some(r) => resolve(r, query),
        None => DnsAnswer::Failed,
    }
}

fn resolve(resolver: &hickory_resolver::Resolver, query: &DnsQuery) -> DnsAnswer {
    use hickory_resolver::error::ResolveErrorKind;
    match query {
        DnsQuery::Srv(name) => match resolver.srv_lookup(name.as_str()) {
            Ok(records) => DnsAnswer::Srv(
                records
                    .iter()
                    .map(|r| SrvRecord {
                        priority: r.priority(),
                        weight: r.weight(),
                        port: r.port(),
                        target: r.target().to_utf8().trim_end_matches('.').to_string(),
                    })
                    .collect(),
            ),
            Err(e) if matches!(e.kind(), ResolveErrorKind::NoRecordsFound { .. }) => {
                DnsAnswer::Srv(Vec::new())
            }
            Err(e) => {
                tracing::debug!(name, error = %e, "SRV lookup failed");
                DnsAnswer::Failed
            }
        },
        DnsQuery::Host(host) => match resolver.lookup_ip(host.as_str()) {
            Ok(ips) => DnsAnswer::Addresses(ips.iter().collect()),
            Err(e) if matches!(e.kind(), ResolveErrorKind::NoRecordsFound { .. }) => {
                DnsAnswer::Addresses(Vec::new())
            }
            Err(e) => {
                tracing::debug!(host, error = %e, "address lookup failed");
                DnsAnswer::Failed
            }
        },
    }
}
