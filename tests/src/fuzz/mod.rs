//! The checks behind Meerkat's fuzz targets (`fuzz/`, run with `cargo fuzz`), kept
//! here so that every input a fuzzer ever found to fail is replayed by the ordinary
//! test suite (`tests/tests/fuzz_regressions.rs` runs each file under
//! `tests/fuzz-regressions/<target>/` through the check of that name).
//!
//! Each check takes the raw fuzzer input and panics when the behaviour is wrong.

mod c2s_stream;
mod config_parser;
mod s2s_stream;
mod sasl_server;
mod xml_stream;

pub use c2s_stream::c2s_stream;
pub use config_parser::config_parser;
pub use s2s_stream::s2s_stream;
pub use sasl_server::sasl_server;
pub use xml_stream::xml_stream;

/// A check: panics when the input shows a bug.
pub type Check = fn(&[u8]);

/// The checks by target name, as the fuzz targets and the regression folders are named.
pub const TARGETS: [(&str, Check); 5] = [
    ("xml_stream", xml_stream),
    ("c2s_stream", c2s_stream),
    ("s2s_stream", s2s_stream),
    ("sasl_server", sasl_server),
    ("config_parser", config_parser),
];
