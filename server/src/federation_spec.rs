//! From `[[listen.s2s]]`, `[[listen.component]]` and `[s2s]` to the runtime's
//! [`FederationSpec`]: the trusted CAs (the OS store plus `tls.cacertfile`), the
//! dialback secret, TLS identities and the engine settings.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use meerkat_engine::federation::{FederationConfig as RouterConfig, S2sPolicy};
use meerkat_engine::stream::c2s::TlsMode;
use meerkat_engine::stream::component::ComponentConfig;
use meerkat_engine::stream::s2s::{server_config_asking_certificates, S2sClientTls, S2sConfig, VerifyMode};
use meerkat_engine::stream::s2s_in::S2sInConfig;
use meerkat_engine::stream::s2s_out::S2sOutConfig;
use meerkat_engine::tls::TlsIdentity;
use meerkat_runtime_common::{Admission, ComponentListener, FederationSpec, S2sListener};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::cert::PemPair;
use crate::config::{Config, S2sTls};
use crate::spec::{auth_timeout, pem_of, SpecError};

/// XEP-0368: the ALPN protocol of direct-TLS server connections.
const ALPN_XMPP_SERVER: &[u8] = b"xmpp-server";

/// A very long time, for the timeouts set to `"infinity"`.
const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

fn ms(value: Option<u64>) -> Duration {
    value.map_or(NEVER, Duration::from_millis)
}

/// The federation part of the spec; `None` when the config has no S2S and no
/// component.
pub fn build(
    config: &Config,
    data_dir: &Path,
    self_signed: &mut Option<PemPair>,
) -> Result<Option<FederationSpec>, SpecError> {
    if config.s2s.is_none() && config.s2s_listeners.is_empty() && config.components.is_empty() {
        return Ok(None);
    }
    let section = config
        .s2s
        .clone()
        .unwrap_or_else(|| crate::config::FederationConfig {
            default_allow: true,
            host_policy: Vec::new(),
            shared: None,
            outgoing: Default::default(),
        });
    let outgoing = &section.outgoing;
    let secret = match &section.shared {
        Some(s) => s.clone().into_bytes(),
        None => {
            // MongooseIM's default: 10 strong random bytes, hex-encoded.
            let mut b = [0u8; 10];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
            b.iter()
                .map(|x| format!("{x:02x}"))
                .collect::<String>()
                .into_bytes()
        }
    };
    let policy = S2sPolicy {
        default_allow: section.default_allow,
        hosts: section.host_policy.iter().cloned().collect(),
    };
    let mut cafiles: Vec<&Path> = Vec::new();
    for tls in config
        .s2s_listeners
        .iter()
        .filter_map(|l| l.tls.as_ref())
        .chain(outgoing.tls.as_ref())
    {
        if let Some(p) = &tls.cacertfile {
            cafiles.push(p);
        }
    }
    let roots = Arc::new(trusted_roots(&cafiles)?);
    let common = Arc::new(S2sConfig {
        hosts: config.hosts.clone(),
        secret,
        policy: policy.clone(),
        roots: roots.clone(),
        time: Arc::new(rustls::time_provider::DefaultTimeProvider),
        state_timeout: ms(outgoing.state_timeout_ms),
        stream_timeout: ms(outgoing.stream_timeout_ms),
    });

    let mut s2s = Vec::new();
    for l in &config.s2s_listeners {
        let (tls_mode, tls, verify) = match &l.tls {
            None => (TlsMode::None, None, VerifyMode::None),
            Some(t) => (
                t.mode,
                Some(Arc::new(s2s_identity(t, config, data_dir, self_signed)?)),
                t.verify_mode,
            ),
        };
        s2s.push(S2sListener {
            addr: l.addr,
            config: Arc::new(S2sInConfig {
                common: common.clone(),
                tls_mode,
                tls,
                verify,
                max_stanza_size: l.max_stanza_size,
                shaper_max_rate: l.shaper_max_rate,
                auth_timeout: auth_timeout(l.auth_timeout_ms),
            }),
            admission: Admission::new(l.limits),
        });
    }

    let mut components = Vec::new();
    for l in &config.components {
        let (tls_mode, tls) = match &l.tls {
            None => (TlsMode::None, None),
            Some(t) => {
                let (cert, key, what) = pem_of(&t.cert, config, data_dir, self_signed)?;
                let identity = TlsIdentity::from_pem(&cert, &key, &[])
                    .map_err(|source| SpecError::Tls { what, source })?;
                (t.mode, Some(Arc::new(identity)))
            }
        };
        components.push(ComponentListener {
            addr: l.addr,
            config: Arc::new(ComponentConfig {
                hosts: config.hosts.clone(),
                password: l.password.clone(),
                check_from: l.check_from,
                hidden: l.hidden_components,
                conflict: l.conflict,
                tls_mode,
                tls,
                max_stanza_size: l.max_stanza_size,
                shaper_max_rate: l.shaper_max_rate,
                handshake_timeout: auth_timeout(l.auth_timeout_ms),
            }),
            admission: Admission::new(l.limits),
        });
    }

    let client_tls = match &outgoing.tls {
        None => None,
        Some(t) => {
            let (cert, key, what) = pem_of(&t.cert, config, data_dir, self_signed)?;
            let tls = S2sClientTls::new(roots.clone(), t.verify_mode, Some((&cert, &key)))
                .map_err(|source| SpecError::Tls { what, source })?;
            Some(tls)
        }
    };
    meerkat_runtime_common::configure_dns(meerkat_runtime_common::DnsOptions {
        timeout: Duration::from_secs(outgoing.dns_timeout),
        attempts: outgoing.dns_retries as usize,
    });
    let mut addresses: HashMap<String, Vec<_>> = HashMap::new();
    for (host, ip, port) in &outgoing.address {
        addresses.entry(host.clone()).or_default().push((*ip, *port));
    }
    let out = S2sOutConfig {
        common,
        tls: client_tls,
        tls_required: outgoing
            .tls
            .as_ref()
            .is_some_and(|t| t.mode == TlsMode::StartTlsRequired),
        direct_tls: outgoing.tls.as_ref().is_some_and(|t| t.mode == TlsMode::Tls),
        port: outgoing.port,
        addresses,
        ip_versions: outgoing.ip_versions.clone(),
        connection_timeout: ms(outgoing.connection_timeout_ms),
        max_stanza_size: outgoing.max_stanza_size,
        shaper_max_rate: outgoing.shaper_max_rate,
    };
    Ok(Some(FederationSpec {
        router: RouterConfig {
            hosts: config.hosts.clone(),
            s2s: config.s2s.is_some() || !config.s2s_listeners.is_empty(),
            policy,
            max_retry_delay: Duration::from_secs(outgoing.max_retry_delay),
            max_queued_stanzas: outgoing.max_queued_stanzas,
        },
        s2s,
        components,
        outgoing: Arc::new(out),
        outgoing_max_send_queue: outgoing.max_send_queue_size,
    }))
}

/// A listener identity: with `verify_mode = "peer"` it asks peers for their
/// certificate (XEP-0178).
fn s2s_identity(
    tls: &S2sTls,
    config: &Config,
    data_dir: &Path,
    self_signed: &mut Option<PemPair>,
) -> Result<TlsIdentity, SpecError> {
    let alpn: &[&[u8]] = match tls.mode {
        TlsMode::Tls => &[ALPN_XMPP_SERVER],
        _ => &[],
    };
    let (cert, key, what) = pem_of(&tls.cert, config, data_dir, self_signed)?;
    let identity = match tls.verify_mode {
        VerifyMode::Peer => server_config_asking_certificates(&cert, &key, alpn),
        VerifyMode::None => TlsIdentity::from_pem(&cert, &key, alpn),
    };
    identity.map_err(|source| SpecError::Tls { what, source })
}

/// The OS's trusted CAs (as rustls-native-certs finds them) plus the `cacertfile`s.
fn trusted_roots(cafiles: &[&Path]) -> Result<RootCertStore, SpecError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::debug!(error = %e, "reading the OS certificate store");
    }
    let (added, _) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, "trusted CAs from the OS store");
    for path in cafiles {
        let pem = std::fs::read(path).map_err(|source| SpecError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|e| SpecError::CaFile {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        for c in certs {
            roots.add(c).map_err(|e| SpecError::CaFile {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        }
    }
    Ok(roots)
}
