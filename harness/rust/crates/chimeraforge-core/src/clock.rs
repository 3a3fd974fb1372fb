//! Clocks shared with the Python agents: `CLOCK_MONOTONIC` (Python's `time.monotonic_ns`) for every
//! timestamp, the wall clock for `start_unix_ns`, `CLOCK_BOOTTIME` for the process start.

fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and the clock ids used here exist on Linux.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime failed");
    #[allow(clippy::useless_conversion)] // time_t and c_long are i64 on 64-bit Linux only
    let (sec, nsec) = (i64::from(ts.tv_sec), i64::from(ts.tv_nsec));
    sec * 1_000_000_000 + nsec
}

/// `CLOCK_MONOTONIC` in ns: the clock of every `*_ns` field of the records.
pub fn monotonic_ns() -> i64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// Wall clock in ns since the Unix epoch (`time.time_ns()`).
pub fn unix_ns() -> i64 {
    clock_ns(libc::CLOCK_REALTIME)
}

/// When this process started, on the monotonic clock: `/proc/self/stat` start time (field 22, clock ticks
/// since boot) against `CLOCK_BOOTTIME`, the rule of `harness.agents.workflow.process_start_monotonic_ns`.
pub fn process_start_monotonic_ns() -> Option<i64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let start_ticks: i64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if tck <= 0 {
        return None;
    }
    let boot = clock_ns(libc::CLOCK_BOOTTIME);
    let age_ns = boot - (start_ticks as i128 * 1_000_000_000 / tck as i128) as i64;
    Some(monotonic_ns() - age_ns)
}

/// This process's own peak RSS in bytes (`getrusage(RUSAGE_SELF).ru_maxrss * 1024`).
pub fn peak_rss_bytes() -> Option<i64> {
    // SAFETY: an all-zero rusage is a valid value to be overwritten by getrusage.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    (rc == 0).then_some(usage.ru_maxrss as i64 * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_advances_and_process_started_before_now() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(b >= a);
        let start = process_start_monotonic_ns().expect("linux /proc");
        assert!(start <= b, "process start {start} after now {b}");
        assert!(
            b - start < 3_600 * 1_000_000_000,
            "test process older than an hour?"
        );
        assert!(peak_rss_bytes().unwrap() > 0);
        assert!(unix_ns() > 1_600_000_000 * 1_000_000_000);
    }
}
