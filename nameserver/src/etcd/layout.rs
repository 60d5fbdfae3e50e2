//! Where the registry lives in etcd: the keys under the prefix, and what an instance's value
//! holds.
//!
//! - `{prefix}names/{name}\0{uri}`: one key per instance, its value a [`Record`], under the
//!   etcd lease of its time to live (none for a permanent registration). Names and URIs hold
//!   no control characters, so the NUL byte splits the key without doubt; every instance of a
//!   name sorts together, and no name's keys sort inside another's.
//! - `{prefix}version`: written by every change, so that a change can require that no other
//!   change was committed since the registry it was checked against (compare-and-swap on its
//!   mod revision).

use serde::{Deserialize, Serialize};

use crate::source::Source;
use crate::store::StoredInstance;
use rpc_core::Format;

/// What an instance key holds: the instance with its wall-clock expiry, the name's owner
/// token (every instance of a name carries the same one, so the owner goes with the last
/// instance), and the client address it counts against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Record {
    pub(super) instance: StoredInstance,
    pub(super) owner: Option<String>,
    pub(super) source: Option<Source>,
}

impl Record {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut bytes = bytes::BytesMut::new();
        Format::Bincode
            .encode_into(self, &mut bytes)
            .expect("a record is plain data that bincode encodes");
        bytes.to_vec()
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<Record, String> {
        Format::Bincode
            .decode(bytes)
            .map_err(|error| error.to_string())
    }
}

/// A key of ours, read back.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Key {
    Version,
    Instance { name: String, uri: String },
}

/// The keys under one prefix.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    prefix: String,
}

impl Layout {
    pub(super) fn new(prefix: &str) -> Layout {
        Layout {
            prefix: prefix.to_owned(),
        }
    }

    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The first key past every key under the prefix (etcd's range end for a prefix).
    pub(super) fn end(&self) -> Vec<u8> {
        let mut end = self.prefix.as_bytes().to_vec();
        while let Some(last) = end.pop() {
            if last < u8::MAX {
                end.push(last + 1);
                return end;
            }
        }
        // An empty prefix (or all 0xff): the whole keyspace, which etcd writes as "\0".
        vec![0]
    }

    pub(super) fn version_key(&self) -> Vec<u8> {
        format!("{}version", self.prefix).into_bytes()
    }

    pub(super) fn instance_key(&self, name: &str, uri: &str) -> Vec<u8> {
        format!("{}names/{name}\0{uri}", self.prefix).into_bytes()
    }

    /// What `key` is, if it is one of ours.
    pub(super) fn parse(&self, key: &[u8]) -> Option<Key> {
        let rest = std::str::from_utf8(key).ok()?.strip_prefix(&self.prefix)?;
        if rest == "version" {
            return Some(Key::Version);
        }
        let (name, uri) = rest.strip_prefix("names/")?.split_once('\0')?;
        Some(Key::Instance {
            name: name.to_owned(),
            uri: uri.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_back_as_written_and_stay_inside_the_prefix() {
        let layout = Layout::new("rpc/");
        let key = layout.instance_key("shop/eu", "PYRO:w@./u:/tmp/a");
        assert_eq!(
            layout.parse(&key),
            Some(Key::Instance {
                name: "shop/eu".into(),
                uri: "PYRO:w@./u:/tmp/a".into()
            })
        );
        assert_eq!(layout.parse(&layout.version_key()), Some(Key::Version));
        assert_eq!(layout.parse(b"other/names/x\0y"), None);
        assert_eq!(layout.parse(b"rpc/names/no-separator"), None);
        assert_eq!(layout.end(), b"rpc0");
        assert!(key.as_slice() < layout.end().as_slice());
        // One name's keys never sort among another's: "a" ends at NUL, before "a/b".
        assert!(layout.instance_key("a", "\u{7f}") < layout.instance_key("a/b", ""));
    }

    #[test]
    fn a_record_survives_its_encoding() {
        let record = Record {
            instance: StoredInstance {
                uri: "PYRO:w@127.0.0.1:1".into(),
                metadata: ["eu".to_owned()].into(),
                expires_unix_ms: Some(1_234),
            },
            owner: Some("owner-token-0123456789".into()),
            source: Some(Source::of("127.0.0.1".parse().unwrap())),
        };
        assert_eq!(Record::decode(&record.encode()), Ok(record));
        assert!(Record::decode(b"\xff\xff").is_err());
    }
}
