//! Stream state machines, one per connection type, all driven the same way
//! (DESIGN.md, the engine contract): `handle_*` inputs, `poll_action` outputs.

pub mod c2s;
pub mod component;
mod connection;
mod error;
pub mod s2s;
pub mod s2s_in;
pub mod s2s_out;
mod wire;

pub use connection::{Connection, ConnectionInput};
pub use error::{StanzaError, StanzaErrorType, StreamError};

use std::time::Instant;

use crate::federation::FederationInput;
use crate::hub::{HubInput, RequestId};
use crate::instrument::Event;
use crate::storage::StorageRequest;

/// An output of a connection state machine, drained by the runtime until `None`.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Write these bytes to the socket, in order.
    Transmit(Vec<u8>),
    /// Pass this input to the hub.
    Hub(HubInput),
    /// Carry out a storage request and answer with `handle_reply(id, ..)`.
    Request(RequestId, StorageRequest),
    /// Call `handle_timeout` at this instant (replaces any earlier deadline).
    SetTimer(Instant),
    /// The shaper asks to stop reading the socket until this instant.
    PauseReading(Instant),
    /// An instrumentation event.
    Instrument(Event),
    /// Pass this input to the federation router (components, S2S).
    Federation(FederationInput),
    /// Resolve this DNS query and answer with `handle_resolved` (outgoing S2S).
    Resolve(s2s_out::DnsQuery),
    /// Open a TCP connection to this address and answer with `handle_connected` or
    /// `handle_connect_failed` (outgoing S2S). The connection timeout is the engine's
    /// (`SetTimer`).
    Connect(std::net::SocketAddr),
    /// Flush what was transmitted, then close the connection. Nothing follows.
    Close,
}
