//! `Dispatch`: the object-safe trait that generated skeletons implement; `Call`, what a
//! skeleton sees of one incoming call; `Encoded`, the value it answers with; and `MethodInfo`,
//! the method table a skeleton describes itself with.
//!
//! A skeleton never sees a frame: it decodes its arguments with the format the connection
//! hands it and encodes its result with the same format, and the connection wraps that result
//! in a frame of its own protocol.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::BytesMut;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{Format, PyValue};
use crate::protocol::RemoteError;

/// The future a skeleton returns for one call: the encoded return value, or why there is none.
pub type DispatchFuture = Pin<Box<dyn Future<Output = Result<Encoded, RemoteError>> + Send>>;

/// A method's return value, encoded by its connection's format.
///
/// The encoding sits behind room the connection keeps for its own frame header, so wrapping
/// it in a frame copies nothing. A oneway call's value is empty: nobody reads it.
#[derive(Debug)]
pub struct Encoded {
    buf: BytesMut,
    headroom: usize,
    raised: bool,
}

impl Encoded {
    /// An encoded value in `buf` behind `headroom` bytes kept for the frame header.
    pub(crate) fn from_parts(buf: BytesMut, headroom: usize) -> Encoded {
        Encoded {
            buf,
            headroom,
            raised: false,
        }
    }

    /// Whether the value is a method's error, to be raised as an exception (Pyro5's formats
    /// only; our own protocol carries a returned `Result` as a value).
    pub fn raised(&self) -> bool {
        self.raised
    }

    /// The encoded value.
    pub fn body(&self) -> &[u8] {
        &self.buf[self.headroom..]
    }

    /// The buffer, whose first `headroom` bytes are the connection's to fill, and `headroom`.
    pub(crate) fn into_parts(self) -> (BytesMut, usize) {
        (self.buf, self.headroom)
    }
}

/// One remote method, as a service describes it: what a daemon can tell a client that asks
/// (Pyro5's metadata) and what binds keyword arguments to positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodInfo {
    /// The name on the wire.
    pub name: &'static str,
    /// The names of its arguments, in order.
    pub params: &'static [&'static str],
    /// Whether it is declared `#[oneway]`: callers get no reply.
    pub oneway: bool,
}

/// A server-side object that can answer calls by method name.
///
/// `#[service]` implements this for the generated `{Trait}Skeleton<T>`; you rarely implement
/// it by hand. The daemon hands every call to [`dispatch`](Dispatch::dispatch), which decodes
/// the arguments, starts the method and returns its future.
pub trait Dispatch: Send + Sync + 'static {
    /// Starts `call` on this object.
    ///
    /// # Errors
    ///
    /// [`RemoteError::UnknownMethod`] or [`RemoteError::BadArguments`] when the call cannot
    /// start; the daemon sends the error to the caller.
    fn dispatch(self: Arc<Self>, call: &Call<'_>) -> Result<DispatchFuture, RemoteError>;

    /// The methods this type answers: generated skeletons list them all; a hand-written
    /// implementation lists none unless it says otherwise.
    fn methods() -> &'static [MethodInfo]
    where
        Self: Sized,
    {
        &[]
    }
}

/// One incoming call, as a skeleton sees it.
pub struct Call<'a> {
    pub(crate) object: &'a str,
    pub(crate) method: &'a str,
    pub(crate) args: Args<'a>,
    pub(crate) format: Format,
    pub(crate) oneway: bool,
    pub(crate) max_body_len: usize,
    /// `Config::max_nesting_depth` of the daemon.
    pub(crate) max_nesting_depth: usize,
    /// A buffer for the result, from the connection's earlier replies, already holding the
    /// `headroom` bytes the connection keeps for its frame header.
    pub(crate) reply_buffer: Cell<BytesMut>,
    pub(crate) headroom: usize,
}

/// A call's arguments, as its connection read them.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Args<'a> {
    /// The argument tuple, encoded in the connection's format.
    Encoded(&'a [u8]),
    /// A Pyro5 call's arguments, bound to the method's parameters; `missing` names those the
    /// caller did not give.
    Python {
        args: &'a PyValue,
        missing: &'a [&'static str],
    },
}

impl fmt::Debug for Call<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("object", &self.object)
            .field("method", &self.method)
            .field("oneway", &self.oneway)
            .finish_non_exhaustive()
    }
}

impl Call<'_> {
    /// The method called.
    pub fn method(&self) -> &str {
        self.method
    }

    /// Decodes the arguments as the tuple `T`, in the format of the connection they came on.
    ///
    /// # Errors
    ///
    /// [`RemoteError::BadArguments`] if they do not decode as `T`.
    pub fn decode_args<T: DeserializeOwned>(&self, method: &'static str) -> Result<T, RemoteError> {
        let bad = |detail: String| RemoteError::BadArguments {
            method: method.to_owned(),
            detail,
        };
        match self.args {
            Args::Encoded(bytes) => self
                .format
                .decode_nested(bytes, self.max_nesting_depth)
                .map_err(|error| bad(error.to_string())),
            Args::Python { args, missing } => T::deserialize(args).map_err(|error| match missing {
                [] => bad(error.to_string()),
                // Python's own words for it.
                missing => bad(format!(
                    "missing {} required argument{}: {}",
                    missing.len(),
                    if missing.len() == 1 { "" } else { "s" },
                    missing
                        .iter()
                        .map(|name| format!("'{name}'"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }),
        }
    }

    /// The error for a method this object does not have.
    pub fn unknown_method(&self) -> RemoteError {
        RemoteError::UnknownMethod {
            object: self.object.to_owned(),
            method: self.method.to_owned(),
        }
    }

    /// Runs `future` and encodes its output as the call's result (nothing for a oneway call).
    pub fn respond<F>(&self, method: &'static str, future: F) -> DispatchFuture
    where
        F: Future + Send + 'static,
        F::Output: Serialize,
    {
        let Call {
            format,
            oneway,
            max_body_len,
            headroom,
            ..
        } = *self;
        let mut buf = self.reply_buffer.take();
        Box::pin(async move {
            let value = future.await;
            if oneway {
                return Ok(Encoded::from_parts(BytesMut::new(), 0));
            }
            let raised = format
                .encode_outcome_into(&value, &mut buf)
                .map_err(|error| RemoteError::BadResult {
                    method: method.to_owned(),
                    detail: error.to_string(),
                })?;
            if buf.len() - headroom > max_body_len {
                return Err(RemoteError::ReplyTooLarge {
                    method: method.to_owned(),
                    size: buf.len() as u64,
                    limit: max_body_len.saturating_add(headroom),
                });
            }
            Ok(Encoded {
                buf,
                headroom,
                raised,
            })
        })
    }
}
