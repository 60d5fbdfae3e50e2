//! Edge cases that must compile.

use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
pub struct Reason(String);

/// A documented service.
#[rpc_core::service]
pub trait Edges {
    /// No arguments, unit return.
    async fn nothing(&self);
    /// An explicit unit return.
    async fn unit(&self) -> ();
    /// A raw identifier as the method name and as an argument.
    async fn r#type(&self, r#in: u32) -> u32;
    /// Many arguments of many types.
    async fn many(&self, a: u8, b: String, c: Vec<u64>, d: Option<(i32, bool)>) -> (u8, String);
    /// The method's own error type.
    async fn fallible(&self) -> Result<u32, Reason>;
    /// A fully qualified result.
    async fn qualified(&self) -> std::result::Result<(), Reason>;
    #[oneway]
    /// A oneway method with a doc comment after the marker.
    async fn fire(&self, what: String);
}

/// Visibility other than `pub` is kept.
#[rpc_core::service]
pub(crate) trait Internal {
    async fn ping(&self) -> u8;
}

/// A trait with a supertrait of its own.
#[rpc_core::service]
pub trait Named: std::fmt::Debug {
    async fn name(&self) -> String;
}

#[derive(Debug)]
struct Impl;

impl Edges for Impl {
    async fn nothing(&self) {}
    async fn unit(&self) {}
    async fn r#type(&self, r#in: u32) -> u32 {
        r#in
    }
    async fn many(&self, a: u8, b: String, _c: Vec<u64>, _d: Option<(i32, bool)>) -> (u8, String) {
        (a, b)
    }
    async fn fallible(&self) -> Result<u32, Reason> {
        Err(Reason("no".into()))
    }
    async fn qualified(&self) -> std::result::Result<(), Reason> {
        Ok(())
    }
    async fn fire(&self, _what: String) {}
}

impl Internal for Impl {
    async fn ping(&self) -> u8 {
        1
    }
}

impl Named for Impl {
    async fn name(&self) -> String {
        "impl".into()
    }
}

fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}

fn main() {
    assert_send_sync_clone::<EdgesProxy>();
    assert_send_sync_clone::<EdgesBlockingProxy>();
    let _ = EdgesSkeleton::new(Impl);
    let _ = InternalSkeleton::new(Impl);
    let _ = NamedSkeleton::new(Impl);
    let uri: rpc_core::Uri = "PYRO:x@127.0.0.1:1".parse().unwrap();
    let proxy = EdgesProxy::new(uri);
    let _call = proxy.r#type(1);
    let _start: fn(&EdgesBlockingProxy, u32) -> rpc_core::PendingCall<Result<u32, rpc_core::Error>> =
        EdgesBlockingProxy::start_type;
}
