//! From a validated [`Config`] to the runtime's [`ServerSpec`]: listeners with their
//! TLS identities, the hub settings and the opened storage.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use meerkat_engine::http::HttpConfig;
use meerkat_engine::hub::HubConfig;
use meerkat_engine::sasl::backoff::SharedAuthBackoff;
use meerkat_engine::stream::c2s::{C2sConfig, TlsMode};
use meerkat_engine::tls::{Resumption, TlsError, TlsIdentity};
use meerkat_runtime_common::{Admission, C2sListener, HttpListener, ServerSpec};

use crate::cert::{self, CertError, PemPair};
use crate::config::{CertSource, Config, ListenerTls, SessionTickets};
use crate::storage::{self, OpenError};

/// A listener's `auth_timeout`: the time a connection has to authenticate (and a
/// client to bind) before it gets `connection-timeout`; "infinity" is a century.
pub fn auth_timeout(ms: Option<u64>) -> Duration {
    ms.map_or(Duration::from_secs(100 * 365 * 24 * 3600), Duration::from_millis)
}

/// Whitespace keepalive interval of bound sessions (RFC 6120 §4.6.1).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);

/// The ALPN protocol of HTTPS listeners.
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// XEP-0368: the ALPN protocol of direct-TLS client connections.
const ALPN_XMPP_CLIENT: &[u8] = b"xmpp-client";

/// Why the server cannot be started with a valid config.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The database could not be opened.
    #[error(transparent)]
    Storage(#[from] OpenError),
    /// The self-signed certificate could not be read or generated.
    #[error("self-signed certificate: {0}")]
    SelfSigned(#[from] CertError),
    /// A certificate file could not be read (it was readable when the config was
    /// checked, so it changed since).
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `tls.cacertfile` holds no usable certificate.
    #[error("{}: {reason}", path.display())]
    CaFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the certificate and key.
    #[error("TLS identity from {what}: {source}")]
    Tls {
        /// Which certificate ("the self-signed certificate in ...", or the files).
        what: String,
        /// Why.
        source: TlsError,
    },
}

/// Builds everything the runtime needs; opens the database and, if a listener asks
/// for it, loads or generates the self-signed certificate in the config's data dir.
pub fn build(config: &Config) -> Result<ServerSpec, SpecError> {
    let data_dir = config.data_dir();
    let mut self_signed = None;
    let clients = ClientSettings::new(config);
    Ok(ServerSpec {
        c2s: c2s_listeners_with(config, &data_dir, &clients, &mut self_signed)?,
        http: http_listeners(config, &data_dir, &clients, &mut self_signed)?,
        federation: crate::federation_spec::build(config, &data_dir, &mut self_signed)?,
        hub: hub_config(config),
        storage: storage::open(&config.storage)?,
        threads: config
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
    })
}

/// What every client stream of one start shares, whatever its transport (TCP,
/// WebSocket, BOSH).
struct ClientSettings {
    /// One secret per start (see `C2sConfig::sasl_secret`): an unknown user's fake
    /// salt is the same on every listener.
    sasl_secret: [u8; 32],
    /// One count of failed authentications for the whole server.
    auth_backoff: Option<Arc<SharedAuthBackoff>>,
}

impl ClientSettings {
    fn new(config: &Config) -> Self {
        let mut sasl_secret = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut sasl_secret);
        Self {
            sasl_secret,
            auth_backoff: config.auth.backoff.map(|b| Arc::new(SharedAuthBackoff::new(b))),
        }
    }

    /// The settings of a client stream: the server's SASL mechanisms and modules,
    /// the listener's transport options.
    fn c2s_config(&self, config: &Config, listener: ClientListener) -> C2sConfig {
        C2sConfig {
            hosts: config.hosts.clone(),
            tls_mode: listener.tls_mode,
            tls: listener.tls,
            max_stanza_size: listener.max_stanza_size,
            shaper_max_rate: listener.shaper_max_rate,
            mechanisms: config.auth.sasl_mechanisms.clone(),
            registration: config.modules.register,
            auth_timeout: auth_timeout(listener.auth_timeout_ms),
            keepalive_interval: KEEPALIVE_INTERVAL,
            sasl_secret: self.sasl_secret,
            sm: config.modules.stream_management.clone(),
            carbons: config.modules.carbons,
            csi: config.modules.csi.clone(),
            fast: config.modules.fast_auth_token.clone(),
            auth_backoff: self.auth_backoff.clone(),
        }
    }
}

/// A listener's own part of its client streams' settings.
struct ClientListener {
    tls_mode: TlsMode,
    tls: Option<Arc<TlsIdentity>>,
    max_stanza_size: usize,
    shaper_max_rate: Option<u64>,
    auth_timeout_ms: Option<u64>,
}

/// The C2S listeners of `config`; a self-signed pair, if needed, lives in `data_dir`.
#[cfg(test)]
pub fn c2s_listeners(config: &Config, data_dir: &Path) -> Result<Vec<C2sListener>, SpecError> {
    c2s_listeners_with(config, data_dir, &ClientSettings::new(config), &mut None)
}

fn c2s_listeners_with(
    config: &Config,
    data_dir: &Path,
    clients: &ClientSettings,
    self_signed: &mut Option<PemPair>,
) -> Result<Vec<C2sListener>, SpecError> {
    let mut out = Vec::new();
    for listener in &config.c2s {
        let (tls_mode, tls) = match &listener.tls {
            None => (TlsMode::None, None),
            Some(t) => {
                let identity = identity(t, config, data_dir, self_signed)?;
                let identity = with_resumption(identity, t)?;
                (t.mode, Some(Arc::new(identity)))
            }
        };
        let own = ClientListener {
            tls_mode,
            tls,
            max_stanza_size: listener.max_stanza_size,
            shaper_max_rate: listener.shaper_max_rate,
            auth_timeout_ms: listener.auth_timeout_ms,
        };
        out.push(C2sListener {
            addr: listener.addr,
            config: Arc::new(clients.c2s_config(config, own)),
            admission: Admission::new(listener.limits),
        });
    }
    Ok(out)
}

/// The HTTP listeners of `config`. Their WebSocket and BOSH streams get the
/// server's SASL mechanisms and modules, and no shaper; WebSocket handlers set
/// their own `max_stanza_size`.
fn http_listeners(
    config: &Config,
    data_dir: &Path,
    clients: &ClientSettings,
    self_signed: &mut Option<PemPair>,
) -> Result<Vec<HttpListener>, SpecError> {
    let mut out = Vec::new();
    for listener in &config.http {
        let own = ClientListener {
            // The HTTP connection does TLS; the stream sees what it secures.
            tls_mode: TlsMode::None,
            tls: None,
            max_stanza_size: crate::config::DEFAULT_MAX_STANZA_SIZE,
            shaper_max_rate: None,
            auth_timeout_ms: listener.auth_timeout_ms,
        };
        let tls = match &listener.tls {
            None => None,
            Some(cert) => {
                let (cert, key, what) = pem_of(cert, config, data_dir, self_signed)?;
                let identity = TlsIdentity::from_pem(&cert, &key, &[ALPN_HTTP1])
                    .map_err(|source| SpecError::Tls { what, source })?;
                Some(Arc::new(identity))
            }
        };
        let mut http = HttpConfig::new(
            Arc::new(clients.c2s_config(config, own)),
            listener.handlers.clone(),
        );
        http.tls = tls;
        http.bosh = Arc::new(config.modules.bosh.clone().unwrap_or_default());
        out.push(HttpListener {
            addr: listener.addr,
            config: Arc::new(http),
            admission: Admission::new(listener.limits),
        });
    }
    Ok(out)
}

fn identity(
    tls: &ListenerTls,
    config: &Config,
    data_dir: &Path,
    self_signed: &mut Option<PemPair>,
) -> Result<TlsIdentity, SpecError> {
    // XEP-0368: direct TLS announces the protocol; STARTTLS runs inside XMPP already.
    let alpn: &[&[u8]] = match tls.mode {
        TlsMode::Tls => &[ALPN_XMPP_CLIENT],
        _ => &[],
    };
    let (cert, key, what) = pem_of(&tls.cert, config, data_dir, self_signed)?;
    TlsIdentity::from_pem(&cert, &key, alpn).map_err(|source| SpecError::Tls { what, source })
}

/// The PEM certificate chain and key of `source` (reading the files, or loading or
/// generating the self-signed pair in `data_dir` once), and how to name them in errors.
pub(crate) fn pem_of(
    source: &CertSource,
    config: &Config,
    data_dir: &Path,
    self_signed: &mut Option<PemPair>,
) -> Result<(Vec<u8>, Vec<u8>, String), SpecError> {
    match source {
        CertSource::Files { certfile, keyfile } => {
            let read = |path: &Path| {
                std::fs::read(path).map_err(|source| SpecError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            };
            let what = format!("{} and {}", certfile.display(), keyfile.display());
            Ok((read(certfile)?, read(keyfile)?, what))
        }
        CertSource::SelfSigned => {
            if self_signed.is_none() {
                let (pair, generated) = cert::load_or_generate(data_dir, &config.hosts)?;
                let cert_path = data_dir.join(cert::CERT_FILE);
                if generated {
                    tracing::warn!(
                        cert = %cert_path.display(),
                        "generated a self-signed certificate; clients will not trust it \
                         unless told to: set tls.certfile and tls.keyfile for production"
                    );
                } else {
                    tracing::info!(cert = %cert_path.display(), "using the self-signed certificate");
                }
                *self_signed = Some(pair);
            }
            let pair = self_signed.as_ref().expect("loaded above");
            let what = format!("the self-signed certificate in {}", data_dir.display());
            Ok((pair.cert_pem.clone(), pair.key_pem.clone(), what))
        }
    }
}

/// `tls.session_tickets` and `tls.early_data`. rustls accepts 0-RTT data only on
/// single-use tickets (RFC 8446 §8.1 anti-replay), so `"stateless"` with early data
/// gets those: the FAST `count` check is the second line against replays, across
/// restarts and servers.
fn with_resumption(identity: TlsIdentity, tls: &ListenerTls) -> Result<TlsIdentity, SpecError> {
    let resumption = match (tls.session_tickets, tls.early_data) {
        (None, _) => return Ok(identity),
        (Some(SessionTickets::Stateless), false) => Resumption::Stateless,
        (Some(SessionTickets::Stateless), true) => {
            tracing::info!(
                "tls.early_data: using single-use session tickets, the only kind rustls takes 0-RTT data on"
            );
            Resumption::SingleUse { early_data: true }
        }
        (Some(SessionTickets::Stateful), early_data) => Resumption::SingleUse { early_data },
    };
    identity
        .with_resumption(resumption)
        .map_err(|source| SpecError::Tls {
            what: "session tickets".into(),
            source,
        })
}

/// The hub's settings: hosts and which modules are on.
pub fn hub_config(config: &Config) -> HubConfig {
    let modules = &config.modules;
    HubConfig {
        hosts: config.hosts.clone(),
        offline_enabled: modules.offline.is_some(),
        offline_limit: modules.offline.as_ref().map_or(0, |o| o.max_messages),
        registration_enabled: modules.register,
        software_version: modules
            .version
            .as_ref()
            .map(|_| ("Meerkat".to_string(), env!("CARGO_PKG_VERSION").to_string())),
        version_os: modules
            .version
            .as_ref()
            .filter(|v| v.os_info)
            .map(|_| os_description()),
        federation: false,
        // The runtime shards the hub, one shard per thread.
        shard: 0,
        shards: 1,
        carbons_enabled: modules.carbons,
    }
}

/// XEP-0092 `<os/>`: the OS name and, on Linux, the kernel release.
fn os_description() -> String {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok();
    match release.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
        Some(r) => format!("{} {r}", std::env::consts::OS),
        None => std::env::consts::OS.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigOrigin, VersionConfig};

    fn alpn(l: &C2sListener) -> Vec<Vec<u8>> {
        l.config
            .tls
            .as_ref()
            .unwrap()
            .server_config
            .alpn_protocols
            .clone()
    }

    #[test]
    fn default_config_gives_starttls_and_direct_tls_on_one_generated_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::embedded_default().unwrap();
        let listeners = c2s_listeners(&config, dir.path()).unwrap();
        assert_eq!(listeners.len(), 2);
        assert_eq!(listeners[0].addr, "127.0.0.1:5222".parse().unwrap());
        assert_eq!(listeners[0].config.tls_mode, TlsMode::StartTls);
        assert!(alpn(&listeners[0]).is_empty());
        assert_eq!(listeners[1].addr, "127.0.0.1:5223".parse().unwrap());
        assert_eq!(listeners[1].config.tls_mode, TlsMode::Tls);
        assert_eq!(alpn(&listeners[1]), vec![b"xmpp-client".to_vec()]);
        // One certificate for both listeners.
        assert_eq!(
            listeners[0].config.tls.as_ref().unwrap().end_point_hash,
            listeners[1].config.tls.as_ref().unwrap().end_point_hash
        );
        assert!(dir.path().join("cert.pem").exists());
        let c = &listeners[0].config;
        assert_eq!(c.hosts, vec!["localhost"]);
        assert_eq!(c.mechanisms, config.auth.sasl_mechanisms);
        assert_eq!(c.max_stanza_size, 65536);
        assert_eq!(c.shaper_max_rate, None);
        assert!(!c.registration);
        assert_eq!(c.auth_timeout, Duration::from_secs(30));
        assert!(c.auth_backoff.is_some(), "on by default");
        assert_eq!(
            listeners[0].admission.limits(),
            meerkat_runtime_common::ConnectionLimits::default()
        );
        assert_eq!(c.keepalive_interval, KEEPALIVE_INTERVAL);

        // A second start reuses the same certificate.
        let again = c2s_listeners(&config, dir.path()).unwrap();
        assert_eq!(
            again[0].config.tls.as_ref().unwrap().end_point_hash,
            listeners[0].config.tls.as_ref().unwrap().end_point_hash
        );
    }

    #[test]
    fn listener_options_reach_the_c2s_config() {
        let dir = tempfile::tempdir().unwrap();
        let pair = cert::generate(&["example.com".into()]).unwrap();
        let (certfile, keyfile) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&certfile, &pair.cert_pem).unwrap();
        std::fs::write(&keyfile, &pair.key_pem).unwrap();
        let text = format!(
            "[general]\nhosts = [\"example.com\"]\n\
             [shaper.normal]\nmax_rate = 1000\n\
             [[listen.c2s]]\nport = 5222\nshaper = \"normal\"\nmax_stanza_size = \"infinity\"\n\
             tls.mode = \"starttls_required\"\ntls.certfile = {certfile:?}\ntls.keyfile = {keyfile:?}\n\
             [[listen.c2s]]\nport = 5280\n\
             [modules.mod_register]\n"
        );
        let config = Config::parse(&text, ConfigOrigin::File("t.toml".into())).unwrap();
        let data_dir = dir.path().join("data");
        let listeners = c2s_listeners(&config, &data_dir).unwrap();
        let tls = &listeners[0].config;
        assert_eq!(tls.tls_mode, TlsMode::StartTlsRequired);
        assert_eq!(tls.shaper_max_rate, Some(1000));
        assert_eq!(tls.max_stanza_size, usize::MAX);
        assert!(tls.registration);
        assert!(alpn(&listeners[0]).is_empty());
        let plain = &listeners[1].config;
        assert_eq!(plain.tls_mode, TlsMode::None);
        assert!(plain.tls.is_none());
        // Nothing asked for a self-signed certificate, so none was made.
        assert!(!data_dir.exists());
    }

    #[test]
    fn hub_config_follows_the_modules() {
        let mut config = Config::embedded_default().unwrap();
        let hub = hub_config(&config);
        assert_eq!(hub.hosts, vec!["localhost"]);
        assert!(hub.offline_enabled);
        assert_eq!(hub.offline_limit, crate::config::DEFAULT_OFFLINE_LIMIT);
        assert!(!hub.registration_enabled);
        assert_eq!(
            hub.software_version,
            Some(("Meerkat".into(), env!("CARGO_PKG_VERSION").into()))
        );
        assert_eq!(hub.version_os, None);

        config.modules.version = Some(VersionConfig { os_info: true });
        config.modules.offline = None;
        config.modules.register = true;
        let hub = hub_config(&config);
        assert!(!hub.offline_enabled);
        assert!(hub.registration_enabled);
        assert!(hub.version_os.unwrap().starts_with(std::env::consts::OS));

        config.modules.version = None;
        assert_eq!(hub_config(&config).software_version, None);
    }

    #[test]
    fn build_opens_the_configured_database() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::embedded_default().unwrap();
        config.storage.database = dir.path().join("db").join("m.db");
        config.c2s.clear();
        let spec = build(&config).unwrap();
        assert!(spec.c2s.is_empty());
        assert!(config.storage.database.exists());
    }
}
