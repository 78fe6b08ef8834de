//! SIGTERM and SIGINT for runtimes without their own signal support (smol's
//! executor, glommio): the handler only sets a flag, which the runtime's main task
//! checks on a short timer. tokio uses its own signal streams.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Set once SIGTERM or SIGINT arrived.
#[derive(Debug, Clone)]
pub struct ShutdownFlag(Arc<AtomicBool>);

impl ShutdownFlag {
    /// Installs the handlers.
    pub fn install() -> std::io::Result<Self> {
        let flag = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGTERM, flag.clone())?;
        signal_hook::flag::register(signal_hook::consts::SIGINT, flag.clone())?;
        Ok(Self(flag))
    }

    /// True once a signal arrived.
    pub fn raised(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
