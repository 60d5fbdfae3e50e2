//! Every identifier the macro generates, in one place.

use proc_macro2::Ident;
use quote::format_ident;
use syn::ext::IdentExt;

/// Names of the methods every generated proxy has, which remote methods may not take.
pub(crate) const PROXY_METHODS: [&str; 5] =
    ["new", "with_config", "from_proxy", "proxy", "with_timeout"];

/// The async client proxy: `{Trait}Proxy`.
pub(crate) fn proxy(service: &Ident) -> Ident {
    format_ident!("{}Proxy", service.unraw())
}

/// The blocking client proxy: `{Trait}BlockingProxy`.
pub(crate) fn blocking_proxy(service: &Ident) -> Ident {
    format_ident!("{}BlockingProxy", service.unraw())
}

/// The server skeleton: `{Trait}Skeleton`.
pub(crate) fn skeleton(service: &Ident) -> Ident {
    format_ident!("{}Skeleton", service.unraw())
}

/// The blocking proxy's method that starts a call in the background: `start_{method}`.
pub(crate) fn start(method: &Ident) -> Ident {
    format_ident!("start_{}", method.unraw())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proc_macro2::Span;

    #[test]
    fn names_follow_the_documented_pattern() {
        let service = Ident::new("Worker", Span::call_site());
        assert_eq!(proxy(&service), "WorkerProxy");
        assert_eq!(blocking_proxy(&service), "WorkerBlockingProxy");
        assert_eq!(skeleton(&service), "WorkerSkeleton");
        let raw = Ident::new_raw("type", Span::call_site());
        assert_eq!(start(&raw), "start_type");
    }
}
