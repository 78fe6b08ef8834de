//! `[[listen.s2s]]`, `[[listen.component]]` and `[s2s]` (with `[s2s.outgoing]`), in
//! the shape of MongooseIM 6.4.

use std::collections::BTreeMap;
use std::net::IpAddr;

use meerkat_engine::jid::Jid;
use meerkat_engine::stream::component::ConflictBehaviour;
use meerkat_engine::stream::s2s::VerifyMode;
use meerkat_engine::stream::s2s_out::IpVersion;

use super::error::Problem;
use super::node::{Node, Result, Table};
use super::parse::{
    auth_timeout_option, connection_limits, listen_address, listener_tls, max_stanza_size_option,
    milliseconds, send_queue_option, shaper_option, tls_cert, tls_mode, tls_path, LIMIT_OPTIONS,
};
use super::{ComponentListenerConfig, FederationConfig, OutgoingConfig, S2sListenerConfig, S2sTls};

/// `[[listen.s2s]]` and `[[listen.component]]` from the `listen` table.
pub(super) fn listeners(
    listen: &Table,
    shapers: &BTreeMap<String, u64>,
) -> Result<(Vec<S2sListenerConfig>, Vec<ComponentListenerConfig>)> {
    let mut s2s = Vec::new();
    if let Some(n) = listen.get("s2s") {
        for item in n.array("an array of tables ([[listen.s2s]])")? {
            let mut known = vec!["port", "ip_address", "shaper", "max_stanza_size", "tls"];
            known.extend_from_slice(LIMIT_OPTIONS);
            let t = item.table(&known)?;
            let tls = match t.get("tls") {
                None => None,
                Some(n) => Some(s2s_tls(&n)?),
            };
            s2s.push(S2sListenerConfig {
                addr: listen_address(&t)?,
                shaper_max_rate: shaper_option(&t, shapers)?,
                max_stanza_size: max_stanza_size_option(&t)?,
                tls,
                limits: connection_limits(&t)?,
                auth_timeout_ms: auth_timeout_option(&t)?,
            });
        }
    }
    let mut components = Vec::new();
    if let Some(n) = listen.get("component") {
        for item in n.array("an array of tables ([[listen.component]])")? {
            components.push(component(&item, shapers)?);
        }
    }
    Ok((s2s, components))
}

fn component(node: &Node, shapers: &BTreeMap<String, u64>) -> Result<ComponentListenerConfig> {
    let mut known = vec![
        "port",
        "ip_address",
        "shaper",
        "max_stanza_size",
        "password",
        "check_from",
        "hidden_components",
        "conflict_behaviour",
        "tls",
    ];
    known.extend_from_slice(LIMIT_OPTIONS);
    let t = node.table(&known)?;
    let expected = "the shared secret components authenticate with";
    let password_node = t.required("password", expected)?;
    let password = password_node.str(expected)?.to_string();
    if password.is_empty() {
        return Err(password_node.bad_value(expected));
    }
    let check_from = match t.get("check_from") {
        None => true,
        Some(n) => n.bool()?,
    };
    let hidden_components = match t.get("hidden_components") {
        None => false,
        Some(n) => n.bool()?,
    };
    let conflict = match t.get("conflict_behaviour") {
        None => ConflictBehaviour::Disconnect,
        Some(n) => match n.one_of(&["disconnect", "kick_old"])? {
            "kick_old" => ConflictBehaviour::KickOld,
            _ => ConflictBehaviour::Disconnect,
        },
    };
    let tls = match t.get("tls") {
        None => None,
        Some(n) => Some(listener_tls(&n)?),
    };
    Ok(ComponentListenerConfig {
        addr: listen_address(&t)?,
        shaper_max_rate: shaper_option(&t, shapers)?,
        max_stanza_size: max_stanza_size_option(&t)?,
        password,
        check_from,
        hidden_components,
        conflict,
        tls,
        limits: connection_limits(&t)?,
        auth_timeout_ms: auth_timeout_option(&t)?,
    })
}

/// The `tls` table of `[[listen.s2s]]` (`listener`) or `[s2s.outgoing]`.
fn s2s_tls(node: &Node) -> Result<S2sTls> {
    let t = node.table(&["mode", "certfile", "keyfile", "cacertfile", "verify_mode"])?;
    let mode = tls_mode(&t)?;
    // A listener needs a certificate; outgoing streams present one (XEP-0178), the
    // self-signed one when none is given.
    let cert = tls_cert(&t)?;
    let cacertfile = match tls_path(&t, "cacertfile")? {
        None => None,
        Some((path, n)) => {
            let pem = std::fs::read(&path).map_err(|e| {
                n.error(Problem::File {
                    file: path.clone(),
                    reason: e.to_string(),
                })
            })?;
            if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                return Err(n.error(Problem::File {
                    file: path,
                    reason: "no PEM CERTIFICATE block".into(),
                }));
            }
            Some(path)
        }
    };
    let verify_mode = match t.get("verify_mode") {
        None => VerifyMode::Peer,
        Some(n) => match n.one_of(&["peer", "none"])? {
            "none" => VerifyMode::None,
            _ => VerifyMode::Peer,
        },
    };
    Ok(S2sTls {
        mode,
        cert,
        cacertfile,
        verify_mode,
    })
}

/// `[s2s]`: policy, dialback secret and `[s2s.outgoing]`.
pub(super) fn s2s(node: &Node, shapers: &BTreeMap<String, u64>) -> Result<FederationConfig> {
    let t = node.table(&["default_policy", "host_policy", "shared", "outgoing"])?;
    let default_allow = match t.get("default_policy") {
        None => true,
        Some(n) => n.one_of(&["allow", "deny"])? == "allow",
    };
    let mut host_policy = Vec::new();
    if let Some(n) = t.get("host_policy") {
        for item in n.array("an array of {host = \"...\", policy = \"allow\" | \"deny\"}")? {
            let p = item.table(&["host", "policy"])?;
            let host = domain(&p.required("host", "a domain name")?)?;
            let allow = p
                .required("policy", "\"allow\" or \"deny\"")?
                .one_of(&["allow", "deny"])?
                == "allow";
            host_policy.push((host, allow));
        }
    }
    let shared = match t.get("shared") {
        None => None,
        Some(n) => {
            let s = n.str("a non-empty secret")?;
            if s.is_empty() {
                return Err(n.bad_value("a non-empty secret"));
            }
            Some(s.to_string())
        }
    };
    let outgoing = match t.get("outgoing") {
        None => OutgoingConfig::default(),
        Some(n) => outgoing(&n, shapers)?,
    };
    Ok(FederationConfig {
        default_allow,
        host_policy,
        shared,
        outgoing,
    })
}

fn domain(n: &Node) -> Result<String> {
    let raw = n.str("a domain name")?;
    Jid::domain_jid(raw)
        .map(|j| j.domain().to_string())
        .map_err(|_| n.bad_value("a domain name"))
}

fn outgoing(node: &Node, shapers: &BTreeMap<String, u64>) -> Result<OutgoingConfig> {
    let t = node.table(&[
        "address",
        "connection_timeout",
        "dns",
        "ip_versions",
        "max_queued_stanzas",
        "max_retry_delay",
        "max_send_queue_size",
        "max_stanza_size",
        "port",
        "shaper",
        "state_timeout",
        "stream_timeout",
        "tls",
    ])?;
    let defaults = OutgoingConfig::default();
    let mut address = Vec::new();
    if let Some(n) = t.get("address") {
        for item in n.array("an array of {host = \"...\", ip_address = \"...\", port = N}")? {
            let a = item.table(&["host", "ip_address", "port"])?;
            let host = domain(&a.required("host", "a domain name")?)?;
            let ip_node = a.required("ip_address", "an IP address")?;
            let ip: IpAddr = ip_node
                .str("an IP address")?
                .parse()
                .map_err(|_| ip_node.bad_value("an IP address"))?;
            let port = match a.get("port") {
                None => None,
                Some(p) => Some(p.integer(1..=65535, "a port number from 1 to 65535")? as u16),
            };
            address.push((host, ip, port));
        }
    }
    let ip_versions = match t.get("ip_versions") {
        None => defaults.ip_versions.clone(),
        Some(n) => {
            let expected = "a non-empty array of 4 and 6, in order of preference";
            let items = n.array(expected)?;
            let mut out = Vec::new();
            for item in &items {
                let v = match item.integer(4..=6, expected)? {
                    4 => IpVersion::V4,
                    6 => IpVersion::V6,
                    _ => return Err(item.bad_value(expected)),
                };
                if out.contains(&v) {
                    return Err(item.bad_value(expected));
                }
                out.push(v);
            }
            if out.is_empty() {
                return Err(n.bad_value(expected));
            }
            out
        }
    };
    let (mut dns_timeout, mut dns_retries) = (defaults.dns_timeout, defaults.dns_retries);
    if let Some(n) = t.get("dns") {
        let d = n.table(&["timeout", "retries"])?;
        if let Some(v) = d.get("timeout") {
            dns_timeout = v.integer(1..=3600, "a positive integer (seconds)")?;
        }
        if let Some(v) = d.get("retries") {
            dns_retries = v.integer(1..=100, "a positive integer")? as u32;
        }
    }
    let max_retry_delay = match t.get("max_retry_delay") {
        None => defaults.max_retry_delay,
        Some(n) => n.integer(1..=86_400, "a positive integer (seconds)")?,
    };
    let port = match t.get("port") {
        None => defaults.port,
        Some(n) => n.integer(1..=65535, "a port number from 1 to 65535")? as u16,
    };
    let tls = match t.get("tls") {
        None => None,
        Some(n) => Some(s2s_tls(&n)?),
    };
    Ok(OutgoingConfig {
        address,
        connection_timeout_ms: milliseconds(&t, "connection_timeout", 10_000)?,
        dns_timeout,
        dns_retries,
        ip_versions,
        max_retry_delay,
        max_stanza_size: max_stanza_size_option(&t)?,
        port,
        shaper_max_rate: shaper_option(&t, shapers)?,
        state_timeout_ms: milliseconds(&t, "state_timeout", 5_000)?,
        stream_timeout_ms: milliseconds(&t, "stream_timeout", 600_000)?,
        tls,
        max_queued_stanzas: match t.get("max_queued_stanzas") {
            None => defaults.max_queued_stanzas,
            Some(n) => n.integer(1..=10_000_000, "a positive integer (stanzas per remote domain)")? as usize,
        },
        max_send_queue_size: send_queue_option(&t)?,
    })
}

impl Default for OutgoingConfig {
    fn default() -> Self {
        Self {
            address: Vec::new(),
            connection_timeout_ms: Some(10_000),
            dns_timeout: 10,
            dns_retries: 2,
            ip_versions: vec![IpVersion::V4, IpVersion::V6],
            max_retry_delay: 300,
            max_stanza_size: super::DEFAULT_MAX_STANZA_SIZE,
            port: 5269,
            shaper_max_rate: None,
            state_timeout_ms: Some(5_000),
            stream_timeout_ms: Some(600_000),
            tls: None,
            max_queued_stanzas: meerkat_engine::federation::DEFAULT_MAX_QUEUED_STANZAS,
            max_send_queue_size: Some(meerkat_runtime_common::DEFAULT_MAX_SEND_QUEUE),
        }
    }
}
