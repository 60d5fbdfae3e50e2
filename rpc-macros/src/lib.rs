//! The `#[service]` attribute of `rpc-core`. Use it through `rpc_core::service`, whose
//! documentation lists everything it generates.
//!
//! The pipeline copies thiserror's: `validate` collects every mistake, `parse` turns the
//! trait into a `model`, `names` builds the generated identifiers, and `expand` writes the code.

mod bytes;
mod expand;
mod model;
mod names;
mod parse;
mod validate;

use proc_macro::TokenStream;

/// See `rpc_core::service`.
#[proc_macro_attribute]
pub fn service(args: TokenStream, input: TokenStream) -> TokenStream {
    let args = proc_macro2::TokenStream::from(args);
    let item = syn::parse_macro_input!(input as syn::ItemTrait);
    let output = expand::expand(args, item);
    if std::env::var_os("RPC_MACROS_DEBUG").is_some() {
        eprintln!("{output}");
    }
    output.into()
}
