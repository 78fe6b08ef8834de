//! The HTTP listener's protocol logic, sans-IO: HTTP/1.1 requests and responses,
//! routing to the configured handlers (MongooseIM's `[[listen.http.handlers.*]]`),
//! XMPP over WebSocket (RFC 7395) and over BOSH (XEP-0124, XEP-0206), the metrics
//! page and the health endpoint.
//!
//! One [`HttpConnection`] per TCP connection (with its TLS, if the listener has
//! some). A WebSocket upgrade turns it into the carrier of a C2S stream: the same
//! [`C2s`](crate::stream::c2s::C2s) machine as TCP clients get, in
//! [`Framing::Message`](crate::stream::c2s::Framing::Message) mode. BOSH sessions
//! outlive HTTP connections, so each is a [`BoshSession`] of its own, keyed by its
//! `sid`; the runtime hands it the requests that connections parsed
//! ([`HttpAction::Bosh`]) and carries its replies back ([`BoshAction::Respond`]).

pub mod bosh;
mod connection;
pub mod request;
pub mod response;
#[cfg(test)]
mod tests;
pub mod websocket;

use std::sync::Arc;
use std::time::Duration;

pub use bosh::{BoshAction, BoshBody, BoshConfig, BoshReply, BoshSession, HttpRef};
pub use connection::{HttpAction, HttpConnection};

use crate::stream::c2s::C2sConfig;
use crate::tls::TlsIdentity;
use request::RequestLimits;

/// What a route serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handler {
    /// `mongoose_prometheus_handler`: the metrics in Prometheus' text format.
    Prometheus,
    /// `mongoose_websocket_handler`: XMPP over WebSocket (RFC 7395).
    WebSocket(WebSocketOptions),
    /// `mongoose_bosh_handler`: XMPP over BOSH (XEP-0206).
    Bosh,
}

/// `[[listen.http.handlers.mongoose_websocket_handler]]` options, as MongooseIM's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocketOptions {
    /// `timeout`: a connection silent this long is closed; `None`: never.
    pub timeout: Option<Duration>,
    /// `ping_rate`: the server pings this often; `None`: no pings.
    pub ping_rate: Option<Duration>,
    /// `max_stanza_size`: largest element (and WebSocket message), in bytes.
    pub max_stanza_size: usize,
}

impl Default for WebSocketOptions {
    fn default() -> Self {
        Self {
            timeout: None,
            ping_rate: None,
            max_stanza_size: 65_536,
        }
    }
}

/// One handler at a host and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `host`: the `Host` the request must name; `None` for `"_"` (any).
    pub host: Option<String>,
    /// `path`: the request path, matched exactly.
    pub path: String,
    /// What it serves.
    pub handler: Handler,
}

/// Settings of one `[[listen.http]]` listener, shared by its connections.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `tls.*`: HTTPS when present.
    pub tls: Option<Arc<TlsIdentity>>,
    /// The handlers, tried in order.
    pub routes: Vec<Route>,
    /// The C2S settings of WebSocket and BOSH streams (hosts, SASL, modules); its
    /// TLS mode is ignored, the HTTP connection does TLS.
    pub c2s: Arc<C2sConfig>,
    /// BOSH session settings (`[modules.mod_bosh]`).
    pub bosh: Arc<BoshConfig>,
    /// How long an idle persistent connection is kept between requests.
    pub keep_alive_timeout: Duration,
    /// Request size limits.
    pub limits: RequestLimits,
}

impl HttpConfig {
    /// A listener with `routes` and everything else at its default, for tests.
    pub fn new(c2s: Arc<C2sConfig>, routes: Vec<Route>) -> Self {
        Self {
            tls: None,
            routes,
            c2s,
            bosh: Arc::new(BoshConfig::default()),
            keep_alive_timeout: Duration::from_secs(60),
            limits: RequestLimits::default(),
        }
    }

    /// The handler for a request to `host` and `path`.
    pub fn route(&self, host: Option<&str>, path: &str) -> Option<&Handler> {
        self.routes
            .iter()
            .find(|r| r.path == path && r.host.as_deref().is_none_or(|h| Some(h) == host))
            .map(|r| &r.handler)
    }
}

/// The path every HTTP listener answers for load balancers and supervisors, unless
/// a handler is configured there.
pub const HEALTH_PATH: &str = "/health";

/// The Prometheus text exposition format's content type (version 0.0.4).
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
