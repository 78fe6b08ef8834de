//! meerkat-loadgen: an XMPP client load generator. See README.md.

mod cli;
mod presence;
mod report;
mod sasl2;
mod scram;
mod session;
mod stats;
mod sys;
mod tls;
mod track;
mod xml;

use clap::Parser;
use cli::{Args, Scenario, TlsMode};
use report::{
    Chat, Client, Delivery, Latency, Logins, Presence, ProcPoint, Reconnect, RosterSetup, Server, Sessions,
    Summary,
};
use rustls::pki_types::ServerName;
use session::{Phase, RateLimiter, Shared};
use stats::Stats;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until, timeout_at, Instant};

/// Exit codes: 0 clean run, 1 usage or fatal error, 2 the run finished but something
/// failed (a session, a message, a reconnect), 3 the overall --timeout hit or interrupted.
const EXIT_FATAL: u8 = 1;
const EXIT_UNCLEAN: u8 = 2;
const EXIT_TIMEOUT: u8 = 3;

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = args.validate() {
        eprintln!("meerkat-loadgen: {e}");
        return ExitCode::from(EXIT_FATAL);
    }
    match sys::raise_nofile() {
        Ok((soft, hard)) => {
            // one descriptor per session plus a margin for the runtime, stdio and /proc reads
            let need = args.sessions as u64 + 64;
            if soft < need {
                eprintln!(
                    "meerkat-loadgen: the open-file limit is {soft} (hard limit {hard}) but {} sessions need \
                     about {need}; raise the hard limit (ulimit -Hn, LimitNOFILE=, /etc/security/limits.conf) \
                     or run fewer sessions",
                    args.sessions
                );
                return ExitCode::from(EXIT_FATAL);
            }
        }
        Err(e) => eprintln!("meerkat-loadgen: warning: could not read the open-file limit: {e}"),
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        // PBKDF2 runs here; more threads than cores would only add switching.
        .max_blocking_threads(threads.max(2))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("meerkat-loadgen: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_FATAL);
        }
    };
    let code = rt.block_on(run(args, threads));
    rt.shutdown_timeout(Duration::from_secs(1));
    code
}

/// Measurements taken by the coordinator along the way.
#[derive(Default)]
struct Marks {
    setup_secs: f64,
    client_cpu_after_setup: Option<f64>,
    server_before: Option<ProcPoint>,
    server_after_setup: Option<ProcPoint>,
    server_before_scenario: Option<ProcPoint>,
    server_after_scenario: Option<ProcPoint>,
    server_error: Option<String>,
    scenario_start: Option<Instant>,
    scenario_secs: f64,
    chat_pairs: u64,
    roster_secs: f64,
    roster_sessions: u64,
    send_start: Option<Instant>,
    send_secs: f64,
    reconnect_secs: f64,
}

impl Marks {
    fn sample(&mut self, pid: Option<u32>) -> Option<ProcPoint> {
        let pid = pid?;
        match sys::sample_process(pid) {
            Ok(s) => Some(ProcPoint {
                rss_kib: s.rss_kib,
                cpu_ms: s.cpu_ms,
            }),
            Err(e) => {
                self.server_error.get_or_insert(e);
                None
            }
        }
    }
}

async fn resolve(addr: &str) -> Result<std::net::SocketAddr, String> {
    let mut it = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| format!("cannot resolve --addr {addr}: {e}"))?;
    it.next()
        .ok_or_else(|| format!("--addr {addr} resolves to nothing"))
}

async fn run(args: Args, threads: usize) -> ExitCode {
    let t_begin = Instant::now();
    let addr = match resolve(&args.addr).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("meerkat-loadgen: {e}");
            return ExitCode::from(EXIT_FATAL);
        }
    };
    let tls = if args.tls == TlsMode::None {
        None
    } else {
        let config = match tls::client_config(args.ca_file.as_deref(), args.tls_resumption) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("meerkat-loadgen: {e}");
                return ExitCode::from(EXIT_FATAL);
            }
        };
        let name = args
            .tls_server_name
            .clone()
            .unwrap_or_else(|| args.domain.clone());
        let name = match ServerName::try_from(name.clone()) {
            Ok(n) => n,
            Err(_) => {
                eprintln!("meerkat-loadgen: {name:?} is not a valid TLS server name (see --tls-server-name)");
                return ExitCode::from(EXIT_FATAL);
            }
        };
        Some((tokio_rustls::TlsConnector::from(config), name))
    };
    let (phase_tx, phase_rx) = watch::channel(Phase::Setup);
    let n = args.sessions;
    let sh = Arc::new(Shared {
        addr,
        tls,
        stats: Stats::default(),
        phase: phase_rx,
        jids: (0..n).map(|_| OnceLock::new()).collect(),
        alive: (0..n).map(|_| AtomicBool::new(false)).collect(),
        connect_slots: Semaphore::new(args.concurrency),
        limiter: args.rate.map(RateLimiter::new),
        salt_cache: scram::SaltCache::new(args.scram_cache),
        epoch: Instant::now(),
        run_tag: rand::random(),
        setup_done: Default::default(),
        setup_notify: Notify::new(),
        args: args.clone(),
    });
    if !args.quiet {
        eprintln!(
            "meerkat-loadgen: {n} sessions to {addr} (domain {}, {}, auth {:?}, tls {:?}, scenario {:?}), \
             concurrency {}, rate {}",
            args.domain,
            args.mechanism.sasl_name(),
            args.auth,
            args.tls,
            args.scenario,
            args.concurrency,
            args.rate.map_or("unlimited".to_string(), |r| format!("{r}/s"))
        );
        if args.tls != TlsMode::None && args.ca_file.is_none() {
            eprintln!("meerkat-loadgen: --insecure: server certificates are not verified");
        }
    }

    let mut marks = Marks::default();
    marks.server_before = marks.sample(args.server_pid);
    let client_cpu_before = sys::self_cpu_ms();
    let progress = (!args.quiet).then(|| tokio::spawn(progress(sh.clone(), t_begin)));

    let mut tasks = JoinSet::new();
    let deadline = t_begin + Duration::from_secs_f64(args.timeout);
    let outcome = {
        let scenario = drive(&sh, &phase_tx, &mut tasks, &mut marks);
        tokio::select! {
            _ = scenario => "completed",
            _ = sleep_until(deadline) => "timed out",
            _ = async {
                if tokio::signal::ctrl_c().await.is_err() {
                    std::future::pending::<()>().await;
                }
            } => "interrupted",
        }
    };
    if marks.server_after_scenario.is_none() && marks.server_after_setup.is_some() {
        marks.server_after_scenario = marks.sample(args.server_pid);
        if let Some(s) = marks.scenario_start {
            marks.scenario_secs = s.elapsed().as_secs_f64();
        }
    }
    // Close every session politely, within bounds.
    phase_tx.send_replace(Phase::Stop);
    let close_by = Instant::now() + Duration::from_secs(10);
    while let Ok(Some(_)) = timeout_at(close_by, tasks.join_next()).await {}
    tasks.abort_all();
    if let Some(p) = progress {
        p.abort();
    }

    let summary = summarize(&sh, &marks, outcome, t_begin, client_cpu_before, threads);
    if args.json {
        println!("{}", summary.to_json());
    } else {
        print!("{}", summary.to_human());
    }
    if outcome != "completed" {
        ExitCode::from(EXIT_TIMEOUT)
    } else if !summary.clean() {
        ExitCode::from(EXIT_UNCLEAN)
    } else {
        ExitCode::SUCCESS
    }
}

/// Start the sessions and walk through the phases of the scenario.
async fn drive(sh: &Arc<Shared>, phase_tx: &watch::Sender<Phase>, tasks: &mut JoinSet<()>, m: &mut Marks) {
    let a = &sh.args;
    let st = &sh.stats;
    let t0 = Instant::now();
    for i in 0..a.sessions {
        tasks.spawn(session::run_session(sh.clone(), i));
    }
    while sh.setup_done.load(Relaxed) < a.sessions {
        sh.setup_notify.notified().await;
    }
    m.setup_secs = t0.elapsed().as_secs_f64();
    m.client_cpu_after_setup = Some(sys::self_cpu_ms());
    m.server_after_setup = m.sample(a.server_pid);
    m.scenario_start = Some(Instant::now());
    if st.established.load(Relaxed) == 0 {
        // Nothing to hold, chat over or reconnect.
        m.server_after_scenario = m.sample(a.server_pid);
        return;
    }

    match a.scenario {
        Scenario::Idle => {
            phase_tx.send_replace(Phase::Hold);
            sleep(Duration::from_secs_f64(a.hold)).await;
        }
        Scenario::Chat => {
            let pairs = (0..a.sessions / 2)
                .filter(|k| sh.jids[2 * k].get().is_some() && sh.jids[2 * k + 1].get().is_some())
                .count() as u64;
            m.chat_pairs = pairs;
            send_phase(sh, phase_tx, m, 2 * pairs, a.msg_rate).await;
        }
        Scenario::Presence => {
            // Rosters first: every session until its roster is complete, within bounds.
            let t = Instant::now();
            m.roster_sessions = st.established.load(Relaxed);
            phase_tx.send_replace(Phase::Roster);
            let until = t + Duration::from_secs_f64(a.roster_timeout);
            // A session lost meanwhile will not complete: wait for those still connected.
            let connected = || sh.alive.iter().filter(|x| x.load(Relaxed)).count() as u64;
            while Instant::now() < until && st.roster_complete.load(Relaxed) < connected() {
                sleep(Duration::from_millis(20)).await;
            }
            m.roster_secs = t.elapsed().as_secs_f64();
            // The presence that completed subscriptions cause settles, then the storm.
            phase_tx.send_replace(Phase::Hold);
            sleep(Duration::from_millis(500)).await;
            m.server_before_scenario = m.sample(a.server_pid);
            m.scenario_start = Some(Instant::now());
            let senders = sh.alive.iter().filter(|x| x.load(Relaxed)).count() as u64;
            send_phase(sh, phase_tx, m, senders, a.presence_rate).await;
        }
        Scenario::Reconnect => {
            let start = Instant::now();
            let until = start + Duration::from_secs_f64(a.duration);
            phase_tx.send_replace(Phase::Reconnect { until });
            sleep_until(until).await;
            // Let reconnects already under way finish (each is bounded by --setup-timeout).
            let settle = Instant::now() + Duration::from_secs_f64(a.setup_timeout);
            while Instant::now() < settle && st.in_flight.load(Relaxed) > 0 {
                sleep(Duration::from_millis(20)).await;
            }
            m.reconnect_secs = start.elapsed().as_secs_f64();
        }
    }
    if let Some(s) = m.scenario_start {
        m.scenario_secs = s.elapsed().as_secs_f64();
    }
    m.server_after_scenario = m.sample(a.server_pid);
}

/// Chat or presence: `senders` sessions send `rate` stanzas per second in all for
/// `--duration`, then in-flight stanzas get until `--grace` to arrive.
async fn send_phase(
    sh: &Arc<Shared>,
    phase_tx: &watch::Sender<Phase>,
    m: &mut Marks,
    senders: u64,
    rate: f64,
) {
    let (a, st) = (&sh.args, &sh.stats);
    let interval = if senders > 0 && rate > 0.0 {
        Duration::from_secs_f64(senders as f64 / rate)
    } else {
        Duration::ZERO
    };
    // A moment for every session to see the phase before the first send is due.
    let start = Instant::now() + Duration::from_millis(100);
    let end = start + Duration::from_secs_f64(a.duration);
    m.send_start = Some(start);
    phase_tx.send_replace(Phase::Send { start, end, interval });
    sleep_until(end).await;
    phase_tx.send_replace(Phase::Drain);
    m.send_secs = a.duration;
    let grace_end = Instant::now() + Duration::from_secs_f64(a.grace);
    // Senders first leave their loops (a late timer may still send one last burst),
    // then whatever is in flight gets until the end of the grace period.
    while Instant::now() < grace_end
        && (st.senders_active.load(Relaxed) > 0
            || st.msg_received.load(Relaxed) < st.msg_expected.load(Relaxed))
    {
        sleep(Duration::from_millis(20)).await;
    }
}

/// A status line on stderr every two seconds.
async fn progress(sh: Arc<Shared>, t0: Instant) {
    let st = &sh.stats;
    loop {
        sleep(Duration::from_secs(2)).await;
        let phase = match &*sh.phase.borrow() {
            Phase::Setup => "setup",
            Phase::Hold => "hold",
            Phase::Roster => "roster",
            Phase::Send { .. } if sh.args.scenario == Scenario::Presence => "presence",
            Phase::Send { .. } => "chat",
            Phase::Drain => "drain",
            Phase::Reconnect { .. } => "reconnect",
            Phase::Stop => "stop",
        };
        let g = |a: &std::sync::atomic::AtomicU64| a.load(Relaxed);
        let mut line = format!(
            "[{:7.1}s] {phase:9} established {} failed {} in-flight {} dropped {}",
            t0.elapsed().as_secs_f64(),
            g(&st.established),
            g(&st.failed),
            g(&st.in_flight),
            g(&st.dropped)
        );
        if sh.args.scenario == Scenario::Chat {
            line += &format!(" | sent {} received {}", g(&st.msg_sent), g(&st.msg_received));
        }
        if sh.args.scenario == Scenario::Presence {
            line += &format!(
                " | rosters complete {} | updates {} notifications {} of {}",
                g(&st.roster_complete),
                g(&st.msg_sent),
                g(&st.msg_received),
                g(&st.msg_expected)
            );
        }
        if sh.args.scenario == Scenario::Reconnect {
            line += &format!(
                " | reconnects {} failed {}",
                g(&st.reconnects),
                g(&st.reconnect_failed)
            );
        }
        eprintln!("{line}");
    }
}

fn summarize(
    sh: &Shared,
    m: &Marks,
    outcome: &str,
    t_begin: Instant,
    client_cpu_before: f64,
    threads: usize,
) -> Summary {
    let a = &sh.args;
    let st = &sh.stats;
    let g = |x: &std::sync::atomic::AtomicU64| x.load(Relaxed);
    let cpu_now = sys::self_cpu_ms();
    let setup_secs = if m.client_cpu_after_setup.is_some() {
        m.setup_secs
    } else {
        t_begin.elapsed().as_secs_f64()
    };
    let sessions = Sessions {
        requested: a.sessions,
        established: g(&st.established),
        failed: g(&st.failed),
        failure_reasons: st.failures.snapshot(),
        setup_secs,
        setup_latency: Latency::from_hist(&st.setup_us),
        dropped: g(&st.dropped),
        drop_reasons: st.drop_reasons.snapshot(),
    };
    let delivery = || {
        let received = g(&st.msg_received);
        let last = g(&st.last_receipt_us);
        let span = m
            .send_start
            .map(|s| (last as f64 / 1e6) - s.duration_since(sh.epoch).as_secs_f64())
            .unwrap_or(0.0);
        Delivery {
            sent: g(&st.msg_sent),
            expected: g(&st.msg_expected),
            received,
            duplicates: g(&st.msg_duplicates),
            reordered: g(&st.msg_reordered),
            own: g(&st.msg_own),
            errors: g(&st.msg_errors),
            stale: g(&st.msg_stale),
            unexpected: g(&st.msg_unexpected),
            latency: Latency::from_hist(&st.latency_us),
            delivered_per_sec: if span > 0.0 { received as f64 / span } else { 0.0 },
        }
    };
    let chat = (a.scenario == Scenario::Chat).then(|| Chat {
        pairs: m.chat_pairs,
        msg_rate: a.msg_rate,
        send_secs: m.send_secs,
        d: delivery(),
    });
    let presence = (a.scenario == Scenario::Presence).then(|| Presence {
        roster_size: a.roster_size,
        rate: a.presence_rate,
        roster: RosterSetup {
            secs: m.roster_secs,
            sessions: m.roster_sessions,
            complete: g(&st.roster_complete),
            already_complete: g(&st.roster_already),
            subscribes_sent: g(&st.roster_subscribes),
            subscriptions_accepted: g(&st.roster_accepted),
            items_removed: g(&st.roster_removed),
            errors: g(&st.roster_errors),
        },
        send_secs: m.send_secs,
        d: delivery(),
    });
    let reconnect = (a.scenario == Scenario::Reconnect).then(|| Reconnect {
        secs: m.reconnect_secs,
        succeeded: g(&st.reconnects),
        failed: g(&st.reconnect_failed),
        failure_reasons: st.reconnect_failures.snapshot(),
        latency: Latency::from_hist(&st.reconnect_us),
    });
    let server = a.server_pid.map(|pid| Server {
        pid,
        before: m.server_before,
        after_setup: m.server_after_setup,
        before_scenario: m.server_before_scenario,
        after_scenario: m.server_after_scenario,
        scenario_secs: m.scenario_secs,
        error: m.server_error.clone(),
    });
    Summary {
        addr: sh.addr.to_string(),
        domain: a.domain.clone(),
        scenario: format!("{:?}", a.scenario).to_lowercase(),
        mechanism: a.mechanism.sasl_name().to_string(),
        auth: format!("{:?}", a.auth).to_lowercase(),
        tls: format!("{:?}", a.tls).to_lowercase(),
        outcome: outcome.to_string(),
        elapsed_secs: t_begin.elapsed().as_secs_f64(),
        sessions,
        logins: Logins {
            sasl1: g(&st.logins_sasl1),
            sasl2: g(&st.logins_sasl2),
            fast: g(&st.logins_fast),
            fast_tokens: g(&st.fast_tokens),
        },
        chat,
        presence,
        reconnect,
        server,
        client: Client {
            threads,
            cpu_ms_setup: m.client_cpu_after_setup.unwrap_or(cpu_now) - client_cpu_before,
            cpu_ms_total: cpu_now - client_cpu_before,
            rss_kib: sys::self_rss_kib(),
            pbkdf2_runs: g(&st.pbkdf2_runs),
            pbkdf2_cached: g(&st.pbkdf2_cached),
            iq_answered: g(&st.iq_answered),
        },
    }
}
