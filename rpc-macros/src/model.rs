//! A checked, codegen-ready view of a service trait.

use syn::{Attribute, Ident, Type, Visibility};

/// The trait, as the generated code needs it.
pub(crate) struct Service {
    pub(crate) vis: Visibility,
    pub(crate) ident: Ident,
    pub(crate) methods: Vec<Method>,
}

/// One remote method.
pub(crate) struct Method {
    /// Attributes to carry over (doc comments and the like), without `#[oneway]`.
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) ident: Ident,
    /// The name on the wire: the identifier without any `r#`.
    pub(crate) wire_name: String,
    pub(crate) args: Vec<Arg>,
    pub(crate) output: Output,
    pub(crate) oneway: bool,
}

/// One argument of a remote method.
pub(crate) struct Arg {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
}

/// What a remote method returns.
pub(crate) enum Output {
    /// `()`, written or implied.
    Unit,
    /// A plain value.
    Value(Box<Type>),
    /// `Result<T, E>`: the proxy keeps `E` typed in `CallError::Method`.
    Result {
        /// The whole `Result<T, E>` type, as written.
        whole: Box<Type>,
        ok: Box<Type>,
        err: Box<Type>,
    },
}
