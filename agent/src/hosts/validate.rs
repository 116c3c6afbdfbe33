//! What may go into the managed block, checked before anything is rendered:
//! an entry's address must parse as an IPv4 or IPv6 address (no zone, no
//! leading zeros), it must have at least one name, and every name must be a
//! hostname in the sense of RFC 1123 — labels of 1 to 63 letters, digits and
//! hyphens, not starting or ending with a hyphen, joined by dots, 253
//! characters at most, and (RFC 3696 §2) not ending in an all-numeric label,
//! which a resolver would read as an address. The legacy text may hold any
//! lines but markers.

use super::HostEntry;
use super::block::{RenderError, marker};
use std::net::IpAddr;

/// Checks one entry: its address, then its names in order.
pub fn entry(entry: &HostEntry) -> Result<(), RenderError> {
    if entry.address.parse::<IpAddr>().is_err() {
        return Err(RenderError::Address {
            address: entry.address.clone(),
        });
    }
    if entry.names.is_empty() {
        return Err(RenderError::NoNames {
            address: entry.address.clone(),
        });
    }
    for name in &entry.names {
        if let Err(reason) = hostname(name) {
            return Err(RenderError::Name {
                address: entry.address.clone(),
                name: name.clone(),
                reason,
            });
        }
    }
    Ok(())
}

/// Why `name` is not a hostname, or `Ok`.
pub fn hostname(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > 253 {
        return Err("it is longer than 253 characters");
    }
    let mut last = "";
    for label in name.split('.') {
        if label.is_empty() {
            return Err("it has an empty label");
        }
        if label.len() > 63 {
            return Err("it has a label longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err("it may hold only letters, digits, '-' and '.'");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label starts or ends with '-'");
        }
        last = label;
    }
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err("its last label is all digits, so it reads as an address");
    }
    Ok(())
}

/// Checks that the legacy text holds no marker line, which would break the
/// block it is copied into.
pub fn legacy(text: &str) -> Result<(), RenderError> {
    for (index, line) in text.split_inclusive('\n').enumerate() {
        if marker(line).is_some() {
            return Err(RenderError::LegacyMarker { line: index + 1 });
        }
    }
    Ok(())
}
