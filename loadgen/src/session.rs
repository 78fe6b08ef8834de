//! One simulated client: connection, negotiation (STARTTLS, registration, SASL, bind,
//! session, roster, presence) and the live phase (answering pings, setting up its roster,
//! sending and checking chat messages or presence updates, reconnecting), driven by the
//! run's [`Phase`].

use crate::cli::{Args, Auth, Mechanism, Scenario, TlsMode};
use crate::presence::{self, bare, ring_contacts, RosterBook};
use crate::sasl2::{self, Device, Inline, Offer, Success, HT_MECHANISM};
use crate::scram::{self, SaltCache, ScramClient, ScramHash};
use crate::stats::Stats;
use crate::track::{Receipt, Receiver, Tag};
use crate::xml::{self, escape, Element, Event, Scanner};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rustls::pki_types::ServerName;
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::time::{sleep_until, timeout, Instant};
use tokio_rustls::TlsConnector;

/// What the run is doing; sessions follow it.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    Setup,
    Hold,
    /// Presence scenario: set the rosters up.
    Roster,
    /// Send chat messages to the peer (or presence updates, in the presence scenario), one
    /// every `interval`, from `start` until `end`.
    Send {
        start: Instant,
        end: Instant,
        interval: Duration,
    },
    /// Stop sending, keep receiving.
    Drain,
    Reconnect {
        until: Instant,
    },
    Stop,
}

/// Spaces connection attempts `interval` apart.
pub struct RateLimiter {
    interval: Duration,
    next: Mutex<Instant>,
}

impl RateLimiter {
    pub fn new(per_second: f64) -> Self {
        RateLimiter {
            interval: Duration::from_secs_f64(1.0 / per_second),
            next: Mutex::new(Instant::now()),
        }
    }

    pub async fn wait(&self) {
        let at = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let at = (*next).max(Instant::now());
            *next = at + self.interval;
            at
        };
        sleep_until(at).await;
    }
}

/// Everything the sessions share.
pub struct Shared {
    pub args: Args,
    pub addr: SocketAddr,
    pub tls: Option<(TlsConnector, ServerName<'static>)>,
    pub stats: Stats,
    pub phase: watch::Receiver<Phase>,
    /// Full JID each session bound (XML-escaped), for its chat peer; set once the session
    /// was established.
    pub jids: Vec<OnceLock<Box<str>>>,
    /// Whether each session is connected now (established and not closed or lost).
    pub alive: Vec<AtomicBool>,
    pub connect_slots: Semaphore,
    pub limiter: Option<RateLimiter>,
    pub salt_cache: SaltCache,
    /// Time zero for message timestamps.
    pub epoch: Instant,
    /// Random tag of this run, carried in every message body.
    pub run_tag: u32,
    /// Sessions whose first setup attempt has finished (either way).
    pub setup_done: AtomicUsize,
    pub setup_notify: Notify,
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

/// A failed session, as a short, low-cardinality reason ("sasl: not-authorized").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fail(pub String);

impl Fail {
    fn new(s: impl Into<String>) -> Self {
        Fail(s.into())
    }

    fn io(stage: &str, e: &io::Error) -> Self {
        if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            return if stage == "tls" {
                Fail(format!("tls: {tls}"))
            } else {
                Fail(format!("{stage}: tls: {tls}"))
            };
        }
        Fail(format!("{stage}: {:?}", e.kind()))
    }
}

// ---------------------------------------------------------------------------------------------
// Transport

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Gone,
}

impl AsyncRead for Io {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Io::Gone => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Io::Gone => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Io::Gone => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Io::Gone => Poll::Ready(Ok(())),
        }
    }
}

/// Negotiation-time view of what arrived.
enum Ev {
    Open,
    El(Element),
    Close,
}

/// Why [`Xmpp::serve`] returned.
enum Wake {
    PhaseChanged,
    Deadline,
}

/// An XMPP client stream: transport, scanner and output buffer.
pub struct Xmpp {
    io: Io,
    scan: Scanner,
    out: Vec<u8>,
    stage: &'static str,
}

const OUT_SHRINK_ABOVE: usize = 64 * 1024;

impl Xmpp {
    fn new(io: Io, max_stanza: usize) -> Self {
        Xmpp {
            io,
            scan: Scanner::new(max_stanza),
            out: Vec::new(),
            stage: "connect",
        }
    }

    async fn flush_out(&mut self) -> Result<(), Fail> {
        if !self.out.is_empty() {
            let r = self.io.write_all(&self.out).await;
            self.out.clear();
            if self.out.capacity() > OUT_SHRINK_ABOVE {
                self.out = Vec::new();
            }
            r.map_err(|e| Fail::io(self.stage, &e))?;
        }
        self.io.flush().await.map_err(|e| Fail::io(self.stage, &e))
    }

    async fn send(&mut self, s: &str) -> Result<(), Fail> {
        self.out.extend_from_slice(s.as_bytes());
        self.flush_out().await
    }

    async fn fill(&mut self) -> Result<(), Fail> {
        let n = self
            .io
            .read_buf(self.scan.read_buf())
            .await
            .map_err(|e| Fail::io(self.stage, &e))?;
        if n == 0 {
            return Err(Fail(format!("{}: connection closed by server", self.stage)));
        }
        Ok(())
    }

    async fn next(&mut self) -> Result<Ev, Fail> {
        loop {
            let ev = self
                .scan
                .next_event()
                .map_err(|e| Fail(format!("{}: xml: {e}", self.stage)))?;
            let parsed = match ev {
                None => {
                    self.fill().await?;
                    continue;
                }
                Some(Event::StreamOpen(_)) => Ok(Ev::Open),
                Some(Event::Element(r)) => Element::parse(self.scan.slice(r)).map(Ev::El),
                Some(Event::StreamClose) => Ok(Ev::Close),
            };
            return parsed.map_err(|e| Fail(format!("{}: xml: {e}", self.stage)));
        }
    }

    /// Next top-level element; stream errors and closes become failures.
    async fn next_element(&mut self) -> Result<Element, Fail> {
        match self.next().await? {
            Ev::El(e) if e.name == "stream:error" || (e.local() == "error" && e.name.contains(':')) => Err(
                Fail(format!("stream-error: {}", e.condition().unwrap_or("unknown"))),
            ),
            Ev::El(e) => Ok(e),
            Ev::Open => Err(Fail(format!("{}: unexpected stream header", self.stage))),
            Ev::Close => Err(Fail(format!("{}: stream closed by server", self.stage))),
        }
    }

    /// Send a stream header and return the features that follow the server's header.
    async fn open_stream(&mut self, domain: &str) -> Result<Element, Fail> {
        self.scan.reset();
        let header = format!(
            "<?xml version='1.0'?><stream:stream to='{}' version='1.0' xml:lang='en' \
             xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
            escape(domain)
        );
        self.send(&header).await?;
        match self.next().await? {
            Ev::Open => {}
            Ev::El(e) => {
                return Err(Fail(format!(
                    "{}: expected stream header, got <{}>",
                    self.stage, e.name
                )))
            }
            Ev::Close => return Err(Fail(format!("{}: stream closed by server", self.stage))),
        }
        let f = self.next_element().await?;
        if f.local() != "features" {
            return Err(Fail(format!(
                "{}: expected stream features, got <{}>",
                self.stage,
                f.local()
            )));
        }
        Ok(f)
    }

    async fn start_tls(&mut self, tls: &Option<(TlsConnector, ServerName<'static>)>) -> Result<(), Fail> {
        let (connector, name) = tls.as_ref().ok_or_else(|| Fail::new("tls: not configured"))?;
        let Io::Plain(tcp) = std::mem::replace(&mut self.io, Io::Gone) else {
            return Err(Fail::new("tls: already encrypted"));
        };
        let s = connector
            .connect(name.clone(), tcp)
            .await
            .map_err(|e| Fail::io("tls", &e))?;
        self.io = Io::Tls(Box::new(s));
        self.scan.reset();
        Ok(())
    }

    /// Wait for the IQ answer with this id, answering server requests meanwhile.
    async fn await_iq(&mut self, id: &str) -> Result<Element, Fail> {
        loop {
            let e = self.next_element().await?;
            if e.local() != "iq" {
                continue;
            }
            if e.attr("id") == Some(id) && matches!(e.attr("type"), Some("result") | Some("error")) {
                return Ok(e);
            }
            if matches!(e.attr("type"), Some("get") | Some("set")) {
                let ok = e
                    .children
                    .iter()
                    .any(|c| matches!(c.attr("xmlns"), Some("urn:xmpp:ping") | Some("jabber:iq:roster")));
                let reply = iq_reply(e.attr("id").unwrap_or(""), e.attr("from"), ok);
                self.send(&reply).await?;
            }
        }
    }

    /// [`Xmpp::await_iq`] for a request that must succeed: an error answer fails the setup
    /// at its current stage, with the error's condition.
    async fn await_result(&mut self, id: &str) -> Result<Element, Fail> {
        let r = self.await_iq(id).await?;
        if r.attr("type") != Some("result") {
            let cond = r.child("error").and_then(|e| e.condition()).unwrap_or("unknown");
            return Err(Fail(format!("{}: {cond}", self.stage)));
        }
        Ok(r)
    }

    /// Close politely: `</stream:stream>`, wait briefly for the server's close, shut down.
    async fn close(mut self) {
        self.stage = "close";
        let _ = self.send("</stream:stream>").await;
        let _ = timeout(Duration::from_secs(2), async {
            loop {
                match self.scan.next_event() {
                    Ok(Some(Event::StreamClose)) | Err(_) => return,
                    Ok(Some(_)) => continue,
                    Ok(None) => {}
                }
                if self.fill().await.is_err() {
                    return;
                }
            }
        })
        .await;
        let _ = timeout(Duration::from_secs(1), self.io.shutdown()).await;
    }

    /// Live phase: handle whatever arrives until the phase changes or `deadline` passes.
    async fn serve(
        &mut self,
        sh: &Shared,
        phase: &mut watch::Receiver<Phase>,
        live: &mut Live,
        deadline: Option<Instant>,
    ) -> Result<Wake, Fail> {
        // One timer for the whole call, not one per read.
        let timer = sleep_until(deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(86400)));
        tokio::pin!(timer);
        loop {
            while let Some(ev) = self
                .scan
                .next_event()
                .map_err(|e| Fail(format!("live: xml: {e}")))?
            {
                match ev {
                    Event::Element(r) => handle_stanza(sh, live, self.scan.slice(r), &mut self.out)?,
                    Event::StreamClose => return Err(Fail::new("live: stream closed by server")),
                    Event::StreamOpen(_) => return Err(Fail::new("live: unexpected stream header")),
                }
            }
            if !self.out.is_empty() {
                self.flush_out().await?;
            }
            let Xmpp { io, scan, .. } = self;
            tokio::select! {
                r = io.read_buf(scan.read_buf()) => match r {
                    Ok(0) => return Err(Fail::new("live: connection closed by server")),
                    Ok(_) => {}
                    Err(e) => return Err(Fail::io("live", &e)),
                },
                r = phase.changed() => {
                    if r.is_err() {
                        return Err(Fail::new("live: run ended"));
                    }
                    return Ok(Wake::PhaseChanged);
                }
                _ = &mut timer, if deadline.is_some() => {
                    return Ok(Wake::Deadline);
                }
            }
        }
    }
}

/// Answer to an IQ get/set from the server: a result for pings and roster pushes, an error
/// otherwise.
fn iq_reply(id: &str, from: Option<&str>, ok: bool) -> String {
    let to = from.map(|f| format!(" to='{}'", escape(f))).unwrap_or_default();
    if ok {
        format!("<iq type='result' id='{}'{to}/>", escape(id))
    } else {
        format!(
            "<iq type='error' id='{}'{to}><error type='cancel'><service-unavailable \
             xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
            escape(id)
        )
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Hot path: one stanza in the live phase.
fn handle_stanza(sh: &Shared, live: &mut Live, raw: &[u8], out: &mut Vec<u8>) -> Result<(), Fail> {
    let name = xml::start_tag_name(raw);
    match xml::local_name(name) {
        b"message" => live.on_message(sh, raw),
        b"presence" => live.on_presence(sh, raw, out),
        b"iq" => {
            let ty = xml::start_tag_attr(raw, "type");
            match ty.as_deref() {
                Some("get") | Some("set") => {
                    let id = xml::start_tag_attr(raw, "id").unwrap_or_default();
                    let from = xml::start_tag_attr(raw, "from");
                    let roster = contains(raw, b"jabber:iq:roster");
                    let ok = roster || contains(raw, b"urn:xmpp:ping");
                    out.extend_from_slice(iq_reply(&id, from.as_deref(), ok).as_bytes());
                    sh.stats.iq_answered.fetch_add(1, Relaxed);
                    if roster && ty.as_deref() == Some("set") {
                        live.on_roster_push(sh, raw);
                    }
                }
                Some(t) if xml::start_tag_attr(raw, "id").is_some_and(|id| id.starts_with(ROSTER_GET_ID)) => {
                    live.on_roster_result(sh, raw, t == "result", out);
                }
                _ => {}
            }
        }
        b"error" if name != b"error" => {
            let cond = Element::parse(raw)
                .ok()
                .and_then(|e| e.condition().map(str::to_string));
            return Err(Fail(format!(
                "stream-error: {}",
                cond.as_deref().unwrap_or("unknown")
            )));
        }
        _ => {}
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Live state: receiving tagged stanzas, the roster setup of the presence scenario

/// Ids of our roster gets start with this; removals with [`ROSTER_REMOVE_ID`].
const ROSTER_GET_ID: &str = "rs";
const ROSTER_REMOVE_ID: &str = "rr";

/// What one session keeps while it is connected.
pub struct Live {
    idx: usize,
    /// Tagged stanzas expected from the chat peer or the roster contacts.
    rx: Receiver,
    /// The roster setup (presence scenario only), from its first roster get on.
    roster: Option<RosterBook>,
    /// The roster became complete during this run (counted once).
    roster_done: bool,
    /// Counter for request ids.
    next_id: u64,
}

impl Live {
    fn new(sh: &Shared, idx: usize) -> Self {
        let a = &sh.args;
        let senders = match a.scenario {
            Scenario::Presence => ring_contacts(idx, a.sessions, a.roster_size),
            _ => {
                let peer = idx ^ 1;
                if peer < a.sessions {
                    vec![peer]
                } else {
                    Vec::new()
                }
            }
        };
        Live {
            idx,
            rx: Receiver::new(idx, senders),
            roster: None,
            roster_done: false,
            next_id: 0,
        }
    }

    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{}", self.next_id)
    }

    /// A tagged text (chat body or presence status) arrived.
    fn on_tagged(&mut self, sh: &Shared, text: &str) {
        let st = &sh.stats;
        let Some(tag) = Tag::parse(text) else { return };
        let counter = match self.rx.accept(sh.run_tag, &tag) {
            Receipt::New { reordered } => {
                if reordered {
                    st.msg_reordered.fetch_add(1, Relaxed);
                }
                let now = sh.now_us();
                st.latency_us.record(now.saturating_sub(tag.sent_us));
                st.last_receipt_us.fetch_max(now, Relaxed);
                &st.msg_received
            }
            Receipt::Duplicate => &st.msg_duplicates,
            Receipt::Stale => &st.msg_stale,
            Receipt::Unexpected => &st.msg_unexpected,
            Receipt::Own => &st.msg_own,
        };
        counter.fetch_add(1, Relaxed);
    }

    fn on_message(&mut self, sh: &Shared, raw: &[u8]) {
        if xml::start_tag_attr(raw, "type").as_deref() == Some("error") {
            sh.stats.msg_errors.fetch_add(1, Relaxed);
            return;
        }
        if let Some(body) = xml::child_text(raw, "body") {
            self.on_tagged(sh, &body);
        }
    }

    /// Presence updates of contacts are counted; subscription requests are accepted (the
    /// roster setup relies on it, and a real client with auto-approval does the same).
    fn on_presence(&mut self, sh: &Shared, raw: &[u8], out: &mut Vec<u8>) {
        match xml::start_tag_attr(raw, "type").as_deref() {
            None => {
                if let Some(status) = xml::child_text(raw, "status") {
                    self.on_tagged(sh, &status);
                }
            }
            Some("subscribe") if sh.args.scenario == Scenario::Presence => {
                if let Some(from) = xml::start_tag_attr(raw, "from") {
                    out.extend_from_slice(
                        presence::subscription_stanza("subscribed", bare(&from)).as_bytes(),
                    );
                    sh.stats.roster_accepted.fetch_add(1, Relaxed);
                }
            }
            Some("error") => {
                sh.stats.msg_errors.fetch_add(1, Relaxed);
            }
            _ => {}
        }
    }

    /// Starts (or restarts) the roster setup: asks for the whole roster.
    fn request_roster(&mut self, sh: &Shared, out: &mut Vec<u8>) {
        if self.roster.is_none() {
            let a = &sh.args;
            let contacts = ring_contacts(self.idx, a.sessions, a.roster_size)
                .into_iter()
                .map(|j| {
                    (
                        format!("{}@{}", a.username(j), a.domain),
                        sh.jids[j].get().is_some(),
                    )
                });
            self.roster = Some(RosterBook::new(contacts));
        }
        let id = self.id(ROSTER_GET_ID);
        out.extend_from_slice(
            format!("<iq type='get' id='{id}'><query xmlns='jabber:iq:roster'/></iq>").as_bytes(),
        );
    }

    fn on_roster_result(&mut self, sh: &Shared, raw: &[u8], ok: bool, out: &mut Vec<u8>) {
        if !ok {
            sh.stats.roster_errors.fetch_add(1, Relaxed);
            return;
        }
        let Some(book) = self.roster.as_mut() else { return };
        let Ok(iq) = Element::parse(raw) else { return };
        let first = !book.loaded();
        book.apply_result(presence::roster_items(&iq));
        if first && book.complete() {
            sh.stats.roster_already.fetch_add(1, Relaxed);
        }
        let subscribe: Vec<String> = book.to_subscribe().into_iter().map(str::to_string).collect();
        let remove: Vec<String> = book.to_remove().into_iter().map(str::to_string).collect();
        for j in &subscribe {
            out.extend_from_slice(presence::subscription_stanza("subscribe", j).as_bytes());
        }
        for j in &remove {
            let id = self.id(ROSTER_REMOVE_ID);
            out.extend_from_slice(presence::roster_remove(&id, j).as_bytes());
        }
        sh.stats
            .roster_subscribes
            .fetch_add(subscribe.len() as u64, Relaxed);
        sh.stats.roster_removed.fetch_add(remove.len() as u64, Relaxed);
        self.check_roster(sh);
    }

    fn on_roster_push(&mut self, sh: &Shared, raw: &[u8]) {
        let Some(book) = self.roster.as_mut() else { return };
        if let Ok(iq) = Element::parse(raw) {
            book.apply_push(presence::roster_items(&iq));
            self.check_roster(sh);
        }
    }

    fn check_roster(&mut self, sh: &Shared) {
        if !self.roster_done && self.roster.as_ref().is_some_and(RosterBook::complete) {
            self.roster_done = true;
            sh.stats.roster_complete.fetch_add(1, Relaxed);
        }
    }

    /// The roster contacts whose sessions are up now: each should get this session's
    /// presence updates.
    fn contacts_alive(&self, sh: &Shared) -> u64 {
        self.rx
            .senders()
            .iter()
            .filter(|&&j| sh.alive[j].load(Relaxed))
            .count() as u64
    }
}

/// `<message>` carrying a tag in its body, to the peer's full JID.
fn format_chat(out: &mut Vec<u8>, peer_jid: &str, tag: &Tag) {
    let mut s = String::with_capacity(160);
    let _ = write!(
        s,
        "<message to='{peer_jid}' type='chat' id='lg{}-{}'><body>",
        tag.sender, tag.seq
    );
    tag.write(&mut s);
    s.push_str("</body></message>");
    out.extend_from_slice(s.as_bytes());
}

/// A presence update (RFC 6121 §4.4) carrying a tag in its status.
fn format_presence(out: &mut Vec<u8>, tag: &Tag) {
    let mut s = String::with_capacity(80);
    s.push_str("<presence><status>");
    tag.write(&mut s);
    s.push_str("</status></presence>");
    out.extend_from_slice(s.as_bytes());
}

/// Most stanzas sent in one wake-up when a sender is behind schedule.
const MAX_BURST: u64 = 256;

// ---------------------------------------------------------------------------------------------
// Setup

fn io_fail(stage: &'static str) -> impl Fn(io::Error) -> Fail {
    move |e| Fail::io(stage, &e)
}

/// The login path a setup took (see [`Auth`]), for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginPath {
    /// RFC 6120 SASL, stream restart, resource binding.
    Sasl1,
    /// SASL2 with the password mechanism and Bind 2.
    Sasl2,
    /// SASL2 with a FAST token and Bind 2.
    Fast,
}

/// Moves the setup to its next step: `stage` names it in the failure reason of a timeout,
/// `x.stage` in the others.
fn step(stage: &mut &'static str, x: &mut Xmpp, name: &'static str) {
    *stage = name;
    x.stage = name;
}

/// Everything from TCP connect to initial presence. Returns the stream, the bound JID and
/// the login path.
async fn establish(
    sh: &Shared,
    idx: usize,
    device: &mut Device,
    stage: &mut &'static str,
) -> Result<(Xmpp, String, LoginPath), Fail> {
    let a = &sh.args;
    *stage = "connect";
    let tcp = TcpStream::connect(sh.addr).await.map_err(io_fail("connect"))?;
    let _ = tcp.set_nodelay(true);
    let mut x = Xmpp::new(Io::Plain(tcp), a.max_stanza_kib * 1024);
    if a.tls == TlsMode::Direct {
        step(stage, &mut x, "tls");
        x.start_tls(&sh.tls).await?;
    }
    step(stage, &mut x, "stream");
    let mut features = x.open_stream(&a.domain).await?;
    if a.tls == TlsMode::Starttls {
        step(stage, &mut x, "starttls");
        if features.child("starttls").is_none() {
            return Err(Fail::new("starttls: not offered"));
        }
        x.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            .await?;
        let r = x.next_element().await?;
        if r.local() != "proceed" {
            return Err(Fail(format!("starttls: server answered <{}>", r.local())));
        }
        step(stage, &mut x, "tls");
        x.start_tls(&sh.tls).await?;
        step(stage, &mut x, "stream");
        features = x.open_stream(&a.domain).await?;
    }
    let user = a.username(idx);
    if a.register {
        step(stage, &mut x, "register");
        x.send(&format!(
            "<iq type='set' id='reg1'><query xmlns='jabber:iq:register'><username>{}</username>\
             <password>{}</password></query></iq>",
            escape(&user),
            escape(&a.password)
        ))
        .await?;
        let r = x.await_iq("reg1").await?;
        if r.attr("type") == Some("error") {
            let cond = r.child("error").and_then(|e| e.condition()).unwrap_or("unknown");
            if cond != "conflict" {
                return Err(Fail(format!("register: {cond}")));
            }
        }
    }
    let (jid, path) = match a.auth {
        Auth::Sasl1 => (
            login_sasl1(sh, &mut x, &features, &user, stage).await?,
            LoginPath::Sasl1,
        ),
        Auth::Sasl2 | Auth::Fast => login_sasl2(sh, &mut x, &features, &user, device, stage).await?,
    };
    if a.roster {
        step(stage, &mut x, "roster");
        x.send("<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>")
            .await?;
        x.await_result("roster1").await?;
    }
    step(stage, &mut x, "presence");
    x.send("<presence/>").await?;
    x.stage = "live";
    Ok((x, jid, path))
}

/// RFC 6120: SASL (§6), stream restart, resource binding (§7), and the RFC 3921 session
/// for servers that still require it. Returns the bound JID.
async fn login_sasl1(
    sh: &Shared,
    x: &mut Xmpp,
    features: &Element,
    user: &str,
    stage: &mut &'static str,
) -> Result<String, Fail> {
    let a = &sh.args;
    step(stage, x, "sasl");
    let mech = ClientMech::Password(a.mechanism);
    if let Answer::Refused(f) = authenticate(sh, x, features, user, &mech, Profile::Sasl1).await? {
        return Err(f);
    }
    step(stage, x, "stream");
    let features = x.open_stream(&a.domain).await?;
    step(stage, x, "bind");
    if features.child("bind").is_none() {
        return Err(Fail::new("bind: not offered"));
    }
    x.send(&format!(
        "<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         <resource>{}</resource></bind></iq>",
        escape(&a.resource)
    ))
    .await?;
    let r = x.await_result("bind1").await?;
    let jid = r
        .child("bind")
        .and_then(|b| b.child("jid"))
        .map(|j| j.text.trim().to_string())
        .filter(|j| !j.is_empty())
        .ok_or_else(|| Fail::new("bind: no jid in result"))?;
    // RFC 3921 session establishment, for servers that still require it.
    if let Some(s) = features.child("session") {
        if s.child("optional").is_none() {
            step(stage, x, "session");
            x.send("<iq type='set' id='sess1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>")
                .await?;
            x.await_result("sess1").await?;
        }
    }
    Ok(jid)
}

/// XEP-0388 SASL2 with Bind 2 (XEP-0386) inline: no stream restart, the session is bound
/// when `<success/>` arrives, the stream's features follow it. With `--auth fast`, a
/// session that holds a FAST token authenticates with it (XEP-0484 §3.4); one that does not
/// uses the password and asks for a token (§3.2). Returns the bound JID and the path.
async fn login_sasl2(
    sh: &Shared,
    x: &mut Xmpp,
    features: &Element,
    user: &str,
    device: &mut Device,
    stage: &mut &'static str,
) -> Result<(String, LoginPath), Fail> {
    let a = &sh.args;
    let fast = a.auth == Auth::Fast;
    let (mech, count, path) = match device.fast_login().filter(|_| fast) {
        Some((token, count)) => (ClientMech::Ht(token), Some(count), LoginPath::Fast),
        None => (ClientMech::Password(a.mechanism), None, LoginPath::Sasl2),
    };
    step(stage, x, if path == LoginPath::Fast { "fast" } else { "sasl2" });
    let inline = Inline {
        agent_id: &device.agent_id,
        bind_tag: &a.resource,
        request_token: fast && path == LoginPath::Sasl2,
        fast_count: count,
    };
    let success = match authenticate(sh, x, features, user, &mech, Profile::Sasl2(&inline)).await? {
        Answer::Success(s) => Success::parse(&s),
        Answer::Refused(f) => {
            if path == LoginPath::Fast {
                // §4.2: a refused token (expired, invalidated) is forgotten; the next login
                // uses the password and asks for a new one.
                device.forget_token();
            }
            return Err(f);
        }
    };
    if device.take_token(success.token) {
        sh.stats.fast_tokens.fetch_add(1, Relaxed);
    } else if fast && path == LoginPath::Sasl2 {
        return Err(Fail::new("sasl2: no FAST token in success"));
    }
    step(stage, x, "bind2");
    if !success.bound || !success.jid.contains('/') {
        return Err(Fail::new("bind2: not bound"));
    }
    let f = x.next_element().await?;
    if f.local() != "features" {
        return Err(Fail(format!(
            "bind2: expected stream features, got <{}>",
            f.local()
        )));
    }
    Ok((success.jid, path))
}

/// The client side of one SASL mechanism.
enum ClientMech {
    /// --mechanism with --password.
    Password(Mechanism),
    /// HT-SHA-256-NONE with this FAST token.
    Ht(String),
}

impl ClientMech {
    fn name(&self) -> &'static str {
        match self {
            ClientMech::Password(m) => m.sasl_name(),
            ClientMech::Ht(_) => HT_MECHANISM,
        }
    }
}

/// The SASL profile an exchange runs in.
enum Profile<'a> {
    /// RFC 6120 §6: `<auth/>`, `<challenge/>`, `<response/>`, `<success/>` whose text is the
    /// additional data.
    Sasl1,
    /// XEP-0388: `<authenticate/>` with these inline requests, `<challenge/>`,
    /// `<response/>`, `<success/>` with an `<additional-data/>` child.
    Sasl2(&'a Inline<'a>),
}

impl Profile<'_> {
    fn ns(&self) -> &'static str {
        match self {
            Profile::Sasl1 => "urn:ietf:params:xml:ns:xmpp-sasl",
            Profile::Sasl2(_) => sasl2::NS_SASL2,
        }
    }

    fn offers(&self, features: &Element, mech: &ClientMech) -> bool {
        let name = mech.name();
        match (self, mech) {
            (Profile::Sasl1, ClientMech::Password(_)) => features.child("mechanisms").is_some_and(|m| {
                m.children
                    .iter()
                    .any(|c| c.local() == "mechanism" && c.text.trim() == name)
            }),
            (Profile::Sasl1, ClientMech::Ht(_)) => false,
            (Profile::Sasl2(_), ClientMech::Password(_)) => sasl2::offers(features, name, Offer::Sasl),
            (Profile::Sasl2(_), ClientMech::Ht(_)) => sasl2::offers(features, name, Offer::Fast),
        }
    }

    fn initiate(&self, mechanism: &str, initial_response: &[u8]) -> String {
        match self {
            Profile::Sasl1 => format!(
                "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='{mechanism}'>{}</auth>",
                B64.encode(initial_response)
            ),
            Profile::Sasl2(inline) => inline.authenticate(mechanism, initial_response),
        }
    }

    fn additional_data<'e>(&self, success: &'e Element) -> &'e str {
        match self {
            Profile::Sasl1 => success.text.trim(),
            Profile::Sasl2(_) => success.child("additional-data").map_or("", |d| d.text.trim()),
        }
    }
}

/// How the server answered a complete exchange.
enum Answer {
    /// `<success/>`, its additional data verified.
    Success(Element),
    /// `<failure/>`, as a failure reason.
    Refused(Fail),
}

/// One SASL exchange: PLAIN, SCRAM (the server signature is verified) or HT (the
/// server's proof is verified). Errors are for what is not a SASL answer.
async fn authenticate(
    sh: &Shared,
    x: &mut Xmpp,
    features: &Element,
    user: &str,
    mech: &ClientMech,
    profile: Profile<'_>,
) -> Result<Answer, Fail> {
    let a = &sh.args;
    let stage = x.stage;
    let name = mech.name();
    if !profile.offers(features, mech) {
        return Err(Fail(format!("{stage}: {name} not offered")));
    }
    let decode = |s: &str| {
        B64.decode(s)
            .map_err(|_| Fail(format!("{stage}: server sent bad base64")))
    };
    let mut scram = None;
    let initial = match mech {
        ClientMech::Password(Mechanism::Plain) => scram::plain_message(user, &a.password),
        ClientMech::Password(m) => {
            let hash = match m {
                Mechanism::ScramSha256 => ScramHash::Sha256,
                _ => ScramHash::Sha1,
            };
            let sc = ScramClient::new(hash, user, &ScramClient::random_nonce());
            let first = sc.client_first().into_bytes();
            scram = Some((sc, hash));
            first
        }
        ClientMech::Ht(token) => sasl2::ht_initial_response(user, token),
    };
    x.send(&profile.initiate(name, &initial)).await?;
    let ns = profile.ns();
    let mut answered = false;
    let mut verified = false;
    loop {
        let r = x.next_element().await?;
        match (r.local(), &mut scram) {
            ("success", _) => {
                let data = profile.additional_data(&r);
                let data = if data.is_empty() || data == "=" {
                    None
                } else {
                    Some(decode(data)?)
                };
                match (mech, &scram, data) {
                    (ClientMech::Ht(token), _, d)
                        if d.as_deref() != Some(&sasl2::ht_responder(token)[..]) =>
                    {
                        return Err(Fail(format!("{stage}: server proof missing or wrong")));
                    }
                    (ClientMech::Ht(_), _, _) => {}
                    (_, Some((sc, _)), Some(d)) => sc
                        .verify_server_final(&d)
                        .map_err(|e| Fail(format!("{stage}: {e}")))?,
                    (_, Some(_), None) if !verified => {
                        return Err(Fail(format!("{stage}: success without server signature")))
                    }
                    _ => {}
                }
                return Ok(Answer::Success(r));
            }
            ("challenge", Some((sc, hash))) if !answered => {
                let sf = sc
                    .parse_server_first(&decode(r.text.trim())?)
                    .map_err(|e| Fail(format!("{stage}: {e}")))?;
                let salted = salted_password(sh, *hash, &sf.salt, sf.iterations).await?;
                let fin = sc.client_final(&sf, &salted);
                x.send(&format!("<response xmlns='{ns}'>{}</response>", B64.encode(fin)))
                    .await?;
                answered = true;
            }
            ("challenge", Some((sc, _))) if !verified => {
                // Older servers send the server-final as a challenge and expect an empty response.
                sc.verify_server_final(&decode(r.text.trim())?)
                    .map_err(|e| Fail(format!("{stage}: {e}")))?;
                verified = true;
                x.send(&format!("<response xmlns='{ns}'/>")).await?;
            }
            ("failure", _) => {
                let cond = r.condition().unwrap_or("unknown");
                return Ok(Answer::Refused(Fail(format!("{stage}: {cond}"))));
            }
            (other, _) => return Err(Fail(format!("{stage}: unexpected <{other}>"))),
        }
    }
}

/// Hi(password, salt, i), from the cache or computed on the blocking pool.
async fn salted_password(
    sh: &Shared,
    hash: ScramHash,
    salt: &[u8],
    iterations: u32,
) -> Result<Vec<u8>, Fail> {
    let a = &sh.args;
    if let Some(s) = sh.salt_cache.get(hash, &a.password, salt, iterations) {
        sh.stats.pbkdf2_cached.fetch_add(1, Relaxed);
        return Ok(s);
    }
    let (pw, salt_owned) = (a.password.clone(), salt.to_vec());
    let s = tokio::task::spawn_blocking(move || scram::salted_password(hash, &pw, &salt_owned, iterations))
        .await
        .map_err(|_| Fail::new("sasl: PBKDF2 task failed"))?;
    sh.stats.pbkdf2_runs.fetch_add(1, Relaxed);
    sh.salt_cache.put(hash, &a.password, salt, iterations, s.clone());
    Ok(s)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Attempt {
    Initial,
    Reconnect,
}

/// One setup attempt under the concurrency and rate limits, with its outcome recorded.
async fn connect_counted(sh: &Shared, idx: usize, device: &mut Device, kind: Attempt) -> Option<Xmpp> {
    let _permit = sh.connect_slots.acquire().await.ok()?;
    if let Some(l) = &sh.limiter {
        l.wait().await;
    }
    if *sh.phase.borrow() == Phase::Stop {
        return None;
    }
    let st = &sh.stats;
    st.in_flight.fetch_add(1, Relaxed);
    let t0 = Instant::now();
    let mut stage = "connect";
    let r = timeout(
        Duration::from_secs_f64(sh.args.setup_timeout),
        establish(sh, idx, device, &mut stage),
    )
    .await;
    st.in_flight.fetch_sub(1, Relaxed);
    let r = match r {
        Ok(r) => r,
        Err(_) => Err(Fail(format!("{stage}: setup timeout"))),
    };
    let (hist, ok, failed, reasons) = match kind {
        Attempt::Initial => (&st.setup_us, &st.established, &st.failed, &st.failures),
        Attempt::Reconnect => (
            &st.reconnect_us,
            &st.reconnects,
            &st.reconnect_failed,
            &st.reconnect_failures,
        ),
    };
    match r {
        Ok((x, jid, path)) => {
            hist.record(t0.elapsed().as_micros() as u64);
            ok.fetch_add(1, Relaxed);
            let logins = match path {
                LoginPath::Sasl1 => &st.logins_sasl1,
                LoginPath::Sasl2 => &st.logins_sasl2,
                LoginPath::Fast => &st.logins_fast,
            };
            logins.fetch_add(1, Relaxed);
            let _ = sh.jids[idx].set(escape(&jid).into());
            sh.alive[idx].store(true, Relaxed);
            Some(x)
        }
        Err(Fail(reason)) => {
            failed.fetch_add(1, Relaxed);
            reasons.add(&reason);
            None
        }
    }
}

/// Wait (without a connection) until the run stops.
async fn wait_for_stop(phase: &mut watch::Receiver<Phase>) {
    while *phase.borrow_and_update() != Phase::Stop {
        if phase.changed().await.is_err() {
            return;
        }
    }
}

/// The whole life of session `idx`.
pub async fn run_session(sh: Arc<Shared>, idx: usize) {
    let mut phase = sh.phase.clone();
    // The same device logs in again and again: its FAST token carries over (--auth fast).
    let mut device = Device::new();
    let first = connect_counted(&sh, idx, &mut device, Attempt::Initial).await;
    sh.setup_done.fetch_add(1, Relaxed);
    sh.setup_notify.notify_one();
    let Some(mut x) = first else { return };
    let mut live = Live::new(&sh, idx);
    let mut sent: u64 = 0;
    let lost = |f: &Fail| {
        sh.alive[idx].store(false, Relaxed);
        sh.stats.dropped.fetch_add(1, Relaxed);
        sh.stats.drop_reasons.add(&f.0);
    };

    loop {
        let current = phase.borrow_and_update().clone();
        let r = match current {
            Phase::Setup | Phase::Hold | Phase::Drain => x.serve(&sh, &mut phase, &mut live, None).await,
            Phase::Stop => {
                sh.alive[idx].store(false, Relaxed);
                x.close().await;
                return;
            }
            Phase::Roster => roster_setup(&sh, &mut x, &mut phase, &mut live).await,
            Phase::Send { start, end, interval } => {
                send_loop(
                    &sh, &mut x, &mut phase, &mut live, &mut sent, start, end, interval,
                )
                .await
            }
            Phase::Reconnect { until } => {
                if Instant::now() >= until {
                    x.serve(&sh, &mut phase, &mut live, None).await
                } else {
                    let f = 0.5 + rand::random::<f64>();
                    let hold = Duration::from_secs_f64(sh.args.reconnect_hold * f);
                    let at = (Instant::now() + hold).min(until);
                    match x.serve(&sh, &mut phase, &mut live, Some(at)).await {
                        Ok(Wake::Deadline) if Instant::now() < until => {
                            sh.alive[idx].store(false, Relaxed);
                            x.close().await;
                            match reconnect(&sh, idx, &mut device, &mut phase, until).await {
                                Some(nx) => {
                                    x = nx;
                                    continue;
                                }
                                None => return,
                            }
                        }
                        Ok(w) => Ok(w),
                        Err(f) => {
                            // Lost the connection: count it and reconnect.
                            lost(&f);
                            match reconnect(&sh, idx, &mut device, &mut phase, until).await {
                                Some(nx) => {
                                    x = nx;
                                    continue;
                                }
                                None => return,
                            }
                        }
                    }
                }
            }
        };
        if let Err(f) = r {
            if *phase.borrow() == Phase::Stop {
                sh.alive[idx].store(false, Relaxed);
                return;
            }
            lost(&f);
            wait_for_stop(&mut phase).await;
            return;
        }
    }
}

/// Reconnect until it works or the reconnect phase ends; None means the session is over.
async fn reconnect(
    sh: &Shared,
    idx: usize,
    device: &mut Device,
    phase: &mut watch::Receiver<Phase>,
    until: Instant,
) -> Option<Xmpp> {
    loop {
        if let Some(x) = connect_counted(sh, idx, device, Attempt::Reconnect).await {
            return Some(x);
        }
        let retry = Instant::now() + Duration::from_secs(1);
        if retry >= until || *phase.borrow() == Phase::Stop {
            wait_for_stop(phase).await;
            return None;
        }
        sleep_until(retry).await;
    }
}

/// How often a session whose roster is not complete yet asks for it again (and re-sends
/// the subscription requests still needed): a safety net for lost roster pushes.
const ROSTER_RECHECK: Duration = Duration::from_secs(5);

/// Presence scenario, before the storm: bring the roster to the ring's contacts, all `both`.
async fn roster_setup(
    sh: &Shared,
    x: &mut Xmpp,
    phase: &mut watch::Receiver<Phase>,
    live: &mut Live,
) -> Result<Wake, Fail> {
    loop {
        if !live.roster_done {
            live.request_roster(sh, &mut x.out);
        }
        let until = (!live.roster_done).then(|| Instant::now() + ROSTER_RECHECK);
        match x.serve(sh, phase, live, until).await? {
            Wake::PhaseChanged => return Ok(Wake::PhaseChanged),
            Wake::Deadline => continue,
        }
    }
}

/// Send phase for one session: chat messages to the peer, or presence updates to the
/// roster (scenario `presence`), on schedule, receiving meanwhile.
#[allow(clippy::too_many_arguments)]
async fn send_loop(
    sh: &Shared,
    x: &mut Xmpp,
    phase: &mut watch::Receiver<Phase>,
    live: &mut Live,
    sent: &mut u64,
    start: Instant,
    end: Instant,
    interval: Duration,
) -> Result<Wake, Fail> {
    let presence = sh.args.scenario == Scenario::Presence;
    // Chat: only pairs with both sessions up send.
    let peer_jid = match live.rx.senders() {
        [peer] if !presence => sh.jids[*peer].get().cloned(),
        _ => None,
    };
    if interval.is_zero() || (!presence && peer_jid.is_none()) {
        return x.serve(sh, phase, live, None).await;
    }
    struct Active<'a>(&'a std::sync::atomic::AtomicU64);
    impl Drop for Active<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Relaxed);
        }
    }
    sh.stats.senders_active.fetch_add(1, Relaxed);
    let _active = Active(&sh.stats.senders_active);
    let step = interval.as_secs_f64();
    // Spread the senders evenly over one interval.
    let offset = step * rand::random::<f64>();
    let due = |n: u64| start + Duration::from_secs_f64(offset + step * n as f64);
    loop {
        let next = due(*sent);
        if next >= end {
            return x.serve(sh, phase, live, None).await;
        }
        match x.serve(sh, phase, live, Some(next)).await? {
            Wake::PhaseChanged => return Ok(Wake::PhaseChanged),
            Wake::Deadline => {
                let now = Instant::now();
                let mut n = 0;
                while n < MAX_BURST {
                    let at = due(*sent + n);
                    if at > now || at >= end {
                        break;
                    }
                    let tag = Tag {
                        run: sh.run_tag,
                        sender: live.idx,
                        seq: *sent + n,
                        sent_us: sh.now_us(),
                    };
                    match &peer_jid {
                        Some(p) => format_chat(&mut x.out, p, &tag),
                        None => format_presence(&mut x.out, &tag),
                    }
                    n += 1;
                }
                // Counted before the write: a stanza lost with its connection is lost.
                // A presence update should reach every contact that is up now.
                let fanout = if presence { live.contacts_alive(sh) } else { 1 };
                *sent += n;
                sh.stats.msg_sent.fetch_add(n, Relaxed);
                sh.stats.msg_expected.fetch_add(n * fanout, Relaxed);
                x.flush_out().await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_and_presence_stanzas_carry_the_tag() {
        let tag = Tag {
            run: 0xabc,
            sender: 7,
            seq: 42,
            sent_us: 123456,
        };
        let mut out = Vec::new();
        format_chat(&mut out, "user1@localhost/r", &tag);
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("<message to='user1@localhost/r' type='chat'"));
        let body = xml::child_text(s.as_bytes(), "body").unwrap();
        assert_eq!(Tag::parse(&body), Some(tag));

        let mut out = Vec::new();
        format_presence(&mut out, &tag);
        assert_eq!(out, b"<presence><status>lg abc 7 42 123456</status></presence>");
        let status = xml::child_text(&out, "status").unwrap();
        assert_eq!(Tag::parse(&status), Some(tag));
    }

    #[test]
    fn iq_replies() {
        assert_eq!(
            iq_reply("p1", Some("localhost"), true),
            "<iq type='result' id='p1' to='localhost'/>"
        );
        assert!(iq_reply("x", None, false).contains("service-unavailable"));
    }
}
