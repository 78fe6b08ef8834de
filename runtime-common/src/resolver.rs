//! DNS for outgoing S2S, shared by every runtime: a thread running hickory's
//! resolver (system configuration), answering each query through the callback its
//! requester gave. Only resolution lives here; which records to try, in what order
//! and with which fallback is the engine's decision (`stream::s2s_out`).

use std::sync::mpsc;

use meerkat_engine::federation::srv::SrvRecord;
use meerkat_engine::stream::s2s_out::{DnsAnswer, DnsQuery};

/// Where an answer goes.
pub type AnswerTo = Box<dyn FnOnce(DnsAnswer) + Send>;

/// A handle to the resolver thread; cheap to clone.
#[derive(Clone)]
pub struct Resolver {
    tx: mpsc::Sender<(DnsQuery, AnswerTo)>,
}

impl Resolver {
    /// Starts the resolver thread, reading the system's resolver configuration
    /// (`/etc/resolv.conf`); without one, hickory's defaults.
    pub fn start() -> Self {
        let (tx, rx) = mpsc::channel::<(DnsQuery, AnswerTo)>();
        std::thread::Builder::new()
            .name("meerkat-dns".into())
            .spawn(move || {
                let resolver = match hickory_resolver::Resolver::from_system_conf() {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(error = %e, "no system DNS configuration; using defaults");
                        match hickory_resolver::Resolver::new(Default::default(), Default::default()) {
                            Ok(r) => r,
                            Err(e) => {
                                tracing::error!(error = %e, "no DNS resolver");
                                for (_, answer) in rx {
                                    answer(DnsAnswer::Failed);
                                }
                                return;
                            }
                        }
                    }
                };
                for (query, answer) in rx {
                    answer(resolve(&resolver, &query));
                }
            })
            .expect("spawning the DNS thread");
        Self { tx }
    }

    /// Queues `query`; `answer` is called on the resolver thread.
    pub fn resolve(&self, query: DnsQuery, answer: AnswerTo) {
        if let Err(mpsc::SendError((_, answer))) = self.tx.send((query, answer)) {
            answer(DnsAnswer::Failed);
        }
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
