//! Start-up checks for glommio: io_uring must be usable and the locked-memory limit
//! high enough for the rings of every executor. Each failure says what to change.

use std::fmt;

/// glommio refuses to start below this RLIMIT_MEMLOCK (its own minimum).
const MIN_MEMLOCK: u64 = 512 * 1024;

/// Why glommio cannot run here.
#[derive(Debug)]
pub enum PreflightError {
    /// `io_uring_setup` failed.
    IoUring(std::io::Error),
    /// RLIMIT_MEMLOCK is below what the executors need, and could not be raised.
    Memlock {
        /// The soft limit now, in bytes.
        soft: u64,
        /// The hard limit, in bytes.
        hard: u64,
        /// What `threads` executors need.
        needed: u64,
    },
}

impl fmt::Display for PreflightError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PreflightError::IoUring(e) => {
                let hint = match e.raw_os_error() {
                    Some(libc::ENOSYS) => "this kernel has no io_uring (Linux 5.8 or later is needed)",
                    Some(libc::EPERM) | Some(libc::EACCES) => {
                        "io_uring is forbidden here: check `sysctl kernel.io_uring_disabled` (must be 0, or 1 \
                         with this user in kernel.io_uring_group) and the container's seccomp profile \
                         (Docker's default blocks io_uring: run with --security-opt seccomp=unconfined \
                         or a profile that allows io_uring_setup, io_uring_enter, io_uring_register)"
                    }
                    Some(libc::ENOMEM) => "the locked-memory limit is too low for an io_uring ring: raise ulimit -l",
                    _ => "see the error above",
                };
                write!(
                    f,
                    "the glommio runtime needs io_uring, and io_uring_setup failed: {e}; {hint}; \
                     or choose another runtime (--runtime tokio)"
                )
            }
            PreflightError::Memlock { soft, hard, needed } => write!(
                f,
                "the glommio runtime needs at least {} KiB of locked memory for its executors' io_uring \
                 rings, and the limit is {} KiB (hard limit {} KiB): raise it with `ulimit -l {}` \
                 (as root, or via /etc/security/limits.conf `memlock`), LimitMEMLOCK= in a systemd \
                 unit, or --ulimit memlock=... for a container; or lower [general] threads, or choose \
                 another runtime (--runtime tokio)",
                needed / 1024,
                soft / 1024,
                hard / 1024,
                needed / 1024
            ),
        }
    }
}

impl std::error::Error for PreflightError {}

/// Checks io_uring and RLIMIT_MEMLOCK for `threads` executors, raising the soft
/// memlock limit towards the hard one when that is enough.
pub fn check(threads: usize) -> Result<(), PreflightError> {
    probe_io_uring().map_err(PreflightError::IoUring)?;
    let needed = MIN_MEMLOCK * threads as u64;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 {
        return Ok(()); // cannot tell; glommio will say if it fails
    }
    let (soft, hard) = (lim.rlim_cur, lim.rlim_max);
    if lim.rlim_cur == libc::RLIM_INFINITY || soft >= needed {
        return Ok(());
    }
    if lim.rlim_max == libc::RLIM_INFINITY || hard >= needed {
        lim.rlim_cur = needed as libc::rlim_t;
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) } == 0 {
            tracing::info!(kib = needed / 1024, "raised the locked-memory limit for io_uring");
            return Ok(());
        }
    }
    Err(PreflightError::Memlock { soft, hard, needed })
}

/// Sets up (and closes) a one-entry ring: the cheapest proof that io_uring works.
fn probe_io_uring() -> std::io::Result<()> {
    // struct io_uring_params is 120 bytes; zeroed means "defaults".
    let mut params = [0u8; 120];
    // SAFETY: io_uring_setup(2) takes an entry count and a pointer to a zeroed
    // io_uring_params it may write to; on success it returns a file descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is the descriptor io_uring_setup just returned.
    unsafe { libc::close(fd as i32) };
    Ok(())
}
