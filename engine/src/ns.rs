//! XML namespaces used by the engine, in one place (STYLE.md: never scattered literals).

/// RFC 6120 §4.8.1: the stream namespace, prefixed `stream:` on the wire.
pub const STREAMS: &str = "http://etherx.jabber.org/streams";
/// RFC 6120 §4.8.2: client-to-server content namespace.
pub const CLIENT: &str = "jabber:client";
/// RFC 6120 §4.8.2: server-to-server content namespace.
pub const SERVER: &str = "jabber:server";
/// XEP-0114: component content namespace.
pub const COMPONENT_ACCEPT: &str = "jabber:component:accept";
/// RFC 6120 §4.9.3: stream error conditions.
pub const STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
/// RFC 6120 §8.3.3: stanza error conditions.
pub const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
/// RFC 6120 §5: STARTTLS.
pub const TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
/// RFC 6120 §6: SASL.
pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
/// RFC 6120 §7: resource binding.
pub const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
/// RFC 3921 legacy session establishment, still announced (optional) for old clients.
pub const SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
/// RFC 6121 §2: roster.
pub const ROSTER: &str = "jabber:iq:roster";
/// XEP-0030 service discovery.
pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// XEP-0030 service discovery.
pub const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
/// XEP-0199 ping.
pub const PING: &str = "urn:xmpp:ping";
/// XEP-0092 software version.
pub const VERSION: &str = "jabber:iq:version";
/// XEP-0077 in-band registration (iq payload).
pub const REGISTER: &str = "jabber:iq:register";
/// XEP-0077 in-band registration (stream feature).
pub const REGISTER_FEATURE: &str = "http://jabber.org/features/iq-register";
/// XEP-0203 delayed delivery, stamped on offline messages.
pub const DELAY: &str = "urn:xmpp:delay";
/// XEP-0160 / XEP-0013: offline message retrieval (disco feature).
pub const OFFLINE: &str = "msgoffline";
/// XEP-0440 SASL channel-binding type capability.
pub const SASL_CB: &str = "urn:xmpp:sasl-cb:0";
/// XEP-0474 SASL SCRAM downgrade protection.
pub const SCRAM_UPGRADE: &str = "urn:xmpp:scram-upgrade:0";
/// RFC 6121 roster versioning feature.
pub const ROSTER_VER: &str = "urn:xmpp:features:rosterver";
/// RFC 6121 §3.4 pre-approval feature.
pub const PRE_APPROVAL: &str = "urn:xmpp:features:pre-approval";
/// The `xml:` prefix namespace (for `xml:lang`).
pub const XML: &str = "http://www.w3.org/XML/1998/namespace";
/// XEP-0388 Extensible SASL Profile (SASL2).
pub const SASL2: &str = "urn:xmpp:sasl:2";
/// XEP-0386 Bind 2.
pub const BIND2: &str = "urn:xmpp:bind:0";
/// XEP-0198 stream management.
pub const SM: &str = "urn:xmpp:sm:3";
/// XEP-0280 message carbons.
pub const CARBONS: &str = "urn:xmpp:carbons:2";
/// XEP-0297 stanza forwarding (carbons wrap copies in it).
pub const FORWARD: &str = "urn:xmpp:forward:0";
/// XEP-0352 client state indication.
pub const CSI: &str = "urn:xmpp:csi:0";
/// XEP-0484 Fast Authentication Streamlining Tokens.
pub const FAST: &str = "urn:xmpp:fast:0";
/// XEP-0334 message processing hints (`<no-copy/>`).
pub const HINTS: &str = "urn:xmpp:hints";
/// XEP-0085 chat state notifications (held back while a client is inactive).
pub const CHATSTATES: &str = "http://jabber.org/protocol/chatstates";
/// RFC 7395 §3.3: the WebSocket framing of XMPP (`<open/>`, `<close/>`).
pub const FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";
/// XEP-0124 BOSH `<body/>` wrapper.
pub const HTTPBIND: &str = "http://jabber.org/protocol/httpbind";
/// XEP-0206 XMPP over BOSH attributes (`xmpp:version`, `xmpp:restart`).
pub const XBOSH: &str = "urn:xmpp:xbosh";
/// XEP-0220 Server Dialback: the `db:` elements.
pub const DIALBACK: &str = "jabber:server:dialback";
/// XEP-0220 §2.4.2 / RFC 7590: the dialback stream feature, with `<errors/>`.
pub const DIALBACK_FEATURE: &str = "urn:xmpp:features:dialback";
