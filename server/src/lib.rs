//! The parts of the `meerkat` server that are useful outside its binary: the
//! MongooseIM-shaped configuration (parsed and checked with errors that name the
//! file, line and option) and the certificate helpers it uses. The fuzz target of
//! the config parser links against this library.

pub mod cert;
pub mod config;
