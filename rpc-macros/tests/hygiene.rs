//! The expansion names everything by absolute path, so it compiles without the prelude.

/// A module without the prelude.
pub mod hygienic {
    #![no_implicit_prelude]

    /// A service declared where nothing is in scope but what is imported here.
    #[::rpc_core::service]
    pub trait Hygienic {
        /// A method whose types are written in full.
        async fn greet(&self, name: ::std::string::String) -> ::std::string::String;
        /// A method with its own error type.
        async fn check(&self, value: u32) -> ::core::result::Result<u32, ::std::string::String>;
        /// A oneway method.
        #[oneway]
        async fn note(&self, value: u32);
    }

    /// The implementation.
    #[derive(Debug)]
    pub struct Impl;

    impl Hygienic for Impl {
        async fn greet(&self, name: ::std::string::String) -> ::std::string::String {
            name
        }

        async fn check(&self, value: u32) -> ::core::result::Result<u32, ::std::string::String> {
            ::core::result::Result::Ok(value)
        }

        async fn note(&self, _value: u32) {}
    }
}

use hygienic::{HygienicProxy, HygienicSkeleton, Impl};

#[tokio::test]
async fn expansion_needs_no_prelude() {
    let daemon = rpc_core::Daemon::bind("127.0.0.1:0").await.unwrap();
    let uri = daemon.register(HygienicSkeleton::new(Impl)).unwrap();
    let proxy = HygienicProxy::new(uri);
    assert_eq!(proxy.greet("x".into()).await.unwrap(), "x");
    assert_eq!(proxy.check(3).await.unwrap(), 3);
    proxy.note(1).await.unwrap();
}
