//! The `meerkat` binary.

mod cert;
mod config;

fn main() {}
