//! `Resolve`: how a proxy turns its URI into the direct URIs it connects to. The proxy is
//! given one and knows nothing of nameservers; the naming layer supplies the one that asks
//! them ([`NameResolver`](crate::NameResolver)).

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::config::Config;
use crate::error::Error;
use crate::uri::Uri;

/// The future of [`Resolve::resolve`].
pub type ResolveFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<Uri>, Error>> + Send + 'a>>;

/// Turns a URI into the direct (`PYRO:`) URIs to try, in order, at every (re)connect.
///
/// [`Proxy::new`](crate::Proxy::new) and [`Proxy::with_config`](crate::Proxy::with_config)
/// use a fresh [`NameResolver`](crate::NameResolver); give proxies one resolver of your own
/// with [`Proxy::with_resolver`](crate::Proxy::with_resolver) to share the nameserver it
/// located, or to resolve names some other way.
pub trait Resolve: Send + Sync + fmt::Debug + 'static {
    /// The direct URIs `uri` stands for now, in the order to try them; never empty when `Ok`.
    ///
    /// # Errors
    ///
    /// Whatever kept it from resolving `uri`: no nameserver, an unknown name, and the like.
    fn resolve<'a>(&'a self, uri: &'a Uri, config: &'a Config) -> ResolveFuture<'a>;
}
