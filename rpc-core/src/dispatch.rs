//! `Dispatch`: the object-safe trait that generated skeletons implement, and `Call`, what a
//! skeleton sees of one incoming call.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::BytesMut;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::Format;
use crate::protocol::{Flags, FrameBuilder, Kind, ProtocolError, RemoteError};

/// The future a skeleton returns for one call: the encoded reply frame, or why there is none.
pub type DispatchFuture = Pin<Box<dyn Future<Output = Result<BytesMut, RemoteError>> + Send>>;

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
}

/// One incoming call, as a skeleton sees it.
pub struct Call<'a> {
    pub(crate) object: &'a str,
    pub(crate) method: &'a str,
    pub(crate) args: &'a [u8],
    pub(crate) format: Format,
    pub(crate) request_id: u64,
    pub(crate) oneway: bool,
    pub(crate) max_body_len: usize,
    /// `Config::max_nesting_depth` of the daemon.
    pub(crate) max_nesting_depth: usize,
    /// A buffer for the reply frame, from the connection's earlier replies.
    pub(crate) reply_buffer: Cell<BytesMut>,
}

impl fmt::Debug for Call<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("object", &self.object)
            .field("method", &self.method)
            .field("request_id", &self.request_id)
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
        self.format
            .decode_nested(self.args, self.max_nesting_depth)
            .map_err(|error| RemoteError::BadArguments {
                method: method.to_owned(),
                detail: error.to_string(),
            })
    }

    /// The error for a method this object does not have.
    pub fn unknown_method(&self) -> RemoteError {
        RemoteError::UnknownMethod {
            object: self.object.to_owned(),
            method: self.method.to_owned(),
        }
    }

    /// Runs `future` and encodes its output as the reply (nothing for a oneway call).
    pub fn respond<F>(&self, method: &'static str, future: F) -> DispatchFuture
    where
        F: Future + Send + 'static,
        F::Output: Serialize,
    {
        let Call {
            format,
            request_id,
            oneway,
            max_body_len,
            ..
        } = *self;
        let buffer = self.reply_buffer.take();
        Box::pin(async move {
            let value = future.await;
            if oneway {
                return Ok(BytesMut::new());
            }
            let mut frame = FrameBuilder::in_buffer(buffer, Kind::Reply, Flags::NONE, request_id);
            format
                .encode_into(&value, frame.body_mut())
                .map_err(|error| RemoteError::BadResult {
                    method: method.to_owned(),
                    detail: error.to_string(),
                })?;
            frame.finish(max_body_len).map_err(|error| match error {
                ProtocolError::MessageTooLarge { size, limit } => RemoteError::ReplyTooLarge {
                    method: method.to_owned(),
                    size,
                    limit,
                },
                other => RemoteError::BadResult {
                    method: method.to_owned(),
                    detail: other.to_string(),
                },
            })
        })
    }
}
