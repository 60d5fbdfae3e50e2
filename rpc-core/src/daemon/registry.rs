//! The daemon's objects: object id -> how to get the instance that serves a call.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry as MapEntry;

use crate::dispatch::{Dispatch, MethodInfo};
use crate::protocol::RemoteError;

/// How a daemon creates the instances that serve an object's calls (Pyro's instance modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InstanceMode {
    /// One instance serves every call from every client; built at the first call.
    Single,
    /// One instance per client connection, built at that connection's first call and dropped
    /// when the connection closes. Clones of a proxy share their connection and so their session.
    Session,
    /// A fresh instance for every call, dropped when the call ends.
    PerCall,
}

type Factory = Box<dyn Fn() -> Arc<dyn Dispatch> + Send + Sync>;

/// Where the instances of an object come from.
enum Instances {
    /// An instance registered as it is: `single` mode.
    Given(Arc<dyn Dispatch>),
    /// Built by a factory, lazily, as `mode` says.
    Built {
        mode: InstanceMode,
        factory: Factory,
        single: OnceLock<Arc<dyn Dispatch>>,
    },
}

/// One registered object.
pub(crate) struct Object {
    id: Arc<str>,
    instances: Instances,
    /// What its type says of its methods.
    methods: &'static [MethodInfo],
    /// Cleared by unregistering, so connections that hold this object stop serving it.
    registered: AtomicBool,
}

impl std::fmt::Debug for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Object")
            .field("id", &self.id)
            .field("mode", &self.mode())
            .finish_non_exhaustive()
    }
}

impl Object {
    /// An object served by one instance that already exists.
    pub(crate) fn instance<D: Dispatch>(id: &str, instance: D) -> Object {
        Object::new(id, Instances::Given(Arc::new(instance)), D::methods())
    }

    /// An object whose instances `factory` builds, lazily, as `mode` says.
    pub(crate) fn factory<D, F>(id: &str, mode: InstanceMode, factory: F) -> Object
    where
        D: Dispatch,
        F: Fn() -> D + Send + Sync + 'static,
    {
        let factory: Factory = Box::new(move || Arc::new(factory()) as Arc<dyn Dispatch>);
        let single = OnceLock::new();
        let instances = Instances::Built {
            mode,
            factory,
            single,
        };
        Object::new(id, instances, D::methods())
    }

    fn new(id: &str, instances: Instances, methods: &'static [MethodInfo]) -> Object {
        Object {
            id: Arc::from(id),
            instances,
            methods,
            registered: AtomicBool::new(true),
        }
    }

    /// The object's methods, as its type describes them.
    pub(crate) fn methods(&self) -> &'static [MethodInfo] {
        self.methods
    }

    pub(crate) fn id(&self) -> &Arc<str> {
        &self.id
    }

    pub(crate) fn mode(&self) -> InstanceMode {
        match &self.instances {
            Instances::Given(_) => InstanceMode::Single,
            Instances::Built { mode, .. } => *mode,
        }
    }

    pub(crate) fn is_registered(&self) -> bool {
        self.registered.load(Ordering::Acquire)
    }

    /// The instance that serves the next call; `session` is the calling connection's slot.
    ///
    /// # Errors
    ///
    /// [`RemoteError::Panicked`] if the factory panics; the daemon carries on.
    pub(crate) fn instance_for_call(
        &self,
        session: &mut Option<Arc<dyn Dispatch>>,
        method: &str,
    ) -> Result<Arc<dyn Dispatch>, RemoteError> {
        let (mode, factory, single) = match &self.instances {
            Instances::Given(instance) => return Ok(instance.clone()),
            Instances::Built {
                mode,
                factory,
                single,
            } => (mode, factory, single),
        };
        match mode {
            InstanceMode::Single => {
                if let Some(instance) = single.get() {
                    return Ok(instance.clone());
                }
                let built = self.build(factory, method)?;
                Ok(single.get_or_init(|| built).clone())
            }
            InstanceMode::Session => match session {
                Some(instance) => Ok(instance.clone()),
                None => Ok(session.insert(self.build(factory, method)?).clone()),
            },
            InstanceMode::PerCall => self.build(factory, method),
        }
    }

    fn build(&self, factory: &Factory, method: &str) -> Result<Arc<dyn Dispatch>, RemoteError> {
        catch_unwind(AssertUnwindSafe(factory)).map_err(|panic| RemoteError::Panicked {
            method: method.to_owned(),
            message: format!(
                "the factory of object `{}` panicked: {}",
                self.id,
                panic_message(&*panic)
            ),
        })
    }
}

/// The text of a panic payload, when it has one.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(a panic payload that is not a string)".to_owned()
    }
}

/// Object id -> registered object.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    objects: DashMap<Arc<str>, Arc<Object>>,
}

impl Registry {
    /// Adds `object`; false if its id is taken.
    pub(crate) fn insert(&self, object: Object) -> bool {
        match self.objects.entry(object.id.clone()) {
            MapEntry::Occupied(_) => false,
            MapEntry::Vacant(slot) => {
                slot.insert(Arc::new(object));
                true
            }
        }
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<Object>> {
        self.objects.get(id).map(|entry| entry.value().clone())
    }

    /// Removes the object; connections holding it stop serving it. False if there was none.
    pub(crate) fn remove(&self, id: &str) -> bool {
        match self.objects.remove(id) {
            Some((_, object)) => {
                object.registered.store(false, Ordering::Release);
                true
            }
            None => false,
        }
    }

    pub(crate) fn ids(&self) -> Vec<String> {
        self.objects
            .iter()
            .map(|entry| entry.key().to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::dispatch::{Call, DispatchFuture};

    struct Nothing;

    impl Dispatch for Nothing {
        fn dispatch(self: Arc<Self>, call: &Call<'_>) -> Result<DispatchFuture, RemoteError> {
            Err(call.unknown_method())
        }
    }

    fn counting(mode: InstanceMode, built: &Arc<AtomicUsize>) -> Object {
        let built = built.clone();
        Object::factory("o", mode, move || {
            built.fetch_add(1, Ordering::SeqCst);
            Nothing
        })
    }

    #[test]
    fn each_mode_builds_as_documented() {
        for (mode, calls_per_session, sessions, expected) in [
            (InstanceMode::Single, 3, 2, 1),
            (InstanceMode::Session, 3, 2, 2),
            (InstanceMode::PerCall, 3, 2, 6),
        ] {
            let built = Arc::new(AtomicUsize::new(0));
            let object = counting(mode, &built);
            assert_eq!(
                built.load(Ordering::SeqCst),
                0,
                "{mode:?} must build lazily"
            );
            for _ in 0..sessions {
                let mut session = None;
                for _ in 0..calls_per_session {
                    object.instance_for_call(&mut session, "m").unwrap();
                }
            }
            assert_eq!(built.load(Ordering::SeqCst), expected, "{mode:?}");
        }
    }

    #[test]
    fn a_panicking_factory_is_an_error() {
        let object = Object::factory("o", InstanceMode::PerCall, || -> Nothing {
            panic!("no way")
        });
        let error = object.instance_for_call(&mut None, "m").err().unwrap();
        assert!(error.to_string().contains("no way"), "{error}");
    }

    #[test]
    fn ids_are_unique_and_removal_unregisters() {
        let registry = Registry::default();
        assert!(registry.insert(Object::instance("a", Nothing)));
        assert!(!registry.insert(Object::instance("a", Nothing)));
        let held = registry.get("a").unwrap();
        assert!(held.is_registered());
        assert!(registry.remove("a"));
        assert!(!held.is_registered());
        assert!(registry.get("a").is_none());
        assert!(!registry.remove("a"));
    }
}
