//! Process limits a server needs: every connection is a file descriptor, and the
//! usual soft limit (1024) would cap a server at about a thousand sessions.

/// Raises the soft limit on open files to the hard limit; returns the limit in force.
#[cfg(unix)]
pub fn raise_open_files() -> Option<u64> {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let wanted = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
        Some(lim.rlim_cur)
    }
}

/// Not applicable off Unix.
#[cfg(not(unix))]
pub fn raise_open_files() -> Option<u64> {
    None
}
