//! Checks a service trait against the rules of `#[service]`, reporting every mistake at once,
//! each pointed at the offending token.

use std::collections::HashSet;

use quote::ToTokens;
use syn::ext::IdentExt;
use syn::visit::Visit;
use syn::{FnArg, ItemTrait, Pat, ReturnType, TraitItem, TraitItemFn, Type};

use crate::names;

/// Every mistake found so far, combined into one error.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, at: impl ToTokens, message: impl std::fmt::Display) {
        let error = syn::Error::new_spanned(at, message);
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }
}

/// Checks the whole trait.
///
/// # Errors
///
/// All the mistakes, combined.
pub(crate) fn check(item: &ItemTrait) -> Result<(), syn::Error> {
    let mut errors = Errors::default();
    if !item.generics.params.is_empty() {
        errors.push(&item.generics, "service traits cannot be generic");
    }
    if let Some(clause) = &item.generics.where_clause {
        errors.push(clause, "service traits cannot have a `where` clause");
    }
    if let Some(unsafety) = &item.unsafety {
        errors.push(unsafety, "service traits cannot be `unsafe`");
    }
    if let Some(auto) = &item.auto_token {
        errors.push(auto, "service traits cannot be `auto` traits");
    }
    let methods: Vec<&TraitItemFn> = item
        .items
        .iter()
        .filter_map(|trait_item| match trait_item {
            TraitItem::Fn(method) => Some(method),
            other => {
                errors.push(other, "a service trait may contain only methods");
                None
            }
        })
        .collect();
    let method_names: HashSet<String> = methods
        .iter()
        .map(|m| m.sig.ident.unraw().to_string())
        .collect();
    for method in methods {
        check_method(method, &method_names, &mut errors);
    }
    match errors.0 {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

fn check_method(method: &TraitItemFn, method_names: &HashSet<String>, errors: &mut Errors) {
    let sig = &method.sig;
    let name = sig.ident.unraw().to_string();
    if names::PROXY_METHODS.contains(&name.as_str()) {
        errors.push(
            &sig.ident,
            format_args!("`{name}` is a method of every generated proxy; rename the remote method"),
        );
    }
    if let Some(other) = name
        .strip_prefix("start_")
        .filter(|other| method_names.contains(*other))
    {
        errors.push(
            &sig.ident,
            format_args!("`{name}` collides with the blocking proxy's `start_` method for `{other}`; rename it"),
        );
    }
    if sig.asyncness.is_none() {
        errors.push(sig.fn_token, "remote methods must be `async fn`");
    }
    if let Some(constness) = &sig.constness {
        errors.push(constness, "remote methods cannot be `const`");
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.push(unsafety, "remote methods cannot be `unsafe`");
    }
    if let Some(abi) = &sig.abi {
        errors.push(abi, "remote methods cannot have an `extern` ABI");
    }
    if !sig.generics.params.is_empty() {
        errors.push(&sig.generics, "remote methods cannot be generic");
    }
    if let Some(clause) = &sig.generics.where_clause {
        errors.push(clause, "remote methods cannot have a `where` clause");
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(variadic, "remote methods cannot be variadic");
    }
    if let Some(body) = &method.default {
        errors.push(
            body,
            "remote methods cannot have a default body; implement them in the `impl`",
        );
    }
    match sig.inputs.first() {
        Some(FnArg::Receiver(receiver))
            if receiver.reference.is_some()
                && receiver.mutability.is_none()
                && receiver.colon_token.is_none() => {}
        Some(FnArg::Receiver(receiver)) => {
            errors.push(receiver, "remote methods must take `&self`");
        }
        _ => errors.push(
            &sig.ident,
            "remote methods must take `&self` as their first argument",
        ),
    }
    for input in sig.inputs.iter().skip(1) {
        let FnArg::Typed(arg) = input else {
            continue;
        };
        if !matches!(&*arg.pat, Pat::Ident(ident) if ident.by_ref.is_none() && ident.subpat.is_none())
        {
            errors.push(&arg.pat, "remote method arguments must be plain names");
        }
        check_owned(&arg.ty, "arguments", errors);
    }
    let oneway: Vec<_> = method
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("oneway"))
        .collect();
    for attr in &oneway {
        if !matches!(attr.meta, syn::Meta::Path(_)) {
            errors.push(attr, "`#[oneway]` takes no arguments");
        }
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        check_owned(ty, "return types", errors);
        if !oneway.is_empty() && !is_unit(ty) {
            errors.push(
                ty,
                "a `#[oneway]` method must return `()`: its caller gets no reply",
            );
        }
    }
}

fn check_owned(ty: &Type, what: &str, errors: &mut Errors) {
    if let Type::ImplTrait(implementation) = ty {
        errors.push(
            implementation,
            format_args!("remote method {what} cannot be `impl Trait`: use a concrete serde type"),
        );
        return;
    }
    // A reference anywhere inside (`Option<&str>`, `Vec<&[u8]>`) cannot be decoded into an
    // owned value at the daemon either; serde's error for it points nowhere useful.
    let mut references = References::default();
    references.visit_type(ty);
    for reference in references.found {
        errors.push(
            reference,
            format_args!("remote method {what} must be owned values, not references: a value is sent over the network (use `String` for `&str`, `Vec<T>` for `&[T]`)"),
        );
    }
}

/// Collects the outermost references in a type (`&str` in `Option<&str>`).
#[derive(Default)]
struct References<'a> {
    found: Vec<&'a syn::TypeReference>,
}

impl<'a> Visit<'a> for References<'a> {
    fn visit_type_reference(&mut self, reference: &'a syn::TypeReference) {
        self.found.push(reference);
    }
}

/// Whether `ty` is `()`.
pub(crate) fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(tuple) if tuple.elems.is_empty())
}
