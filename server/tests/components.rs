//! External components (XEP-0114) on the real binary over loopback: a component
//! built with slixmpp's ComponentXMPP connects in clear and with direct TLS and
//! answers a user's message; a wrong password, a served domain and a subdomain
//! nobody serves each get their error while the rest goes on, on every runtime.

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{e2e_dir, free_port, run_setup_once, Extra, PlainClient, Server, DOMAIN};

const SECRET: &str = "c0mp0nent-s3cret";

struct Component(Child, std::path::PathBuf);

impl Drop for Component {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if std::thread::panicking() {
            eprintln!("----- component log -----\n{}", support::tail(&self.1, 100));
        }
    }
}

fn spawn_component(server: &Server, jid: &str, port: u16, tls: bool) -> Component {
    let log = server.dir.0.join(format!("component-{jid}.log"));
    let file = std::fs::File::create(&log).expect("log");
    let mut cmd = Command::new(e2e_dir().join(".venv").join("bin").join("python"));
    cmd.arg(e2e_dir().join("slixmpp_component.py"))
        .args(["--jid", jid, "--secret", SECRET, "--port", &port.to_string()])
        .args(["--timeout", "60"]);
    if tls {
        cmd.arg("--tls")
            .arg("--ca")
            .arg(&server.cert)
            .args(["--tls-name", DOMAIN]);
    }
    cmd.stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file);
    Component(cmd.spawn().expect("start the component"), log)
}

fn wait_for_line(c: &Component, line: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::fs::read_to_string(&c.1).unwrap_or_default().contains(line) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the component never said {line:?}");
}

/// Opens a component stream by hand and sends a handshake with `password`;
/// everything the server wrote until it closed.
fn raw_handshake(port: u16, domain: &str, password: &str) -> String {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        format!(
            "<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='{domain}'>"
        )
        .as_bytes(),
    )
    .unwrap();
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    while !got.contains("id='") || !got[got.find("id='").unwrap() + 4..].contains('\'') {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            return got;
        }
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let id_start = got.find("id='").unwrap() + 4;
    let id = &got[id_start..id_start + got[id_start..].find('\'').unwrap()];
    let digest = meerkat_engine::stream::component::handshake_digest(id, password);
    s.write_all(format!("<handshake>{digest}</handshake>").as_bytes())
        .unwrap();
    got.push_str(&support::read_until_closed(&mut s));
    got
}

#[test]
fn slixmpp_component_in_clear_and_over_tls_answers_a_user_on_tokio() {
    component_scenario("tokio");
}

#[test]
fn slixmpp_component_in_clear_and_over_tls_answers_a_user_on_smol() {
    component_scenario("smol");
}

#[test]
fn slixmpp_component_in_clear_and_over_tls_answers_a_user_on_glommio() {
    component_scenario("glommio");
}

fn component_scenario(runtime: &str) {
    run_setup_once("setup.sh");
    let plain_port = free_port();
    let tls_port = free_port();
    let extra = Extra {
        toml: format!(
            "[[listen.component]]\nport = {plain_port}\nip_address = \"127.0.0.1\"\npassword = \"{SECRET}\"\n\n\
             [[listen.component]]\nport = {tls_port}\nip_address = \"127.0.0.1\"\npassword = \"{SECRET}\"\n\
             hidden_components = true\ntls.mode = \"tls\"\n{{tls}}\n"
        ),
        ports: vec![plain_port, tls_port],
        ..Extra::default()
    };
    let server = Server::start_with(runtime, "components", &[("alice", "alice-pw")], extra);
    let echo = spawn_component(&server, "echo.localhost", plain_port, false);
    let secure = spawn_component(&server, "secure.localhost", tls_port, true);
    wait_for_line(&echo, "COMPONENT READY");
    wait_for_line(&secure, "COMPONENT READY");

    let mut alice = PlainClient::login(server.starttls_port, DOMAIN, "alice", "alice-pw", "phone");
    alice.send("<presence/>");
    for domain in ["echo.localhost", "secure.localhost"] {
        alice.send(&format!(
            "<message to='bot@{domain}' type='chat' id='m-{domain}'><body>ping {domain}</body></message>"
        ));
        let got = alice.read_until(&format!("echo: ping {domain}</body>"), Duration::from_secs(20));
        assert!(got.contains(&format!("from='bot@{domain}'")), "{got}");
    }
    // disco#items lists the visible component only.
    alice.send("<iq type='get' id='items' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>");
    let items = alice.read_until("</iq>", Duration::from_secs(10));
    assert!(items.contains("<item jid='echo.localhost'/>"), "{items}");
    assert!(!items.contains("secure.localhost"), "hidden: {items}");

    // A subdomain no component serves.
    alice.send("<message to='bot@nothere.localhost' id='n1' type='chat'><body>hello?</body></message>");
    let got = alice.read_until("</message>", Duration::from_secs(10));
    assert!(
        got.contains("type='error'") && got.contains("<remote-server-not-found"),
        "{got}"
    );

    // A wrong password, and a domain the server serves itself.
    let refused = raw_handshake(plain_port, "other.localhost", "wrong");
    assert!(refused.contains("<not-authorized"), "{refused}");
    let refused = raw_handshake(plain_port, DOMAIN, SECRET);
    assert!(refused.contains("<host-unknown"), "{refused}");

    // Nothing else broke: the component still answers.
    alice.send("<message to='bot@echo.localhost' type='chat' id='m2'><body>again</body></message>");
    alice.read_until("echo: again</body>", Duration::from_secs(20));

    // The metrics count the component traffic by connection type (issue 6): the
    // three echoes came in from components, the three messages went out to them.
    let page = support::metrics_page(&server);
    for name in ["xmpp_element_in_message_count", "xmpp_element_out_message_count"] {
        let counted = support::metric_sum(&page, name, "connection_type=\"component\"");
        assert!(counted >= 3.0, "{name} for components is {counted}:\n{page}");
    }
    drop(echo);
    drop(secure);
}
