//! The `meerkat` binary.

mod cert;
mod config;
mod storage;

fn main() {}
