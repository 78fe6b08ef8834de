use std::path::{Path, PathBuf};

use meerkat_engine::sasl::{Mechanism, ScramHash};
use std::time::Duration;

use meerkat_engine::http::{BoshConfig, Handler, Route, WebSocketOptions};
use meerkat_engine::stream::c2s::{CsiConfig, FastConfig, SmConfig, TlsMode};

use super::*;

const FILE: &str = "/etc/meerkat.toml";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, ConfigOrigin::File(FILE.into()))
}

/// The error message for `text`, which must be rejected.
fn error(text: &str) -> String {
    match parse(text) {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => e.to_string(),
    }
}

fn problem(text: &str) -> Problem {
    parse(text).expect_err("must be rejected").problem
}

const GENERAL: &str = "[general]\nhosts = [\"localhost\"]\n";

/// A minimal valid config followed by `rest`.
fn with(rest: &str) -> String {
    format!("{GENERAL}{rest}")
}

/// A usable PEM pair written into a fresh temporary directory.
fn pem_files() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let pair = crate::cert::generate(&["localhost".into()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, &pair.cert_pem).unwrap();
    std::fs::write(&key, &pair.key_pem).unwrap();
    (dir, cert, key)
}

fn scram(hash: ScramHash, plus: bool) -> Mechanism {
    Mechanism::Scram { hash, plus }
}

#[test]
fn embedded_default_serves_localhost_with_starttls_and_direct_tls() {
    let c = Config::embedded_default().unwrap();
    assert_eq!(c.origin, ConfigOrigin::Embedded);
    assert_eq!(c.hosts, vec!["localhost"]);
    assert_eq!(c.loglevel, None);
    let listeners: Vec<_> = c
        .c2s
        .iter()
        .map(|l| (l.addr.to_string(), l.tls.clone().map(|t| (t.mode, t.cert))))
        .collect();
    assert_eq!(
        listeners,
        vec![
            (
                "127.0.0.1:5222".to_string(),
                Some((TlsMode::StartTls, CertSource::SelfSigned))
            ),
            (
                "127.0.0.1:5223".to_string(),
                Some((TlsMode::Tls, CertSource::SelfSigned))
            ),
        ]
    );
    assert!(c.c2s.iter().all(|l| l.max_stanza_size == DEFAULT_MAX_STANZA_SIZE));
    assert_eq!(c.auth.methods, vec![AuthMethod::Internal]);
    assert_eq!((c.runtime, c.threads), (RuntimeKind::Tokio, None));
    assert_eq!(
        c.auth.sasl_mechanisms,
        vec![
            scram(ScramHash::Sha512, true),
            scram(ScramHash::Sha256, true),
            scram(ScramHash::Sha1, true),
            scram(ScramHash::Sha512, false),
            scram(ScramHash::Sha256, false),
            scram(ScramHash::Sha1, false),
            Mechanism::Plain,
        ]
    );
    assert_eq!(c.storage.database, Path::new("meerkat-data/meerkat.db"));
    assert_eq!(
        c.modules.offline,
        Some(OfflineConfig {
            max_messages: DEFAULT_OFFLINE_LIMIT
        })
    );
    assert!(!c.modules.register);
    assert_eq!(c.modules.version, Some(VersionConfig { os_info: false }));
    let http: Vec<(String, Vec<&str>)> = c
        .http
        .iter()
        .map(|l| {
            (
                l.addr.to_string(),
                l.handlers.iter().map(|h| h.path.as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(
        http,
        vec![
            ("127.0.0.1:5280".to_string(), vec!["/http-bind", "/ws-xmpp"]),
            ("127.0.0.1:9091".to_string(), vec!["/metrics"]),
        ]
    );
    assert!(c.http.iter().all(|l| l.tls.is_none()));
    assert_eq!(c.modules.bosh, Some(BoshConfig::default()));
}

#[test]
fn example_config_parses_to_the_expected_structures() {
    let (_dir, cert, key) = pem_files();
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/meerkat.toml"))
        .unwrap()
        .replace("/etc/meerkat/cert.pem", cert.to_str().unwrap())
        .replace("/etc/meerkat/key.pem", key.to_str().unwrap())
        .replace("/etc/meerkat/ca.pem", cert.to_str().unwrap());
    let c = Config::parse(&text, ConfigOrigin::File("meerkat.toml".into())).unwrap();
    let files = CertSource::Files {
        certfile: cert.clone(),
        keyfile: key.clone(),
    };
    use meerkat_engine::stream::component::ConflictBehaviour;
    use meerkat_engine::stream::s2s::VerifyMode;
    use meerkat_engine::stream::s2s_out::IpVersion;
    let expected = Config {
        origin: ConfigOrigin::File("meerkat.toml".into()),
        hosts: vec!["example.com".into(), "chat.example.org".into()],
        loglevel: Some(LogLevel::Warning),
        runtime: RuntimeKind::Tokio,
        threads: Some(4),
        log_format: LogFormat::Text,
        http: vec![
            HttpListenerConfig {
                addr: "0.0.0.0:5280".parse().unwrap(),
                tls: Some(files.clone()),
                handlers: vec![
                    Route {
                        host: None,
                        path: "/http-bind".into(),
                        handler: Handler::Bosh,
                    },
                    Route {
                        host: None,
                        path: "/ws-xmpp".into(),
                        handler: Handler::WebSocket(WebSocketOptions {
                            timeout: Some(Duration::from_secs(600)),
                            ping_rate: Some(Duration::from_secs(30)),
                            max_stanza_size: 65536,
                        }),
                    },
                ],
                limits: ConnectionLimits::default(),
                auth_timeout_ms: Some(crate::config::DEFAULT_AUTH_TIMEOUT_MS),
            },
            HttpListenerConfig {
                addr: "127.0.0.1:9091".parse().unwrap(),
                tls: None,
                handlers: vec![Route {
                    host: None,
                    path: "/metrics".into(),
                    handler: Handler::Prometheus,
                }],
                limits: ConnectionLimits::default(),
                auth_timeout_ms: Some(crate::config::DEFAULT_AUTH_TIMEOUT_MS),
            },
        ],
        c2s: vec![
            C2sListenerConfig {
                addr: "0.0.0.0:5222".parse().unwrap(),
                shaper_max_rate: Some(1000),
                max_stanza_size: 65536,
                tls: Some(ListenerTls {
                    mode: TlsMode::StartTlsRequired,
                    cert: files.clone(),
                    early_data: false,
                    session_tickets: None,
                }),
                limits: ConnectionLimits {
                    max_connections: Some(10_000),
                    max_connections_per_ip: Some(100),
                    backlog: 1024,
                    max_send_queue: Some(1_048_576),
                },
                auth_timeout_ms: Some(30_000),
            },
            C2sListenerConfig {
                addr: "[::]:5223".parse().unwrap(),
                shaper_max_rate: Some(50_000),
                max_stanza_size: usize::MAX,
                tls: Some(ListenerTls {
                    mode: TlsMode::Tls,
                    cert: files.clone(),
                    early_data: true,
                    session_tickets: Some(SessionTickets::Stateless),
                }),
                limits: ConnectionLimits::default(),
                auth_timeout_ms: Some(30_000),
            },
            C2sListenerConfig {
                addr: "127.0.0.1:15222".parse().unwrap(),
                shaper_max_rate: None,
                max_stanza_size: 65536,
                tls: None,
                limits: ConnectionLimits::default(),
                auth_timeout_ms: Some(30_000),
            },
        ],
        auth: AuthConfig {
            methods: vec![AuthMethod::Rdbms],
            sasl_mechanisms: vec![
                scram(ScramHash::Sha512, true),
                scram(ScramHash::Sha256, true),
                scram(ScramHash::Sha512, false),
                scram(ScramHash::Sha256, false),
                Mechanism::Plain,
            ],
            backoff: Some(BackoffConfig {
                after_failures: 5,
                initial_delay: Duration::from_secs(1),
                max_delay: Duration::from_secs(300),
            }),
        },
        storage: StorageConfig {
            database: "/var/lib/meerkat/meerkat.db".into(),
        },
        modules: ModulesConfig {
            offline: Some(OfflineConfig { max_messages: 1000 }),
            register: true,
            version: Some(VersionConfig { os_info: true }),
            roster: true,
            disco: true,
            ping: true,
            stream_management: Some(SmConfig {
                buffer_max: Some(100),
                ack_freq: Some(1),
                resume_timeout: Duration::from_secs(600),
            }),
            carbons: true,
            csi: Some(CsiConfig { buffer_max: 20 }),
            fast_auth_token: Some(FastConfig {
                access: Duration::from_secs(3 * 86_400),
                rotate_before_expire: Duration::from_secs(6 * 3600),
            }),
            bosh: Some(BoshConfig {
                inactivity: Duration::from_secs(30),
                max_wait: Duration::from_secs(60),
                max_pause: Duration::from_secs(120),
            }),
        },
        s2s_listeners: vec![S2sListenerConfig {
            addr: "0.0.0.0:5269".parse().unwrap(),
            shaper_max_rate: Some(50_000),
            max_stanza_size: 131072,
            tls: Some(S2sTls {
                mode: TlsMode::StartTls,
                cert: files.clone(),
                cacertfile: Some(cert.clone()),
                verify_mode: VerifyMode::Peer,
            }),
            limits: ConnectionLimits {
                max_connections: Some(1000),
                ..ConnectionLimits::default()
            },
            auth_timeout_ms: Some(60_000),
        }],
        components: vec![ComponentListenerConfig {
            addr: "127.0.0.1:8888".parse().unwrap(),
            shaper_max_rate: Some(50_000),
            max_stanza_size: 65536,
            password: "secret".into(),
            check_from: true,
            hidden_components: false,
            conflict: ConflictBehaviour::Disconnect,
            tls: Some(ListenerTls {
                mode: TlsMode::StartTls,
                cert: files.clone(),
                early_data: false,
                session_tickets: None,
            }),
            limits: ConnectionLimits {
                max_connections_per_ip: Some(4),
                ..ConnectionLimits::default()
            },
            auth_timeout_ms: Some(10_000),
        }],
        s2s: Some(FederationConfig {
            default_allow: true,
            host_policy: vec![("spam.example.net".into(), false)],
            shared: Some("dialback-secret".into()),
            outgoing: OutgoingConfig {
                address: vec![(
                    "partner.example.net".into(),
                    "192.0.2.10".parse().unwrap(),
                    Some(5270),
                )],
                connection_timeout_ms: Some(10_000),
                dns_timeout: 10,
                dns_retries: 2,
                ip_versions: vec![IpVersion::V4, IpVersion::V6],
                max_retry_delay: 300,
                max_stanza_size: 131072,
                port: 5269,
                shaper_max_rate: Some(1000),
                state_timeout_ms: Some(5000),
                stream_timeout_ms: Some(600_000),
                max_queued_stanzas: 1000,
                max_send_queue_size: Some(1_048_576),
                tls: Some(S2sTls {
                    mode: TlsMode::StartTls,
                    cert: files,
                    cacertfile: Some(cert.clone()),
                    verify_mode: VerifyMode::Peer,
                }),
            },
        }),
    };
    assert_eq!(c, expected);
}

#[test]
fn minimal_config_takes_the_documented_defaults() {
    let c = parse(&with("[[listen.c2s]]\nport = 5222\n")).unwrap();
    assert_eq!(c.c2s.len(), 1);
    assert_eq!(c.c2s[0].addr, "0.0.0.0:5222".parse().unwrap());
    assert_eq!(c.c2s[0].tls, None);
    assert_eq!(c.c2s[0].shaper_max_rate, None);
    assert_eq!(c.c2s[0].max_stanza_size, 65536);
    assert_eq!(c.auth.methods, vec![AuthMethod::Internal]);
    assert_eq!(c.auth.sasl_mechanisms.len(), 7);
    assert_eq!(c.storage.database, Path::new("meerkat-data/meerkat.db"));
    assert_eq!(c.modules.offline, None);
    assert_eq!(c.modules.version, None);
}

#[test]
fn hosts_are_prepared_and_tls_mode_defaults_to_starttls() {
    let c = parse("[general]\nhosts = [\"Example.COM\"]\n[[listen.c2s]]\nport = 5222\ntls = {}\n").unwrap();
    assert_eq!(c.hosts, vec!["example.com"]);
    assert_eq!(
        c.c2s[0].tls,
        Some(ListenerTls {
            mode: TlsMode::StartTls,
            cert: CertSource::SelfSigned,
            early_data: false,
            session_tickets: None,
        })
    );
}

#[test]
fn unreadable_file_names_the_file() {
    let e = Config::load(Path::new("/nonexistent/meerkat.toml")).unwrap_err();
    assert!(matches!(e.problem, Problem::Unreadable(_)));
    assert_eq!(
        e.to_string(),
        "config error in /nonexistent/meerkat.toml: cannot read the file: No such file or directory (os error 2)"
    );
}

#[test]
fn syntax_error_names_the_line() {
    let e = parse("[general]\nhosts = [\"localhost\"\nloglevel = \"info\"\n").unwrap_err();
    assert!(matches!(e.problem, Problem::Syntax(_)), "{e}");
    assert!(
        e.to_string().starts_with("config error in /etc/meerkat.toml:"),
        "{e}"
    );
    assert!(e.line.is_some());
}

#[test]
fn unknown_section_lists_the_known_ones() {
    assert_eq!(
        error(&with("[acl]\nlocal = []\n")),
        "config error in /etc/meerkat.toml:3: acl: unknown option \
         (expected one of: general, listen, shaper, auth, outgoing_pools, modules, s2s)"
    );
}

#[test]
fn unknown_listener_option_names_its_path_and_line() {
    assert_eq!(
        error(&with(
            "[[listen.c2s]]\nport = 5222\n\n[[listen.c2s]]\nport = 5223\nnum_acceptors = 10\n"
        )),
        "config error in /etc/meerkat.toml:8: listen.c2s[1].num_acceptors: unknown option \
         (expected one of: port, ip_address, shaper, max_stanza_size, tls, backlog, max_connections, \
         max_connections_per_ip, max_send_queue_size, auth_timeout)"
    );
}

#[test]
fn listener_limits_are_read_on_every_listener_type() {
    let c = parse(&with(
        "[[listen.c2s]]\nport = 5222\nmax_connections = 3\nmax_connections_per_ip = 2\nbacklog = 16\n\
         auth_timeout = 2500\nmax_send_queue_size = \"infinity\"\n\
         [[listen.s2s]]\nport = 5269\nmax_connections = \"infinity\"\nauth_timeout = \"infinity\"\n\
         [[listen.component]]\nport = 8888\npassword = \"s\"\nmax_connections_per_ip = 1\nauth_timeout = 100\n",
    ))
    .unwrap();
    assert_eq!(
        c.c2s[0].limits,
        ConnectionLimits {
            max_connections: Some(3),
            max_connections_per_ip: Some(2),
            backlog: 16,
            max_send_queue: None,
        }
    );
    assert_eq!(c.c2s[0].auth_timeout_ms, Some(2500));
    assert_eq!(c.s2s_listeners[0].limits, ConnectionLimits::default());
    assert_eq!(c.s2s_listeners[0].auth_timeout_ms, None);
    assert_eq!(c.components[0].limits.max_connections_per_ip, Some(1));
    assert_eq!(c.components[0].auth_timeout_ms, Some(100));
}

#[test]
fn bad_limits_name_their_option_path() {
    let e = error(&with("[[listen.c2s]]\nport = 5222\nmax_connections = 0\n"));
    assert!(
        e.contains("listen.c2s[0].max_connections: expected a positive integer or \"infinity\""),
        "{e}"
    );
    let e = error(&with(
        "[[listen.s2s]]\nport = 5269\nmax_connections_per_ip = \"many\"\n",
    ));
    assert!(
        e.contains("listen.s2s[0].max_connections_per_ip: expected a positive integer"),
        "{e}"
    );
    let e = error(&with(
        "[[listen.component]]\nport = 8888\npassword = \"s\"\nbacklog = -1\n",
    ));
    assert!(
        e.contains("listen.component[0].backlog: expected a positive integer"),
        "{e}"
    );
    let e = error(&with("[[listen.c2s]]\nport = 5222\nauth_timeout = \"never\"\n"));
    assert!(
        e.contains("listen.c2s[0].auth_timeout: expected a positive integer (milliseconds)"),
        "{e}"
    );
    let e = error(&with("[[listen.c2s]]\nport = 5222\nmax_send_queue_size = 0\n"));
    assert!(
        e.contains("listen.c2s[0].max_send_queue_size: expected a positive integer (bytes)"),
        "{e}"
    );
    let e = error(&with("[s2s.outgoing]\nmax_queued_stanzas = 0\n"));
    assert!(
        e.contains("s2s.outgoing.max_queued_stanzas: expected a positive integer"),
        "{e}"
    );
}

#[test]
fn the_auth_backoff_is_on_by_default_and_can_be_turned_off() {
    let c = parse(GENERAL).unwrap();
    assert_eq!(c.auth.backoff, Some(BackoffConfig::default()));
    let c = parse(&with("[auth]\nbackoff.after_failures = \"infinity\"\n")).unwrap();
    assert_eq!(c.auth.backoff, None);
    let c = parse(&with(
        "[auth]\nbackoff.after_failures = 2\nbackoff.initial_delay = 50\n",
    ))
    .unwrap();
    assert_eq!(
        c.auth.backoff,
        Some(BackoffConfig {
            after_failures: 2,
            initial_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(300),
        })
    );
    let e = error(&with(
        "[auth]\nbackoff.initial_delay = 5000\nbackoff.max_delay = 10\n",
    ));
    assert!(
        e.contains("auth.backoff.max_delay: expected max_delay at least initial_delay"),
        "{e}"
    );
    let e = error(&with("[auth]\nbackoff.delay = 5\n"));
    assert!(e.contains("auth.backoff.delay: unknown option"), "{e}");
}

#[test]
fn unknown_tls_option() {
    assert_eq!(
        error(&with("[[listen.c2s]]\nport = 5222\ntls.verify_mode = \"none\"\n")),
        "config error in /etc/meerkat.toml:5: listen.c2s[0].tls.verify_mode: unknown option \
         (expected one of: mode, certfile, keyfile, early_data, session_tickets)"
    );
}

#[test]
fn bad_tls_mode_lists_the_choices() {
    let text = with("[[listen.c2s]]\nport = 5222\ntls.mode = \"foo\"\n");
    assert!(matches!(problem(&text), Problem::BadValue { .. }));
    assert_eq!(
        error(&text),
        "config error in /etc/meerkat.toml:5: listen.c2s[0].tls.mode: \
         expected one of \"starttls\", \"starttls_required\", \"tls\", got the string \"foo\""
    );
}

#[test]
fn wrong_type_says_what_was_found() {
    let text = with("[[listen.c2s]]\nport = \"5222\"\n");
    assert!(matches!(problem(&text), Problem::WrongType { .. }));
    assert_eq!(
        error(&text),
        "config error in /etc/meerkat.toml:4: listen.c2s[0].port: \
         expected a port number from 1 to 65535, got the string \"5222\""
    );
    assert_eq!(
        error(&with("[modules.mod_version]\nos_info = \"yes\"\n")),
        "config error in /etc/meerkat.toml:4: modules.mod_version.os_info: \
         expected a boolean (true or false), got the string \"yes\""
    );
    assert_eq!(
        error(&with("[listen.c2s]\nport = 5222\n")),
        "config error in /etc/meerkat.toml:3: listen.c2s: \
         expected an array of tables ([[listen.c2s]]), got a table"
    );
}

#[test]
fn out_of_range_values_are_rejected() {
    assert_eq!(
        error(&with("[[listen.c2s]]\nport = 70000\n")),
        "config error in /etc/meerkat.toml:4: listen.c2s[0].port: \
         expected a port number from 1 to 65535, got the integer 70000"
    );
    assert_eq!(
        error(&with("[[listen.c2s]]\nport = 5222\nmax_stanza_size = 0\n")),
        "config error in /etc/meerkat.toml:5: listen.c2s[0].max_stanza_size: \
         expected a positive integer (bytes) or \"infinity\", got the integer 0"
    );
    assert_eq!(
        error(&with("[[listen.c2s]]\nport = 5222\nmax_stanza_size = \"huge\"\n")),
        "config error in /etc/meerkat.toml:5: listen.c2s[0].max_stanza_size: \
         expected a positive integer (bytes) or \"infinity\", got the string \"huge\""
    );
    assert_eq!(
        error(&with("[modules.mod_offline]\nmax_messages = -1\n")),
        "config error in /etc/meerkat.toml:4: modules.mod_offline.max_messages: \
         expected a non-negative integer, got the integer -1"
    );
    assert_eq!(
        error(&with("[shaper.normal]\nmax_rate = 0\n")),
        "config error in /etc/meerkat.toml:4: shaper.normal.max_rate: \
         expected a positive integer (bytes per second), got the integer 0"
    );
    assert_eq!(
        error(&with("[[listen.c2s]]\nport = 5222\nip_address = \"localhost\"\n")),
        "config error in /etc/meerkat.toml:5: listen.c2s[0].ip_address: \
         expected an IP address, e.g. \"0.0.0.0\" or \"::\", got the string \"localhost\""
    );
}

#[test]
fn missing_required_options_are_named() {
    let text = "[[listen.c2s]]\nport = 5222\n";
    assert!(matches!(problem(text), Problem::Missing { .. }));
    assert_eq!(
        error(text),
        "config error in /etc/meerkat.toml:1: general: \
         required option is missing (expected a table with at least `hosts`)"
    );
    assert_eq!(
        error("[general]\nloglevel = \"info\"\n"),
        "config error in /etc/meerkat.toml:1: general.hosts: required option is missing \
         (expected a non-empty array of domain names, e.g. [\"example.com\"])"
    );
    assert_eq!(
        error(&with("\n[[listen.c2s]]\nip_address = \"::1\"\n")),
        "config error in /etc/meerkat.toml:4: listen.c2s[0].port: \
         required option is missing (expected a port number from 1 to 65535)"
    );
    assert_eq!(
        error(&with("[shaper.normal]\n")),
        "config error in /etc/meerkat.toml:3: shaper.normal.max_rate: \
         required option is missing (expected a positive integer (bytes per second))"
    );
    assert_eq!(
        error(&with(
            "[outgoing_pools.rdbms.default.connection]\ndatabase = \"x.db\"\n"
        )),
        "config error in /etc/meerkat.toml:3: outgoing_pools.rdbms.default.connection.driver: \
         required option is missing (expected \"sqlite\")"
    );
}

#[test]
fn hosts_must_be_distinct_domains() {
    assert_eq!(
        error("[general]\nhosts = []\n"),
        "config error in /etc/meerkat.toml:2: general.hosts: \
         expected a non-empty array of domain names, e.g. [\"example.com\"], got an empty array"
    );
    assert_eq!(
        error("[general]\nhosts = [\"a@b\"]\n"),
        "config error in /etc/meerkat.toml:2: general.hosts[0]: \
         expected a domain name, got the string \"a@b\""
    );
    assert_eq!(
        error("[general]\nhosts = [\"a.org\", \"A.org\"]\n"),
        "config error in /etc/meerkat.toml:2: general.hosts[1]: host \"a.org\" is listed twice"
    );
}

#[test]
fn bad_loglevel() {
    assert_eq!(
        error("[general]\nhosts = [\"a.org\"]\nloglevel = \"verbose\"\n"),
        "config error in /etc/meerkat.toml:3: general.loglevel: expected one of \"none\", \
         \"emergency\", \"alert\", \"critical\", \"error\", \"warning\", \"notice\", \"info\", \
         \"debug\", \"all\", got the string \"verbose\""
    );
}

#[test]
fn shaper_must_be_defined() {
    assert_eq!(
        error(&with(
            "[shaper.normal]\nmax_rate = 1000\n[[listen.c2s]]\nport = 5222\nshaper = \"fast\"\n"
        )),
        "config error in /etc/meerkat.toml:7: listen.c2s[0].shaper: expected the name of a \
         [shaper.NAME] section (\"normal\") or \"none\", got the string \"fast\""
    );
    assert_eq!(
        error(&with("[[listen.c2s]]\nport = 5222\nshaper = \"fast\"\n")),
        "config error in /etc/meerkat.toml:5: listen.c2s[0].shaper: expected \"none\" \
         (no [shaper.NAME] section is defined), got the string \"fast\""
    );
    let c = parse(&with("[[listen.c2s]]\nport = 5222\nshaper = \"none\"\n")).unwrap();
    assert_eq!(c.c2s[0].shaper_max_rate, None);
}

#[test]
fn listeners_cannot_share_an_address() {
    let text = with("[[listen.c2s]]\nport = 5222\n[[listen.c2s]]\nport = 5222\nip_address = \"0.0.0.0\"\n");
    assert!(matches!(problem(&text), Problem::Conflict(_)));
    assert_eq!(
        error(&text),
        "config error in /etc/meerkat.toml:5: listen.c2s[1]: \
         address 0.0.0.0:5222 is already used by listen.c2s[0]"
    );
}

#[test]
fn certfile_needs_keyfile() {
    let (_dir, cert, _key) = pem_files();
    assert_eq!(
        error(&with(&format!(
            "[[listen.c2s]]\nport = 5222\n[listen.c2s.tls]\nmode = \"tls\"\ncertfile = {cert:?}\n"
        ))),
        "config error in /etc/meerkat.toml:5: listen.c2s[0].tls.keyfile: required option is missing \
         (expected the PEM private key that goes with tls.certfile)"
    );
}

#[test]
fn missing_certificate_file_names_the_file_and_option() {
    let (_dir, _cert, key) = pem_files();
    let text = with(&format!(
        "[[listen.c2s]]\nport = 5222\ntls.certfile = \"/nonexistent/cert.pem\"\ntls.keyfile = {key:?}\n"
    ));
    assert!(matches!(problem(&text), Problem::File { .. }));
    assert_eq!(
        error(&text),
        "config error in /etc/meerkat.toml:5: listen.c2s[0].tls.certfile: cannot use \
         \"/nonexistent/cert.pem\": No such file or directory (os error 2)"
    );
}

#[test]
fn unusable_pem_files_name_the_file_at_fault() {
    let (dir, cert, key) = pem_files();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a pem file\n").unwrap();
    let listener = |c: &Path, k: &Path| {
        with(&format!(
            "[[listen.c2s]]\nport = 5222\ntls.certfile = {c:?}\ntls.keyfile = {k:?}\n"
        ))
    };
    let e = parse(&listener(&garbage, &key)).unwrap_err();
    assert_eq!(e.path, "listen.c2s[0].tls.certfile", "{e}");
    assert!(e.to_string().contains("no usable certificate"), "{e}");
    let e = parse(&listener(&cert, &garbage)).unwrap_err();
    assert_eq!(e.path, "listen.c2s[0].tls.keyfile", "{e}");
    assert!(e.to_string().contains("no usable private key"), "{e}");
    // A key that does not belong to the certificate.
    let (_other_dir, _other_cert, other_key) = pem_files();
    let e = parse(&listener(&cert, &other_key)).unwrap_err();
    assert!(matches!(e.problem, Problem::File { .. }), "{e}");
    assert!(parse(&listener(&cert, &key)).is_ok());
}

#[test]
fn auth_accepts_one_supported_method_and_known_mechanisms() {
    assert_eq!(
        error(&with("[auth]\nmethods = [\"ldap\"]\n")),
        "config error in /etc/meerkat.toml:4: auth.methods[0]: \
         expected one of \"internal\", \"rdbms\", got the string \"ldap\""
    );
    assert_eq!(
        error(&with("[auth]\nmethods = [\"internal\", \"rdbms\"]\n")),
        "config error in /etc/meerkat.toml:4: auth.methods: \
         expected [\"internal\"] or [\"rdbms\"], got an array of 2 elements"
    );
    assert_eq!(
        error(&with(
            "[auth]\nsasl_mechanisms = [\"scram_sha256\", \"scram_sha384\"]\n"
        )),
        "config error in /etc/meerkat.toml:4: auth.sasl_mechanisms[1]: expected one of \
         \"scram_sha512_plus\", \"scram_sha256_plus\", \"scram_sha1_plus\", \"scram_sha512\", \
         \"scram_sha256\", \"scram_sha1\", \"plain\", got the string \"scram_sha384\""
    );
    assert_eq!(
        error(&with("[auth]\nsasl_mechanisms = [\"plain\", \"plain\"]\n")),
        "config error in /etc/meerkat.toml:4: auth.sasl_mechanisms[1]: \"plain\" is listed twice"
    );
    assert!(error(&with("[auth]\nsasl_mechanisms = []\n")).ends_with("got an empty array"));
    let c = parse(&with("[auth]\nsasl_mechanisms = [\"plain\", \"scram_sha1\"]\n")).unwrap();
    assert_eq!(
        c.auth.sasl_mechanisms,
        vec![Mechanism::Plain, scram(ScramHash::Sha1, false)]
    );
}

#[test]
fn storage_is_sqlite_only() {
    assert_eq!(
        error(&with(
            "[outgoing_pools.rdbms.default.connection]\ndriver = \"pgsql\"\nhost = \"db\"\n"
        )),
        "config error in /etc/meerkat.toml:5: outgoing_pools.rdbms.default.connection.host: \
         unknown option (expected one of: driver, database)"
    );
    assert_eq!(
        error(&with(
            "[outgoing_pools.rdbms.default.connection]\ndriver = \"pgsql\"\n"
        )),
        "config error in /etc/meerkat.toml:4: outgoing_pools.rdbms.default.connection.driver: \
         expected one of \"sqlite\", got the string \"pgsql\""
    );
    assert_eq!(
        error(&with(
            "[outgoing_pools.redis.global_distrib]\nscope = \"global\"\n"
        )),
        "config error in /etc/meerkat.toml:3: outgoing_pools.redis: unknown option (expected one of: rdbms)"
    );
    let c = parse(&with(
        "[outgoing_pools.rdbms.default.connection]\ndriver = \"sqlite\"\ndatabase = \"/srv/x.db\"\n",
    ))
    .unwrap();
    assert_eq!(c.storage.database, Path::new("/srv/x.db"));
}

#[test]
fn modules_are_known_and_strict() {
    assert_eq!(
        error(&with("[modules.mod_mam]\n")),
        "config error in /etc/meerkat.toml:3: modules.mod_mam: unknown option (expected one of: \
         mod_bosh, mod_carbons, mod_csi, mod_disco, mod_fast_auth_token, mod_offline, mod_ping, mod_register, \
         mod_roster, mod_stream_management, mod_version)"
    );
    assert_eq!(
        error(&with("[modules.mod_register]\nwelcome_message = \"hi\"\n")),
        "config error in /etc/meerkat.toml:4: modules.mod_register.welcome_message: \
         unknown option (this section takes no options)"
    );
    let c = parse(&with(
        "[modules.mod_register]\n[modules.mod_offline]\nmax_messages = 0\n",
    ))
    .unwrap();
    assert!(c.modules.register);
    assert_eq!(c.modules.offline, Some(OfflineConfig { max_messages: 0 }));
}

#[test]
fn quoted_keys_are_quoted_in_paths() {
    assert_eq!(
        error(&with("[shaper.\"a.b\"]\nmax_rate = \"x\"\n")),
        "config error in /etc/meerkat.toml:4: shaper.\"a.b\".max_rate: \
         expected a positive integer (bytes per second), got the string \"x\""
    );
}

#[test]
fn integers_may_use_underscores_and_other_bases() {
    let c = parse(&with(
        "[shaper.s]\nmax_rate = 0x10\n[[listen.c2s]]\nport = 5222\nshaper = \"s\"\n\
         [modules.mod_offline]\nmax_messages = 1_000\n",
    ))
    .unwrap();
    assert_eq!(c.c2s[0].shaper_max_rate, Some(16));
    assert_eq!(c.modules.offline, Some(OfflineConfig { max_messages: 1000 }));
}

#[test]
fn runtime_and_threads_are_checked() {
    let err = |text: &str| {
        Config::parse(text, ConfigOrigin::File("m.toml".into()))
            .unwrap_err()
            .to_string()
    };
    let e = err("[general]\nhosts = [\"a.example\"]\nruntime = \"async-std\"\n");
    assert!(
        e.contains("m.toml:3")
            && e.contains("general.runtime")
            && e.contains("\"tokio\", \"smol\", \"glommio\""),
        "{e}"
    );
    let e = err("[general]\nhosts = [\"a.example\"]\nthreads = 0\n");
    assert!(e.contains("m.toml:3") && e.contains("general.threads"), "{e}");
    let c = Config::parse(
        "[general]\nhosts = [\"a.example\"]\nruntime = \"smol\"\nthreads = 3\n",
        ConfigOrigin::Embedded,
    )
    .unwrap();
    assert_eq!((c.runtime, c.threads), (RuntimeKind::Smol, Some(3)));
}

#[test]
fn session_modules_take_mongooseim_options() {
    let c = parse(&with(
        "[modules.mod_stream_management]\nbuffer_max = \"infinity\"\nack_freq = \"never\"\nresume_timeout = 30\n\
         [modules.mod_csi]\nbuffer_max = 5\n\
         [modules.mod_fast_auth_token]\nvalidity_period.access = {value = 2, unit = \"hours\"}\n\
         validity_period.rotate_before_expire = {value = 15, unit = \"minutes\"}\n",
    ))
    .unwrap();
    assert_eq!(
        c.modules.stream_management,
        Some(SmConfig {
            buffer_max: None,
            ack_freq: None,
            resume_timeout: Duration::from_secs(30)
        })
    );
    assert_eq!(c.modules.csi, Some(CsiConfig { buffer_max: 5 }));
    assert_eq!(
        c.modules.fast_auth_token,
        Some(FastConfig {
            access: Duration::from_secs(7200),
            rotate_before_expire: Duration::from_secs(900)
        })
    );
    assert!(!c.modules.carbons);
    let e = error(&with(
        "[modules.mod_fast_auth_token]\nvalidity_period.access = {value = 2, unit = \"weeks\"}\n",
    ));
    assert!(
        e.contains("modules.mod_fast_auth_token.validity_period.access.unit"),
        "{e}"
    );
    let e = error(&with("[modules.mod_stream_management]\nbuffer_max = 0\n"));
    assert!(e.contains("buffer_max"), "{e}");
}

#[test]
fn early_data_needs_tickets_and_direct_tls() {
    let e = error(&with(
        "[[listen.c2s]]\nport = 5223\ntls.mode = \"tls\"\ntls.early_data = true\n",
    ));
    assert!(e.contains("listen.c2s[0].tls.session_tickets"), "{e}");
    let e = error(&with(
        "[[listen.c2s]]\nport = 5222\ntls.session_tickets = \"stateless\"\ntls.early_data = true\n",
    ));
    assert!(e.contains("listen.c2s[0].tls.early_data"), "{e}");
    let c = parse(&with(
        "[[listen.c2s]]\nport = 5223\ntls.mode = \"tls\"\ntls.session_tickets = \"stateful\"\ntls.early_data = true\n",
    ))
    .unwrap();
    let tls = c.c2s[0].tls.clone().unwrap();
    assert!(tls.early_data);
    assert_eq!(tls.session_tickets, Some(SessionTickets::Stateful));
}

#[test]
fn http_listener_handlers_take_mongooseim_options() {
    let c = parse(&with(
        "[[listen.http]]\nport = 5280\n\
         [[listen.http.handlers.mongoose_websocket_handler]]\nhost = \"Example.com\"\npath = \"/ws\"\n\
         timeout = \"infinity\"\nmax_stanza_size = \"infinity\"\n\
         [[listen.http.handlers.mongoose_prometheus_handler]]\nhost = \"_\"\npath = \"/metrics\"\n",
    ))
    .unwrap();
    assert_eq!(c.http.len(), 1);
    assert_eq!(c.http[0].addr, "0.0.0.0:5280".parse().unwrap());
    assert_eq!(c.http[0].tls, None);
    let ws = c.http[0].handlers.iter().find(|r| r.path == "/ws").unwrap();
    assert_eq!(ws.host.as_deref(), Some("example.com"));
    assert_eq!(
        ws.handler,
        Handler::WebSocket(WebSocketOptions {
            timeout: None,
            ping_rate: None,
            max_stanza_size: usize::MAX,
        })
    );
    assert_eq!(c.log_format, LogFormat::Text);
    assert_eq!(c.modules.bosh, None);
}

#[test]
fn http_listener_errors_name_the_option() {
    assert_eq!(
        error(&with(
            "[[listen.http]]\nport = 5280\n[[listen.http.handlers.mod_foo]]\nhost = \"_\"\npath = \"/\"\n"
        )),
        "config error in /etc/meerkat.toml:5: listen.http[0].handlers.mod_foo: unknown option \
         (expected one of: mongoose_bosh_handler, mongoose_prometheus_handler, mongoose_websocket_handler)"
    );
    assert_eq!(
        error(&with(
            "[[listen.http]]\nport = 5280\n[[listen.http.handlers.mongoose_bosh_handler]]\nhost = \"_\"\n"
        )),
        "config error in /etc/meerkat.toml:5: listen.http[0].handlers.mongoose_bosh_handler[0].path: \
         required option is missing (expected a path starting with \"/\", e.g. \"/ws-xmpp\")"
    );
    assert!(error(&with(
        "[[listen.c2s]]\nport = 5222\n[[listen.http]]\nport = 5222\n"
    ))
    .contains("address 0.0.0.0:5222 is already used"));
    assert!(error(&with("[modules.mod_bosh]\nserver_acks = true\n")).contains("server acknowledgements"));
    assert!(error("[general]\nhosts = [\"a\"]\nlog_format = \"xml\"\n").contains("one of \"text\", \"json\""));
}

#[test]
fn federation_sections_take_mongooseim_defaults() {
    let c = parse(&with(
        "[[listen.s2s]]\nport = 5269\n[[listen.component]]\nport = 8888\npassword = \"p\"\n[s2s]\n",
    ))
    .unwrap();
    assert_eq!(c.s2s_listeners[0].addr, "0.0.0.0:5269".parse().unwrap());
    assert_eq!(c.s2s_listeners[0].tls, None);
    let comp = &c.components[0];
    assert!(comp.check_from && !comp.hidden_components);
    assert_eq!(
        comp.conflict,
        meerkat_engine::stream::component::ConflictBehaviour::Disconnect
    );
    let s2s = c.s2s.unwrap();
    assert!(s2s.default_allow && s2s.host_policy.is_empty() && s2s.shared.is_none());
    let out = s2s.outgoing;
    assert_eq!(out.port, 5269);
    assert_eq!(out.connection_timeout_ms, Some(10_000));
    assert_eq!(out.state_timeout_ms, Some(5_000));
    assert_eq!(out.stream_timeout_ms, Some(600_000));
    assert_eq!(out.max_retry_delay, 300);
    assert!(out.address.is_empty() && out.tls.is_none());
}

#[test]
fn federation_options_are_checked_with_their_paths() {
    assert_eq!(
        error(&with("[[listen.component]]\nport = 8888\n")),
        "config error in /etc/meerkat.toml:3: listen.component[0].password: required option is missing \
         (expected the shared secret components authenticate with)"
    );
    assert_eq!(
        error(&with(
            "[[listen.component]]\nport = 8888\npassword = \"p\"\nconflict_behaviour = \"both\"\n"
        )),
        "config error in /etc/meerkat.toml:6: listen.component[0].conflict_behaviour: \
         expected one of \"disconnect\", \"kick_old\", got the string \"both\""
    );
    assert!(matches!(
        problem(&with("[s2s.outgoing]\nip_versions = [5]\n")),
        Problem::BadValue { .. }
    ));
    assert!(matches!(
        problem(&with("[s2s]\ndefault_policy = \"maybe\"\n")),
        Problem::BadValue { .. }
    ));
    assert!(matches!(
        problem(&with("[s2s.outgoing]\naddress = [{host = \"a.example\"}]\n")),
        Problem::Missing { .. }
    ));
    assert!(matches!(
        problem(&with(
            "[[listen.s2s]]\nport = 5269\ntls.verify_mode = \"selfsigned_peer\"\n"
        )),
        Problem::BadValue { .. }
    ));
    assert!(matches!(
        problem(&with(
            "[s2s.outgoing]\ntls.cacertfile = \"/nonexistent/ca.pem\"\n"
        )),
        Problem::File { .. }
    ));
}
