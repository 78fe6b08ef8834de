//! Operating-system bits: file descriptor limit, process CPU and memory from /proc, our own
//! CPU time.

/// Raise RLIMIT_NOFILE's soft limit to the hard limit. Returns (new soft limit, hard limit).
pub fn raise_nofile() -> Result<(u64, u64), String> {
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return Err(format!("getrlimit: {}", std::io::Error::last_os_error()));
        }
        if rl.rlim_cur < rl.rlim_max {
            let want = libc::rlimit {
                rlim_cur: rl.rlim_max,
                rlim_max: rl.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                rl.rlim_cur = rl.rlim_max;
            }
        }
        #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
        Ok((rl.rlim_cur as u64, rl.rlim_max as u64))
    }
}

/// Clock ticks per second for /proc/PID/stat times.
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// One reading of a process's resource use.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    pub rss_kib: u64,
    /// utime + stime in milliseconds.
    pub cpu_ms: f64,
}

/// Read /proc/PID/status (VmRSS) and /proc/PID/stat (utime, stime).
pub fn sample_process(pid: u32) -> Result<ProcSample, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    let rss_kib = parse_vmrss(&status).ok_or_else(|| format!("/proc/{pid}/status: no VmRSS"))?;
    let ticks = parse_stat_ticks(&stat).ok_or_else(|| format!("/proc/{pid}/stat: unexpected format"))?;
    Ok(ProcSample {
        rss_kib,
        cpu_ms: ticks as f64 * 1000.0 / clock_ticks() as f64,
    })
}

fn parse_vmrss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line["VmRSS:".len()..].split_whitespace().next()?.parse().ok()
}

/// utime + stime (fields 14 and 15), counted after the parenthesised command name, which
/// may itself contain spaces and parentheses.
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // after ')' the first field is field 3 (state); utime is field 14 -> index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Our own CPU time (user + system, all threads) in milliseconds.
pub fn self_cpu_ms() -> f64 {
    // SAFETY: getrusage writes into the struct we pass.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut ru) != 0 {
            return 0.0;
        }
        let tv = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
        tv(ru.ru_utime) + tv(ru.ru_stime)
    }
}

/// Our own resident set size in KiB.
pub fn self_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| parse_vmrss(&s))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_parsing() {
        let status = "Name:\tx\nVmPeak:\t  100 kB\nVmRSS:\t   12345 kB\nThreads: 2\n";
        assert_eq!(parse_vmrss(status), Some(12345));
        let stat = "42 (my (weird) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(parse_stat_ticks(stat), Some(300));
    }

    #[test]
    fn sample_self() {
        let s = sample_process(std::process::id()).unwrap();
        assert!(s.rss_kib > 0);
        assert!(self_rss_kib() > 0);
        assert!(clock_ticks() > 0);
        let (soft, hard) = raise_nofile().unwrap();
        assert!(soft <= hard);
    }
}
