//! Node ids and node names: the one place that says what a valid one is.
//!
//! A [`NodeId`] is a node's stable identity (the subject of its
//! certificate); a [`NodeName`] is what operators type and what hosts files
//! carry. Both are ASCII letters, digits, `-`, `_` and `.`, 1 to 253 bytes:
//! a name starts out as the id when no service names the node. Both are
//! checked when built (from the wire, a certificate, a request or the
//! store) and are plain strings after that: they deref to `str` and borrow
//! as one, so maps keyed by them are looked up with a `&str`.

use serde::{Deserialize, Serialize};
use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

/// The longest id or name: what DNS allows for a whole name.
pub const MAX_LEN: usize = 253;

/// Why a string is not a valid id or name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidName {
    #[error("is empty")]
    Empty,
    #[error("is {len} bytes long, at most {MAX_LEN} are allowed")]
    TooLong { len: usize },
    #[error("contains {found:?}; only letters, digits, '-', '_' and '.' are allowed")]
    Char { found: char },
}

/// Checks one id, name, role, group or user name against the shared rule.
pub fn check_name(s: &str) -> Result<(), InvalidName> {
    if s.is_empty() {
        return Err(InvalidName::Empty);
    }
    if s.len() > MAX_LEN {
        return Err(InvalidName::TooLong { len: s.len() });
    }
    match s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        Some(found) => Err(InvalidName::Char { found }),
        None => Ok(()),
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $ty(String);

        impl $ty {
            pub fn new(s: impl Into<String>) -> Result<Self, InvalidName> {
                let s = s.into();
                check_name(&s)?;
                Ok($ty(s))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl TryFrom<String> for $ty {
            type Error = InvalidName;
            fn try_from(s: String) -> Result<Self, InvalidName> {
                $ty::new(s)
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = InvalidName;
            fn try_from(s: &str) -> Result<Self, InvalidName> {
                $ty::new(s)
            }
        }

        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.0
            }
        }

        impl Deref for $ty {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $ty {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $ty {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }
    };
}

name_type!(
    /// A node's stable identity, from enrollment; never changes.
    NodeId
);

name_type!(
    /// A node's assigned name, unique across the cluster.
    NodeName
);

impl NodeName {
    /// The name a node has before anything names it: its id.
    pub fn of_id(id: &NodeId) -> NodeName {
        NodeName(id.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_names_what_is_wrong() {
        let cases: &[(&str, Result<(), InvalidName>)] = &[
            ("web-1", Ok(())),
            ("db_2.example", Ok(())),
            ("", Err(InvalidName::Empty)),
            ("web 1", Err(InvalidName::Char { found: ' ' })),
            ("wéb", Err(InvalidName::Char { found: 'é' })),
        ];
        for (s, want) in cases {
            assert_eq!(&check_name(s), want, "{s:?}");
        }
        let long = "a".repeat(254);
        assert_eq!(
            NodeId::new(long).unwrap_err().to_string(),
            "is 254 bytes long, at most 253 are allowed"
        );
    }

    #[test]
    fn ids_serialise_as_strings_and_refuse_bad_ones_on_the_way_in() {
        let id = NodeId::new("web-1").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"web-1\"");
        assert_eq!(serde_json::from_str::<NodeId>("\"web-1\"").unwrap(), id);
        let err = serde_json::from_str::<NodeId>("\"a b\"").unwrap_err();
        assert!(err.to_string().contains("contains ' '"), "{err}");
    }

    #[test]
    fn maps_keyed_by_ids_are_looked_up_with_str() {
        let mut m = std::collections::HashMap::new();
        m.insert(NodeId::new("a").unwrap(), 1);
        assert_eq!(m.get("a"), Some(&1));
    }
}
