//! Resource usage of the process: CPU time and peak resident memory, recorded with each
//! step in the run history.

/// CPU time (user + system) of this process so far, in milliseconds.
pub fn cpu_ms() -> i64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0;
    }
    let tv = |t: libc::timeval| t.tv_sec * 1000 + t.tv_usec / 1000;
    (tv(ru.ru_utime) + tv(ru.ru_stime)) as i64
}

/// Peak resident set size of this process, in bytes.
pub fn peak_memory_bytes() -> i64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0;
    }
    ru.ru_maxrss * 1024
}
