//! Master-side labels (`clusterctl label`, what `-I` targets).

/// Why a label key is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("label key {key:?}: 1 to 63 letters, digits, '-', '_', '.' or '/'")]
pub struct InvalidLabelKey {
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
        Err(InvalidLabelKey { key: k.to_owned() })
    }
}
