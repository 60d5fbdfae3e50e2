//! `RedbStore`: the registry kept in a redb file, an embedded, crash-safe key-value store.

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableError};
use rpc_core::Format;

use crate::store::{Store, StoreError, StoredEntry};

/// One record per name: the name, and its [`StoredEntry`] encoded with the core's codec.
const REGISTRATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("registrations");

/// A registry store in one redb file. Every [`save`](Store::save) is one transaction,
/// committed with redb's default durability: on disk (fsynced) when it returns.
///
/// The file is locked while open, so two nameservers cannot share one by mistake. It holds
/// owner tokens, so it is created readable by its owner only.
#[derive(Debug)]
pub struct RedbStore {
    database: Database,
    path: PathBuf,
}

fn backend(error: impl Into<redb::Error>) -> StoreError {
    StoreError::Backend(Box::new(error.into()))
}

impl RedbStore {
    /// Opens the store at `path`, creating it if there is none.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] if the file cannot be created or opened, is not a redb file, or
    /// is open in another process.
    pub fn open(path: impl AsRef<Path>) -> Result<RedbStore, StoreError> {
        let path = path.as_ref().to_owned();
        restrict_to_owner(&path).map_err(|error| StoreError::Backend(Box::new(error)))?;
        let database = Database::create(&path).map_err(backend)?;
        Ok(RedbStore { database, path })
    }

    /// Where the store lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Creates `path` empty, readable and writable by its owner only, unless it exists.
fn restrict_to_owner(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
}

impl Store for RedbStore {
    fn load(&self) -> Result<Vec<(String, StoredEntry)>, StoreError> {
        let reading = self.database.begin_read().map_err(backend)?;
        let table = match reading.open_table(REGISTRATIONS) {
            Ok(table) => table,
            // A store nothing was saved to yet.
            Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(error) => return Err(backend(error)),
        };
        let mut records = Vec::new();
        for row in table.iter().map_err(backend)? {
            let (name, bytes) = row.map_err(backend)?;
            let name = name.value().to_owned();
            let entry =
                Format::Bincode
                    .decode(bytes.value())
                    .map_err(|error| StoreError::Corrupt {
                        name: name.clone(),
                        detail: error.to_string(),
                    })?;
            records.push((name, entry));
        }
        Ok(records)
    }

    fn save(&self, changes: &[(String, Option<StoredEntry>)]) -> Result<(), StoreError> {
        let writing = self.database.begin_write().map_err(backend)?;
        {
            let mut table = writing.open_table(REGISTRATIONS).map_err(backend)?;
            let mut bytes = BytesMut::new();
            for (name, entry) in changes {
                match entry {
                    Some(entry) => {
                        bytes.clear();
                        Format::Bincode
                            .encode_into(entry, &mut bytes)
                            .map_err(|error| StoreError::Backend(Box::new(error)))?;
                        table.insert(name.as_str(), &bytes[..]).map_err(backend)?;
                    }
                    None => {
                        table.remove(name.as_str()).map_err(backend)?;
                    }
                }
            }
        }
        writing.commit().map_err(backend)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::store::StoredInstance;

    fn record(uri: &str) -> StoredEntry {
        StoredEntry {
            instances: vec![StoredInstance {
                uri: uri.into(),
                metadata: BTreeSet::new(),
                expires_unix_ms: Some(42),
            }],
            owner: None,
        }
    }

    #[test]
    fn what_is_saved_is_loaded_after_reopening_and_removals_stick() {
        let dir = std::env::temp_dir().join(format!("redb-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("registry.redb");
        let _ = std::fs::remove_file(&path);
        {
            let store = RedbStore::open(&path).unwrap();
            assert_eq!(store.load().unwrap(), Vec::new());
            store
                .save(&[
                    ("a".into(), Some(record("PYRO:a@127.0.0.1:1"))),
                    ("b".into(), Some(record("PYRO:b@127.0.0.1:1"))),
                ])
                .unwrap();
            store.save(&[("a".into(), None)]).unwrap();
            // Locked while open.
            assert!(RedbStore::open(&path).is_err());
        }
        let store = RedbStore::open(&path).unwrap();
        assert_eq!(
            store.load().unwrap(),
            vec![("b".to_owned(), record("PYRO:b@127.0.0.1:1"))]
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "readable by its owner only");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
