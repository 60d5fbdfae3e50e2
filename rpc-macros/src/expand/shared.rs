//! `impl Trait for Arc<T>`: one implementation shared by a skeleton and other code (the
//! nameserver serves one registry to our clients and to Pyro5's through two skeletons).

use proc_macro2::TokenStream;
use quote::quote;

use crate::model::{Output, Service};

pub(super) fn expand(service: &Service) -> TokenStream {
    let ident = &service.ident;
    let methods = service.methods.iter().map(|method| {
        let method_ident = &method.ident;
        let arg_idents: Vec<_> = method.args.iter().map(|arg| &arg.ident).collect();
        let arg_types = method.args.iter().map(|arg| &arg.ty);
        let output = match &method.output {
            Output::Unit => quote!(()),
            Output::Value(ty) => quote!(#ty),
            Output::Result { whole, .. } => quote!(#whole),
        };
        quote! {
            fn #method_ident(&self, #(#arg_idents: #arg_types),*)
                -> impl ::core::future::Future<Output = #output> + ::core::marker::Send
            {
                <T as #ident>::#method_ident(self, #(#arg_idents),*)
            }
        }
    });
    quote! {
        impl<T: #ident> #ident for ::std::sync::Arc<T> {
            #(#methods)*
        }
    }
}
