//! `[[listen.http]]` with its `[[listen.http.handlers.*]]`, and `[modules.mod_bosh]`,
//! in MongooseIM 6.4's shape.

use std::time::Duration;

use meerkat_engine::http::{BoshConfig, Handler, Route, WebSocketOptions};

use super::error::Problem;
use super::node::{Node, Result, Table};
use super::parse::{auth_timeout_option, connection_limits, listen_address, tls_cert, LIMIT_OPTIONS};
use super::{C2sListenerConfig, HttpListenerConfig};

/// The handler types Meerkat serves.
const HANDLERS: &[&str] = &[
    "mongoose_bosh_handler",
    "mongoose_prometheus_handler",
    "mongoose_websocket_handler",
];

/// Every `[[listen.http]]` of the `listen` table; their addresses must differ from
/// each other and from the C2S listeners'.
pub(super) fn listen_http(listen: &Table, c2s: &[C2sListenerConfig]) -> Result<Vec<HttpListenerConfig>> {
    let Some(http) = listen.get("http") else {
        return Ok(Vec::new());
    };
    let mut out: Vec<HttpListenerConfig> = Vec::new();
    for item in http.array("an array of tables ([[listen.http]])")? {
        let listener = http_listener(&item)?;
        let taken =
            c2s.iter().any(|l| l.addr == listener.addr) || out.iter().any(|l| l.addr == listener.addr);
        if taken {
            return Err(item.error(Problem::Conflict(format!(
                "address {} is already used by another listener",
                listener.addr
            ))));
        }
        out.push(listener);
    }
    Ok(out)
}

fn http_listener(node: &Node) -> Result<HttpListenerConfig> {
    let mut known = vec!["port", "ip_address", "tls", "handlers"];
    known.extend_from_slice(LIMIT_OPTIONS);
    let t = node.table(&known)?;
    let addr = listen_address(&t)?;
    let tls = match t.get("tls") {
        None => None,
        Some(n) => Some(tls_cert(&n.table(&["certfile", "keyfile"])?)?),
    };
    let mut handlers: Vec<Route> = Vec::new();
    if let Some(h) = t.get("handlers") {
        let by_type = h.table(HANDLERS)?;
        for (kind, list) in by_type.entries() {
            let expected = format!("an array of tables ([[listen.http.handlers.{kind}]])");
            for item in list.array(&expected)? {
                let route = handler(kind, &item)?;
                if handlers
                    .iter()
                    .any(|r| r.host == route.host && r.path == route.path)
                {
                    return Err(item.error(Problem::Conflict(format!(
                        "another handler of this listener serves host {:?} path {:?}",
                        route.host.as_deref().unwrap_or("_"),
                        route.path
                    ))));
                }
                handlers.push(route);
            }
        }
    }
    Ok(HttpListenerConfig {
        addr,
        tls,
        handlers,
        limits: connection_limits(&t)?,
        auth_timeout_ms: auth_timeout_option(&t)?,
    })
}

/// One handler: `host` and `path` (both required, as in MongooseIM) and its options.
fn handler(kind: &str, node: &Node) -> Result<Route> {
    let options: &[&str] = match kind {
        "mongoose_websocket_handler" => &["host", "path", "timeout", "ping_rate", "max_stanza_size"],
        _ => &["host", "path"],
    };
    let t = node.table(options)?;
    let host_node = t.required("host", "a host name, or \"_\" for any host")?;
    let host = match host_node.str("a host name, or \"_\" for any host")? {
        "_" => None,
        "" => return Err(host_node.bad_value("a host name, or \"_\" for any host")),
        h => Some(h.to_ascii_lowercase()),
    };
    let path_node = t.required("path", "a path starting with \"/\", e.g. \"/ws-xmpp\"")?;
    let path = path_node.str("a path starting with \"/\"")?;
    if !path.starts_with('/') || path.contains(['?', '#', ' ']) {
        return Err(path_node.bad_value("a path starting with \"/\", without query or spaces"));
    }
    let handler = match kind {
        "mongoose_prometheus_handler" => Handler::Prometheus,
        "mongoose_bosh_handler" => Handler::Bosh,
        _ => {
            let mut ws = WebSocketOptions::default();
            if let Some(n) = t.get("timeout") {
                ws.timeout = millis_or_infinity(&n, "a non-negative number of milliseconds or \"infinity\"")?;
            }
            if let Some(n) = t.get("ping_rate") {
                let expected = "a positive number of milliseconds";
                ws.ping_rate = Some(Duration::from_millis(
                    n.integer(1..=u64::from(u32::MAX), expected)?,
                ));
            }
            if let Some(n) = t.get("max_stanza_size") {
                let expected = "a positive integer (bytes) or \"infinity\"";
                ws.max_stanza_size = if n.is_integer() {
                    n.integer(1..=usize::MAX as u64, expected)? as usize
                } else if n.str(expected)? == "infinity" {
                    usize::MAX
                } else {
                    return Err(n.bad_value(expected));
                };
            }
            Handler::WebSocket(ws)
        }
    };
    Ok(Route {
        host,
        path: path.to_string(),
        handler,
    })
}

fn millis_or_infinity(n: &Node, expected: &str) -> Result<Option<Duration>> {
    if n.is_integer() {
        Ok(Some(Duration::from_millis(
            n.integer(0..=u64::from(u32::MAX), expected)?,
        )))
    } else if n.str(expected)? == "infinity" {
        Ok(None)
    } else {
        Err(n.bad_value(expected))
    }
}

/// `[modules.mod_bosh]`, MongooseIM's options (seconds).
pub(super) fn mod_bosh(node: &Node) -> Result<BoshConfig> {
    let m = node.table(&["inactivity", "max_wait", "max_pause", "server_acks", "backend"])?;
    let mut config = BoshConfig::default();
    let seconds = |key: &str| -> Result<Option<Duration>> {
        match m.get(key) {
            None => Ok(None),
            Some(n) => {
                let secs = n.integer(1..=86_400, "a number of seconds from 1 to 86400")?;
                Ok(Some(Duration::from_secs(secs)))
            }
        }
    };
    if let Some(d) = seconds("inactivity")? {
        config.inactivity = d;
    }
    if let Some(d) = seconds("max_wait")? {
        config.max_wait = d;
    }
    if let Some(d) = seconds("max_pause")? {
        config.max_pause = d;
    }
    if let Some(n) = m.get("server_acks") {
        if n.bool()? {
            return Err(n.bad_value("false (server acknowledgements, XEP-0124 §9.2, are not implemented)"));
        }
    }
    if let Some(n) = m.get("backend") {
        // Sessions live in the server's memory, whatever MongooseIM would store them in.
        n.one_of(&["mnesia", "cets"])?;
    }
    Ok(config)
}
