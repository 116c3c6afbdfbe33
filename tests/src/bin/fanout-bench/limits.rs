//! Whether the machine can hold N sessions: open files (raised to the hard
//! limit, inherited by the master) and ephemeral ports.

use super::*;

/// Raises the open files limit to the hard limit (the master, started
/// later, inherits it) and checks that `agents` connections fit, on both
/// ends, in it and in the ephemeral port range; if not, says why.
pub(crate) fn ensure_room_for(agents: usize) -> Result<(), String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit for the call to fill in and read.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(format!(
            "cannot read the open files limit: {}",
            std::io::Error::last_os_error()
        ));
    }
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(lim.rlim_max);
    let raised = libc::rlimit {
        rlim_cur: lim.rlim_max.min(nr_open),
        rlim_max: lim.rlim_max,
    };
    // SAFETY: `raised` is a valid rlimit; raising the soft limit up to the
    // hard one needs no privilege.
    let limit = if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        raised.rlim_cur
    } else {
        lim.rlim_cur
    };
    let needed = agents as u64 + FD_HEADROOM;
    if needed > limit {
        return Err(format!(
            "{agents} agents need about {needed} open files in this process and as many in the master, \
             but the limit is {limit} (hard limit {}). Raise the hard limit (ulimit -Hn, or LimitNOFILE for a unit) \
             or run with --agents {} or fewer.",
            lim.rlim_max,
            limit.saturating_sub(FD_HEADROOM)
        ));
    }
    if let Some(ports) = ephemeral_ports()
        && needed > ports
    {
        return Err(format!(
            "{agents} agents need as many local ports toward the master, but \
             net.ipv4.ip_local_port_range holds only {ports}; widen it or run with fewer agents."
        ));
    }
    Ok(())
}

/// How many ports the kernel picks source ports from.
pub(crate) fn ephemeral_ports() -> Option<u64> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut bounds = range.split_whitespace().map(|v| v.parse::<u64>().ok());
    let (low, high) = (bounds.next()??, bounds.next()??);
    Some(high.saturating_sub(low) + 1)
}
