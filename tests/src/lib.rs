//! Test harness for Meerkat, also usable by library users: a whole server (hub,
//! connections, in-memory storage) driven in memory on a virtual clock with seeded
//! randomness, so that every run of a scenario produces the same bytes.
//!
//! ```
//! use meerkat_tests::Simulation;
//! let mut sim = Simulation::plain(7);
//! let c = sim.connect();
//! sim.client_bytes(c, b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>");
//! assert!(sim.output_string(c).contains("<mechanisms"));
//! ```

pub mod driver;
pub mod federation;
pub mod fuzz;
pub mod recording;
pub mod sasl2;
pub mod sim;
pub mod tls;
pub mod transcript;

pub use sim::Simulation;
