//! `syn::ItemTrait` -> `model::Service`, for a trait that `validate::check` accepted.

use syn::ext::IdentExt;
use syn::{FnArg, GenericArgument, ItemTrait, Pat, PathArguments, ReturnType, TraitItem, Type};

use crate::model::{Arg, Method, Output, Service};
use crate::validate::is_unit;

/// The model of a validated trait.
pub(crate) fn service(item: &ItemTrait) -> Service {
    let methods = item
        .items
        .iter()
        .filter_map(|trait_item| match trait_item {
            TraitItem::Fn(method) => Some(method),
            _ => None,
        })
        .map(|method| {
            let sig = &method.sig;
            let args = sig
                .inputs
                .iter()
                .filter_map(|input| match input {
                    FnArg::Typed(arg) => match &*arg.pat {
                        Pat::Ident(pat) => Some(Arg {
                            ident: pat.ident.clone(),
                            ty: (*arg.ty).clone(),
                        }),
                        _ => None,
                    },
                    FnArg::Receiver(_) => None,
                })
                .collect();
            let (oneway, attrs) = method
                .attrs
                .iter()
                .cloned()
                .partition::<Vec<_>, _>(|attr| attr.path().is_ident("oneway"));
            Method {
                attrs,
                ident: sig.ident.clone(),
                wire_name: sig.ident.unraw().to_string(),
                args,
                output: output(&sig.output),
                oneway: !oneway.is_empty(),
            }
        })
        .collect();
    Service {
        vis: item.vis.clone(),
        ident: item.ident.clone(),
        methods,
    }
}

/// Classifies a return type. `Result` is recognised by name, with two type arguments, so an
/// alias such as `io::Result<T>` is a plain value.
fn output(output: &ReturnType) -> Output {
    let ty = match output {
        ReturnType::Default => return Output::Unit,
        ReturnType::Type(_, ty) if is_unit(ty) => return Output::Unit,
        ReturnType::Type(_, ty) => ty,
    };
    if let Type::Path(path) = &**ty
        && let Some(last) = path.path.segments.last()
        && let PathArguments::AngleBracketed(generic) = &last.arguments
    {
        let types: Vec<&Type> = generic
            .args
            .iter()
            .filter_map(|arg| match arg {
                GenericArgument::Type(ty) => Some(ty),
                _ => None,
            })
            .collect();
        if last.ident == "Result" && generic.args.len() == 2 && types.len() == 2 {
            return Output::Result {
                whole: ty.clone(),
                ok: Box::new(types[0].clone()),
                err: Box::new(types[1].clone()),
            };
        }
    }
    Output::Value(ty.clone())
}
