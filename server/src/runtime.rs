//! Starting the runtime the operator chose. Which runtimes exist in a build is decided
//! by cargo features (`tokio`, `smol`, `glommio`; the default build has all three);
//! choosing one that was left out is an error that says how to get it.

use meerkat_runtime_common::{RunError, ServerSpec};

use crate::config::RuntimeKind;

/// Why the chosen runtime did not serve.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The runtime is not in this build.
    #[error(
        "the {0} runtime is not compiled into this build of meerkat; rebuild with \
         `cargo build --release -p meerkat --features {0}` (the default features include every runtime) \
         or choose another with --runtime or [general] runtime"
    )]
    NotCompiled(&'static str),
    /// The runtime failed.
    #[error(transparent)]
    Run(#[from] RunError),
}

/// The runtimes compiled into this build.
pub fn available() -> Vec<RuntimeKind> {
    let mut out = Vec::new();
    if cfg!(feature = "tokio") {
        out.push(RuntimeKind::Tokio);
    }
    if cfg!(feature = "smol") {
        out.push(RuntimeKind::Smol);
    }
    if cfg!(all(feature = "glommio", target_os = "linux")) {
        out.push(RuntimeKind::Glommio);
    }
    out
}

/// Serves `spec` with `kind` until SIGINT or SIGTERM.
pub fn run(kind: RuntimeKind, spec: ServerSpec) -> Result<(), RuntimeError> {
    match kind {
        #[cfg(feature = "tokio")]
        RuntimeKind::Tokio => Ok(meerkat_runtime_tokio::run(spec)?),
        #[cfg(feature = "smol")]
        RuntimeKind::Smol => Ok(meerkat_runtime_smol::run(spec)?),
        #[cfg(all(feature = "glommio", target_os = "linux"))]
        RuntimeKind::Glommio => Ok(meerkat_runtime_glommio::run(spec)?),
        #[allow(unreachable_patterns)]
        other => {
            drop(spec);
            Err(RuntimeError::NotCompiled(other.name()))
        }
    }
}
