//! # meerkat-engine
//!
//! The sans-IO protocol engine of the Meerkat XMPP server. Nothing in this crate
//! touches a socket, a clock, a thread or a file: bytes and time go in, actions come
//! out, and randomness is injected. The runtime crates drive it over tokio, smol or
//! glommio; tests and simulations drive it directly.
//!
//! ```
//! use std::time::Instant;
//! use meerkat_engine::xml::{StreamEvent, StreamParser, ParseLimits};
//!
//! let mut p = StreamParser::new(ParseLimits::default());
//! p.feed(b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>");
//! assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Header(_)))));
//! ```

#![warn(missing_docs)]

pub mod federation;
pub mod http;
pub mod hub;
pub mod instrument;
pub mod jid;
pub mod modules;
pub mod ns;
pub mod sasl;
pub mod shaper;
pub mod storage;
pub mod stream;
pub mod tls;
pub mod xml;

pub use jid::Jid;
pub use xml::Element;
