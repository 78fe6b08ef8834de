//! Storage backends for the engine's [`meerkat_engine::storage::Storage`] requests.
//!
//! SQLite is the embedded default (one file, nothing to install); scale-out backends
//! go next to it behind the same trait.

mod sqlite;

use std::sync::Arc;

use meerkat_engine::storage::Storage;

pub use sqlite::{OpenError, SqliteStorage};

use crate::config::StorageConfig;

/// Opens the backend the config names.
pub fn open(config: &StorageConfig) -> Result<Arc<dyn Storage>, OpenError> {
    Ok(Arc::new(SqliteStorage::open(&config.database)?))
}
