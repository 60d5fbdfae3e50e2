//! Runs code generation; on error, emits the trait unchanged plus every error, so the user
//! sees the mistakes and not a cascade of "cannot find type" errors.

mod blocking;
mod proxy;
mod service_trait;
mod shared;
mod skeleton;

use proc_macro2::TokenStream;
use quote::quote;
use syn::{ItemTrait, TraitItem};

use crate::{parse, validate};

/// The whole expansion of `#[service]` with these arguments on this trait.
pub(crate) fn expand(args: TokenStream, item: ItemTrait) -> TokenStream {
    let mut checked = validate::check(&item);
    if !args.is_empty() {
        let error = syn::Error::new_spanned(&args, "`#[service]` takes no arguments");
        checked = match checked {
            Ok(()) => Err(error),
            Err(mut all) => {
                all.combine(error);
                Err(all)
            }
        };
    }
    if let Err(errors) = checked {
        return fallback(item, &errors);
    }
    let service = parse::service(&item);
    let service_trait = service_trait::expand(item);
    let shared = shared::expand(&service);
    let skeleton = skeleton::expand(&service);
    let proxy = proxy::expand(&service);
    let blocking = blocking::expand(&service);
    quote! {
        #service_trait
        #shared
        #skeleton
        #proxy
        #blocking
    }
}

/// The trait as written, minus the `#[oneway]` markers that only this macro understands.
fn fallback(mut item: ItemTrait, errors: &syn::Error) -> TokenStream {
    for trait_item in &mut item.items {
        if let TraitItem::Fn(method) = trait_item {
            method.attrs.retain(|attr| !attr.path().is_ident("oneway"));
        }
    }
    let errors = errors.to_compile_error();
    quote! {
        #item
        #errors
    }
}
