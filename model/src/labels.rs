//! Master-side labels (`clusterctl label`, what `-I` targets).

/// Why a label key is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("label key {key:?}: 1 to 63 letters, digits, '-', '_', '.' or '/'")]
pub struct InvalidLabelKey {
    /// The key, cut to an excerpt.
    pub key: String,
}

pub fn check_key(k: &str) -> Result<(), InvalidLabelKey> {
    let ok = !k.is_empty()
        && k.len() <= 63
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(())
    } else {
        Err(InvalidLabelKey {
            key: crate::limits::excerpt(k),
        })
    }
}

/// A label's value: one line, at most [`LABEL_VALUE_MAX_BYTES`] bytes.
///
/// [`LABEL_VALUE_MAX_BYTES`]: crate::limits::LABEL_VALUE_MAX_BYTES
pub fn check_value(key: &str, value: &str) -> Result<(), crate::limits::TextError> {
    crate::limits::one_line(
        &format!("label {key}'s value"),
        value,
        crate::limits::LABEL_VALUE_MAX_BYTES,
    )
}
