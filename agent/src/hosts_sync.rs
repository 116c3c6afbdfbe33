//! Keeping the node's hosts file (and, when asked, its hostname) in line
//! with the desired state: every node's line in the managed block, sorted by
//! name; written only when it changed (see `hosts` for how).

use crate::hosts::{HostEntry, Written};
use crate::session::Context;
use crate::state::Desired;

/// The block's entries for `desired`, sorted by name.
pub fn entries(desired: &Desired) -> Vec<HostEntry> {
    let mut all: Vec<HostEntry> = desired
        .hosts
        .values()
        .map(|h| HostEntry {
            address: h.address.clone(),
            names: h.names.clone(),
        })
        .collect();
    all.sort_by(|a, b| a.names.cmp(&b.names));
    all
}

/// Writes the hosts file and sets the hostname as `desired` says. Failures
/// are logged, not fatal: health keeps being served either way.
pub fn sync(ctx: &Context, desired: &Desired) {
    if let Some(file) = &ctx.hosts_file {
        match file.apply(&entries(desired)) {
            Ok(Written::Unchanged) => {}
            Ok(Written::Renamed) => {
                tracing::info!(path = %file.path.display(), lines = desired.hosts.len(), "hosts file updated")
            }
            Ok(Written::InPlace) => tracing::info!(
                path = %file.path.display(),
                lines = desired.hosts.len(),
                "hosts file updated in place, under a write lease: it cannot be replaced here (a bind mount?)"
            ),
            Ok(Written::InPlaceUnguarded(why)) => tracing::warn!(
                path = %file.path.display(),
                why = %why,
                "hosts file updated in place without a write lease: a reader may have caught it half written"
            ),
            Err(e) => {
                tracing::error!(error = %e, "cannot update the hosts file; it was left as it was")
            }
        }
    }
    if ctx.set_hostname && !desired.name.is_empty() {
        set_hostname(&desired.name);
    }
}

fn set_hostname(name: &str) {
    let current = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    if current.trim() == name {
        return;
    }
    let rc = unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) };
    if rc == 0 {
        tracing::info!(%name, "set the system hostname to the assigned name");
    } else {
        tracing::error!(%name, error = %std::io::Error::last_os_error(), "cannot set the system hostname");
    }
}

/// `cluster-agent --dry-run`: what the hosts file would become.
pub fn print_plan(ctx: &Context, desired: &Desired) {
    match &ctx.hosts_file {
        None => println!("hosts are not managed on this node (manage_hosts = false)"),
        Some(file) => match file.plan(&entries(desired)) {
            Ok((_, diff)) if diff.is_empty() => println!("{}: no change", file.path.display()),
            Ok((_, diff)) => print!("{diff}"),
            Err(e) => println!("{e}"),
        },
    }
}
