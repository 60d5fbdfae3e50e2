//! The trait itself, rewritten so that its methods' futures are `Send`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{ItemTrait, ReturnType, TraitItem, parse_quote};

/// The user's trait with `Send + Sync + 'static` supertraits and every `async fn` turned into
/// `fn ... -> impl Future<Output = ...> + Send`, which an `async fn` in the `impl` satisfies.
pub(super) fn expand(mut item: ItemTrait) -> TokenStream {
    if item.colon_token.is_none() {
        item.colon_token = Some(Default::default());
    }
    item.supertraits.push(parse_quote!(::core::marker::Send));
    item.supertraits.push(parse_quote!(::core::marker::Sync));
    item.supertraits.push(parse_quote!('static));
    for trait_item in &mut item.items {
        if let TraitItem::Fn(method) = trait_item {
            method.attrs.retain(|attr| !attr.path().is_ident("oneway"));
            let sig = &mut method.sig;
            sig.asyncness = None;
            let output = match &sig.output {
                ReturnType::Default => quote!(()),
                ReturnType::Type(_, ty) => quote!(#ty),
            };
            sig.output = parse_quote! {
                -> impl ::core::future::Future<Output = #output> + ::core::marker::Send
            };
        }
    }
    quote!(#item)
}
