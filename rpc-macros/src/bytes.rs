//! Byte payloads as byte strings. serde sees a `Vec<u8>` as a sequence and encodes it one
//! element at a time; the generated code puts `Vec<u8>` (alone, in an `Option`, or as the value
//! of a `Result`) through serde's bytes methods instead, one call for the whole payload. In
//! bincode both are a length and then the bytes, so the wire does not change.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{GenericArgument, PathArguments, Type};

/// How a type holds bytes, if it is one the generated code handles.
enum Shape {
    /// `Vec<u8>`.
    Vec,
    /// `Option<Vec<u8>>`.
    OptionVec,
}

fn shape(ty: &Type) -> Option<Shape> {
    if is_vec_u8(ty) {
        Some(Shape::Vec)
    } else if single_argument(ty, "Option").is_some_and(is_vec_u8) {
        Some(Shape::OptionVec)
    } else {
        None
    }
}

fn is_vec_u8(ty: &Type) -> bool {
    single_argument(ty, "Vec")
        .is_some_and(|inner| matches!(inner, Type::Path(path) if path.qself.is_none() && path.path.is_ident("u8")))
}

/// `T` of a `wrapper<T>` path type (by its last segment, so `std::vec::Vec<T>` counts too).
fn single_argument<'a>(ty: &'a Type, wrapper: &str) -> Option<&'a Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    let PathArguments::AngleBracketed(generic) = &last.arguments else {
        return None;
    };
    match (
        last.ident == wrapper,
        generic.args.len(),
        generic.args.first(),
    ) {
        (true, 1, Some(GenericArgument::Type(inner))) => Some(inner),
        _ => None,
    }
}

/// Whether `ty` travels as something else (see [`wire_type`]).
pub(crate) fn carries_bytes(ty: &Type) -> bool {
    shape(ty).is_some()
}

/// The type that `ty` travels as.
pub(crate) fn wire_type(ty: &Type) -> TokenStream {
    match shape(ty) {
        Some(Shape::Vec) => quote!(::rpc_core::__private::serde_bytes::ByteBuf),
        Some(Shape::OptionVec) => {
            quote!(::core::option::Option<::rpc_core::__private::serde_bytes::ByteBuf>)
        }
        None => quote!(#ty),
    }
}

/// `value`, of type `ty`, as its [`wire_type`]; moves it, copies nothing.
pub(crate) fn to_wire(value: TokenStream, ty: &Type) -> TokenStream {
    match shape(ty) {
        Some(Shape::Vec) => quote!(::rpc_core::__private::serde_bytes::ByteBuf::from(#value)),
        Some(Shape::OptionVec) => quote! {
            ::core::option::Option::map(#value, ::rpc_core::__private::serde_bytes::ByteBuf::from)
        },
        None => value,
    }
}

/// `value`, of `ty`'s [`wire_type`], as a `ty`; moves it, copies nothing.
pub(crate) fn from_wire(value: TokenStream, ty: &Type) -> TokenStream {
    match shape(ty) {
        Some(Shape::Vec) => {
            quote!(::rpc_core::__private::serde_bytes::ByteBuf::into_vec(#value))
        }
        Some(Shape::OptionVec) => quote! {
            ::core::option::Option::map(#value, ::rpc_core::__private::serde_bytes::ByteBuf::into_vec)
        },
        None => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(text: &str) -> Type {
        syn::parse_str(text).unwrap()
    }

    #[test]
    fn byte_vectors_are_recognised_and_nothing_else() {
        for bytes in ["Vec<u8>", "std::vec::Vec<u8>", "Option<Vec<u8>>"] {
            assert!(shape(&ty(bytes)).is_some(), "{bytes}");
        }
        for other in [
            "Vec<u16>",
            "Vec<Vec<u8>>",
            "[u8; 4]",
            "Option<u8>",
            "Bytes",
            "u8",
        ] {
            assert!(shape(&ty(other)).is_none(), "{other}");
        }
    }
}
