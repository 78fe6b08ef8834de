//! Instrumentation events (DESIGN.md, Observability): one `xmpp_element_in` per parsed
//! element and one `xmpp_element_out` per element about to be written, labelled with
//! the connection type and host type. The runtime turns them into metrics.

/// The kind of connection an event belongs to (the `connection_type` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionType {
    /// Client-to-server.
    C2s,
    /// Server-to-server.
    S2s,
    /// External component (XEP-0114).
    Component,
}

impl ConnectionType {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionType::C2s => "c2s",
            ConnectionType::S2s => "s2s",
            ConnectionType::Component => "component",
        }
    }
}

/// What kind of element crossed the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElementKind {
    /// `<message/>`.
    Message,
    /// `<presence/>`.
    Presence,
    /// `<iq/>`.
    Iq,
    /// Stream-level elements: features, SASL, STARTTLS, stream errors, headers.
    Other,
}

impl ElementKind {
    /// Classifies an element by its local name.
    pub fn of(name: &str) -> Self {
        match name {
            "message" => ElementKind::Message,
            "presence" => ElementKind::Presence,
            "iq" => ElementKind::Iq,
            _ => ElementKind::Other,
        }
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ElementKind::Message => "message",
            ElementKind::Presence => "presence",
            ElementKind::Iq => "iq",
            ElementKind::Other => "other",
        }
    }
}

/// Direction of an element event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `xmpp_element_in`.
    In,
    /// `xmpp_element_out`.
    Out,
}

/// An instrumentation event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `xmpp_element_in` / `xmpp_element_out`.
    Element {
        /// In or out.
        direction: Direction,
        /// `connection_type` label.
        connection_type: ConnectionType,
        /// `host_type` label (the served domain; empty before the stream names it).
        host_type: String,
        /// Stanza kind.
        kind: ElementKind,
        /// Serialised size in bytes.
        bytes: usize,
    },
    /// A SASL exchange ended.
    Auth {
        /// The mechanism name.
        mechanism: &'static str,
        /// Whether it succeeded.
        success: bool,
        /// `host_type` label.
        host_type: String,
    },
    /// The shaper delayed reading for this long.
    ShaperDelay {
        /// Delay in microseconds.
        micros: u64,
    },
    /// A client session was bound (or resumed), or ended (`sm_session_logins`,
    /// `sm_session_logouts`, `sm_session_count`).
    Session {
        /// `host_type` label.
        host_type: String,
        /// Bound (true) or ended (false).
        opened: bool,
    },
    /// XEP-0484: a FAST token was issued (or rotated in).
    FastTokenIssued {
        /// `host_type` label.
        host_type: String,
    },
    /// XEP-0484: a client authenticated with a FAST token.
    FastTokenUsed {
        /// `host_type` label.
        host_type: String,
    },
}
