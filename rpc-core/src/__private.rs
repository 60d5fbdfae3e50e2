//! Items that `#[service]` output names. Not part of the public API; may change at any time.

mod raised;

pub use raised::{Describe, DescribeWithDisplay, DescribeWithout, Raised};
pub use serde;
pub use serde_bytes;

pub use crate::blocking::{block_on, start};

use crate::error::{CallError, Error};

/// Flattens the result of a call to a method declared as returning `Result<T, E>`.
pub fn method_result<T, E>(result: Result<Result<T, E>, Error>) -> Result<T, CallError<E>> {
    match result {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(CallError::Method(error)),
        Err(error) => Err(CallError::Rpc(error)),
    }
}
