//! `Raised<E>`: a method's own error on its way to the caller, with the `Display` of `E` when
//! it has one, so a Python client's exception reads as the error's own message.
//!
//! Our own protocol (bincode, not human-readable) sees exactly `E`; Pyro5's formats see the
//! message too. Whether `E` has a `Display` is chosen where the macro names `E`, by method
//! resolution (the "autoref" idiom): `(&&Describe::<E>::new()).describer()` finds the impl for
//! `&Describe<E>` when `E: Display`, else the one for `Describe<E>`.

use std::fmt::Display;
use std::marker::PhantomData;

use serde::{Serialize, Serializer};

use crate::codec::RAISED_MARKER;

/// A method's error, and how to describe it.
#[derive(Debug)]
pub struct Raised<E> {
    error: E,
    describe: fn(&E) -> Option<String>,
}

impl<E> Raised<E> {
    /// `error`, described by `describe` for Pyro5 clients.
    pub fn new(error: E, describe: fn(&E) -> Option<String>) -> Raised<E> {
        Raised { error, describe }
    }
}

impl<E: Serialize> Serialize for Raised<E> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if !serializer.is_human_readable() {
            return self.error.serialize(serializer);
        }
        let message = (self.describe)(&self.error);
        serializer.serialize_newtype_struct(RAISED_MARKER, &(message, &self.error))
    }
}

/// Picks how to describe an `E`.
#[derive(Debug)]
pub struct Describe<E>(PhantomData<fn(&E)>);

impl<E> Describe<E> {
    /// The picker for `E`.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Describe<E> {
        Describe(PhantomData)
    }
}

/// Chosen for an `E` with a `Display`.
pub trait DescribeWithDisplay<E> {
    /// Its `Display`.
    fn describer(&self) -> fn(&E) -> Option<String>;
}

impl<E: Display> DescribeWithDisplay<E> for &Describe<E> {
    fn describer(&self) -> fn(&E) -> Option<String> {
        |error| Some(error.to_string())
    }
}

/// Chosen for any other `E`.
pub trait DescribeWithout<E> {
    /// Nothing: the error's Python value describes it.
    fn describer(&self) -> fn(&E) -> Option<String>;
}

impl<E> DescribeWithout<E> for Describe<E> {
    fn describer(&self) -> fn(&E) -> Option<String> {
        |_| None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Plain(u32);

    #[derive(Serialize)]
    struct Shown(u32);

    impl Display for Shown {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "shown {}", self.0)
        }
    }

    #[test]
    fn the_display_is_found_where_there_is_one() {
        let shown = (&&Describe::<Shown>::new()).describer();
        assert_eq!(shown(&Shown(1)), Some("shown 1".into()));
        #[allow(clippy::needless_borrow)]
        let plain = (&&Describe::<Plain>::new()).describer();
        assert_eq!(plain(&Plain(1)), None);
    }

    #[test]
    fn bincode_sees_the_error_alone() {
        let raised = Raised::new(Shown(7), (&&Describe::<Shown>::new()).describer());
        let mut with = bytes::BytesMut::new();
        crate::codec::Format::Bincode
            .encode_into(&raised, &mut with)
            .unwrap();
        let mut alone = bytes::BytesMut::new();
        crate::codec::Format::Bincode
            .encode_into(&Shown(7), &mut alone)
            .unwrap();
        assert_eq!(with, alone);
    }
}
