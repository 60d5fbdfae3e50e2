//! The follower: keeps a nameserver's registry a mirror of the one in etcd, from one full
//! read and then a watch of every key under the prefix. When the watch breaks (its etcd
//! member died, the cluster lost its leader), it reads everything again and watches on from
//! there, for as long as the nameserver runs.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{EventType, GetOptions, KeyValue, WatchOptions, WatchResponse};
use tokio::sync::{Notify, watch};

use super::layout::{Key, Layout, Record};
use super::members::Members;
use super::view::{Kept, View};
use super::{Failure, lock, within};
use crate::registry::Registry;
use crate::store::Clocks;

/// Keys read per request of a full read: far under gRPC's 4 MiB message limit even with the
/// largest records.
const PAGE: i64 = 1000;

/// The first pause before reading again after a failure; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// What the follower task holds.
pub(super) struct Follower {
    pub(super) members: Members,
    pub(super) layout: Layout,
    pub(super) view: Arc<Mutex<View>>,
    pub(super) registry: Arc<Mutex<Registry>>,
    /// The registry with only the nameserver's own entry: what a full read starts from.
    pub(super) template: Registry,
    /// The latest revision of a key of ours that the registry shows.
    pub(super) applied: watch::Sender<i64>,
    /// Notified when a reader waits for the mirror: a pause between attempts to read etcd
    /// again ends at once.
    pub(super) wake: Arc<Notify>,
}

impl Follower {
    /// Reads every key, replacing the view and the registry; returns the revision read at.
    pub(super) async fn reload(&self) -> Result<i64, Failure> {
        let end = self.layout.end();
        let mut from = self.layout.prefix().as_bytes().to_vec();
        let mut revision = 0;
        let mut kvs = Vec::new();
        loop {
            let mut options = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
            if revision > 0 {
                options = options.with_revision(revision);
            }
            let key = from.clone();
            let mut page = self
                .members
                .request(|mut client| {
                    let (key, options) = (key.clone(), options.clone());
                    async move { client.get(key, Some(options)).await }
                })
                .await?;
            if revision == 0 {
                revision = page.header().map_or(0, |header| header.revision());
            }
            let more = page.more();
            let got = page.take_kvs();
            if let Some(last) = got.last() {
                from = last.key().to_vec();
                from.push(0);
            }
            kvs.extend(got);
            if !more {
                break;
            }
        }
        let clocks = Clocks::now();
        let mut view = View::default();
        for kv in &kvs {
            self.read_into(&mut view, kv, clocks);
        }
        let mut registry = self.template.clone();
        for name in view.names.keys() {
            registry.mirror(name.clone(), view.entry(name));
        }
        {
            let mut current = lock(&self.registry);
            let mut seen = lock(&self.view);
            *current = registry;
            *seen = view;
        }
        self.advance(revision);
        tracing::debug!(target: "nameserver", revision, keys = kvs.len(), "registry read from etcd");
        Ok(revision)
    }

    /// Follows the watch from `revision`, and reads everything again whenever it breaks.
    pub(super) async fn run(self, mut revision: i64) {
        loop {
            let broke = self.follow(revision).await;
            tracing::warn!(target: "nameserver", %broke, "the watch of etcd broke; reading the registry again");
            let mut pause = RETRY_FIRST;
            loop {
                // A pause even before the first try: a watch that breaks at once (no leader)
                // must not spin. A reader waiting for the mirror cuts it short.
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = self.wake.notified() => {}
                }
                match self.reload().await {
                    Ok(read_at) => {
                        revision = read_at;
                        break;
                    }
                    Err(failure) => {
                        tracing::debug!(target: "nameserver", %failure, "etcd cannot be read yet");
                        pause = (pause * 2).min(RETRY_MAX);
                    }
                }
            }
        }
    }

    /// Applies the watch's events after `revision` until it breaks; returns why it did.
    async fn follow(&self, revision: i64) -> Failure {
        let mut client = self.members.current();
        let options = WatchOptions::new()
            .with_range(self.layout.end())
            .with_start_revision(revision + 1);
        let watching = within(
            self.members.timeout(),
            client.watch(self.layout.prefix(), Some(options)),
        );
        let mut stream = match watching.await {
            Ok(stream) => stream,
            Err(failure) => return failure,
        };
        loop {
            match stream.message().await {
                Ok(Some(response)) if response.canceled() || response.compact_revision() > 0 => {
                    return Failure::Cancelled(response.cancel_reason().to_owned());
                }
                Ok(Some(response)) => self.apply(&response),
                Ok(None) => return Failure::Cancelled("the stream ended".into()),
                Err(error) => return Failure::Etcd(error),
            }
        }
    }

    /// Applies one response of the watch: its events, or the progress it reports.
    fn apply(&self, response: &WatchResponse) {
        let events = response.events();
        if events.is_empty() {
            // The watch's creation, or a progress report: nothing to apply.
            return;
        }
        let clocks = Clocks::now();
        let mut revision = 0;
        {
            let mut registry = lock(&self.registry);
            let mut view = lock(&self.view);
            let mut touched = BTreeSet::new();
            for event in events {
                let Some(kv) = event.kv() else { continue };
                revision = revision.max(kv.mod_revision());
                let name = match event.event_type() {
                    EventType::Put => self.read_into(&mut view, kv, clocks),
                    EventType::Delete => match self.layout.parse(kv.key()) {
                        Some(Key::Version) => {
                            view.version = 0;
                            None
                        }
                        Some(Key::Instance { name, uri }) => {
                            view.delete(&name, &uri);
                            Some(name)
                        }
                        None => None,
                    },
                };
                touched.extend(name);
            }
            for name in touched {
                let entry = view.entry(&name);
                registry.mirror(name, entry);
            }
            // Leases the registry saw run out are etcd's to remove, not this registry's.
            registry.forget_changes();
        }
        self.advance(revision);
    }

    /// Puts what `kv` holds into `view`; returns the name of the instance it holds, if it
    /// holds one. A record this code cannot read is left out, loudly.
    fn read_into(&self, view: &mut View, kv: &KeyValue, clocks: Clocks) -> Option<String> {
        match self.layout.parse(kv.key())? {
            Key::Version => {
                view.version = kv.mod_revision();
                None
            }
            Key::Instance { name, uri } => {
                let read = Record::decode(kv.value()).and_then(|record| {
                    let instance = record
                        .instance
                        .into_instance(&name, record.source, clocks)
                        .map_err(|error| error.to_string())?;
                    Ok(Kept {
                        instance,
                        owner: record.owner,
                        lease: kv.lease(),
                        created: kv.create_revision(),
                    })
                });
                match read {
                    Ok(kept) => view.put(name.clone(), uri, kept),
                    Err(detail) => {
                        tracing::warn!(target: "nameserver", %name, %uri, %detail, "an unreadable record in etcd is left out");
                        view.delete(&name, &uri);
                    }
                }
                Some(name)
            }
        }
    }

    fn advance(&self, revision: i64) {
        self.applied.send_if_modified(|applied| {
            let later = revision > *applied;
            *applied = (*applied).max(revision);
            later
        });
    }
}
