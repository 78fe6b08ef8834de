//! Two in-memory servers federating: `a.test` and `b.test`, each a [`Simulation`]
//! with a federation router, an S2S listener and outgoing S2S with a static address
//! for the other. [`Network::pump`] plays the network: it answers connects by
//! accepting an S2S stream on the other server, and carries bytes both ways until
//! nothing moves. With [`TestCa`], streams use STARTTLS with certificates from one
//! CA that both trust, so SASL EXTERNAL (XEP-0178) authenticates them; without it
//! they stay in clear and use Server Dialback (XEP-0220).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use meerkat_engine::federation::FederationConfig;
use meerkat_engine::hub::{HubConfig, SessionId};
use meerkat_engine::stream::c2s::{C2sConfig, TlsMode};
use meerkat_engine::stream::s2s::{server_config_asking_certificates, S2sClientTls, S2sConfig, VerifyMode};
use meerkat_engine::stream::s2s_in::S2sInConfig;
use meerkat_engine::stream::s2s_out::S2sOutConfig;
use rustls::pki_types::CertificateDer;

use crate::Simulation;

/// The two domains.
pub const A: &str = "a.test";
/// The two domains.
pub const B: &str = "b.test";

/// A CA and a certificate per domain, for SASL EXTERNAL.
pub struct TestCa {
    ca_der: Vec<u8>,
    leaves: HashMap<String, (String, String)>,
}

impl TestCa {
    /// A fresh CA with end-entity certificates (server and client use) for `domains`.
    pub fn new(domains: &[&str]) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Meerkat test CA");
        let ca = ca_params.self_signed(&ca_key).expect("CA");
        let mut leaves = HashMap::new();
        for d in domains {
            let key = KeyPair::generate().expect("key");
            let mut p = CertificateParams::new(vec![d.to_string()]).expect("params");
            p.is_ca = IsCa::ExplicitNoCa;
            p.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let cert = p.signed_by(&key, &ca, &ca_key).expect("leaf");
            leaves.insert(d.to_string(), (cert.pem(), key.serialize_pem()));
        }
        Self {
            ca_der: ca.der().to_vec(),
            leaves,
        }
    }

    fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(self.ca_der.clone()))
            .expect("CA root");
        roots
    }
}

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// `a.test`.
    A,
    /// `b.test`.
    B,
}

/// One TCP connection between the servers: an outgoing stream of one, the incoming
/// stream of the other.
#[derive(Debug, Clone, Copy)]
struct Link {
    out_side: Side,
    out: SessionId,
    inc: SessionId,
    closed: bool,
}

/// What happens to connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connects {
    /// Accepted by the other server.
    Accept,
    /// Refused at once (nothing listens).
    Refuse,
    /// Never answered (a black hole; the engine's timeout decides).
    Hold,
}

/// Two federating servers (see the module docs).
pub struct Network {
    /// `a.test`.
    pub a: Simulation,
    /// `b.test`.
    pub b: Simulation,
    listeners: [Arc<S2sInConfig>; 2],
    links: Vec<Link>,
    /// How connects are answered.
    pub connects: Connects,
}

const ADDR_A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const ADDR_B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

fn server(
    domains: &[&str],
    others: &[&str],
    other_ip: Ipv4Addr,
    ca: Option<&TestCa>,
    seed: u64,
) -> (Simulation, Arc<S2sInConfig>) {
    let domain = domains[0];
    let hosts: Vec<String> = domains.iter().map(|d| d.to_string()).collect();
    let mut common = S2sConfig::new(hosts.clone(), format!("secret of {domain}"));
    if let Some(ca) = ca {
        common.roots = Arc::new(ca.roots());
    }
    let common = Arc::new(common);
    let mut listener = S2sInConfig::new(common.clone());
    let mut outgoing = S2sOutConfig::new(common);
    for other in others {
        outgoing
            .addresses
            .insert(other.to_string(), vec![(IpAddr::V4(other_ip), Some(5269))]);
    }
    if let Some(ca) = ca {
        let (cert, key) = &ca.leaves[domain];
        let identity =
            server_config_asking_certificates(cert.as_bytes(), key.as_bytes(), &[]).expect("identity");
        listener.tls_mode = TlsMode::StartTls;
        listener.tls = Some(Arc::new(identity));
        listener.verify = VerifyMode::Peer;
        let roots = Arc::new(ca.roots());
        outgoing.tls = Some(
            S2sClientTls::new(roots, VerifyMode::Peer, Some((cert.as_bytes(), key.as_bytes())))
                .expect("client TLS"),
        );
    }
    let hub = HubConfig {
        hosts: hosts.clone(),
        ..HubConfig::default()
    };
    let router = FederationConfig {
        s2s: true,
        ..FederationConfig::new(hosts.clone())
    };
    let sim =
        Simulation::new(C2sConfig::new(hosts), hub, seed).with_federation(router, Some(Arc::new(outgoing)));
    (sim, Arc::new(listener))
}

impl Network {
    /// Two servers; with `ca`, STARTTLS and SASL EXTERNAL, else dialback in clear.
    pub fn new(ca: Option<&TestCa>, seed: u64) -> Self {
        Self::with_a_hosts(&[A], ca, seed)
    }

    /// [`Network::new`] where `a` serves `a_hosts` (the first is `a.test`, whose
    /// secret signs dialback keys for all of them) and `b` reaches each at `a`.
    pub fn with_a_hosts(a_hosts: &[&str], ca: Option<&TestCa>, seed: u64) -> Self {
        let (a, la) = server(a_hosts, &[B], ADDR_B, ca, seed);
        let (b, lb) = server(&[B], a_hosts, ADDR_A, ca, seed + 1);
        Self {
            a,
            b,
            listeners: [la, lb],
            links: Vec::new(),
            connects: Connects::Accept,
        }
    }

    /// The server on `side`.
    pub fn sim(&mut self, side: Side) -> &mut Simulation {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    /// The `[[listen.s2s]]` settings of `side`, to open a stream to it by hand.
    pub fn listener(&self, side: Side) -> Arc<S2sInConfig> {
        self.listeners[if side == Side::A { 0 } else { 1 }].clone()
    }

    /// The incoming S2S streams `side` accepted, in order.
    pub fn incoming(&self, side: Side) -> Vec<SessionId> {
        self.links
            .iter()
            .filter(|l| l.out_side != side)
            .map(|l| l.inc)
            .collect()
    }

    /// Runs the network until nothing moves.
    pub fn pump(&mut self) {
        loop {
            let mut moved = false;
            for side in [Side::A, Side::B] {
                let other = if side == Side::A { Side::B } else { Side::A };
                for (out, addr) in self.sim(side).take_connects() {
                    moved = true;
                    let target = if addr.ip() == IpAddr::V4(ADDR_A) {
                        Side::A
                    } else {
                        Side::B
                    };
                    assert_eq!(target, other, "{side:?} connects to {addr}");
                    assert_eq!(addr, SocketAddr::new(addr.ip(), 5269));
                    match self.connects {
                        Connects::Accept => {
                            let config = self.listeners[if target == Side::A { 0 } else { 1 }].clone();
                            let inc = self.sim(target).accept_s2s(config);
                            self.links.push(Link {
                                out_side: side,
                                out,
                                inc,
                                closed: false,
                            });
                            self.sim(side).connected(out, true);
                        }
                        Connects::Refuse => self.sim(side).connected(out, false),
                        Connects::Hold => {}
                    }
                }
            }
            for i in 0..self.links.len() {
                let link = self.links[i];
                if link.closed {
                    continue;
                }
                let in_side = if link.out_side == Side::A {
                    Side::B
                } else {
                    Side::A
                };
                let up = self.sim(link.out_side).take_output(link.out);
                if !up.is_empty() {
                    moved = true;
                    self.sim(in_side).client_bytes(link.inc, &up);
                }
                let down = self.sim(in_side).take_output(link.inc);
                if !down.is_empty() {
                    moved = true;
                    self.sim(link.out_side).client_bytes(link.out, &down);
                }
                let out_closed = self.sim(link.out_side).is_closed(link.out);
                let in_closed = self.sim(in_side).is_closed(link.inc);
                if (out_closed || in_closed) && up.is_empty() && down.is_empty() {
                    // One side hung up: the other sees the socket close.
                    self.links[i].closed = true;
                    moved = true;
                    if !out_closed {
                        self.sim(link.out_side).disconnect(link.out);
                    }
                    if !in_closed {
                        self.sim(in_side).disconnect(link.inc);
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }
}
