//! Frames over a byte stream: `FrameReader` reads whole messages, `Outgoing` queues and writes
//! them.
//!
//! Both the daemon and the proxy use these; neither knows anything of what the frames mean.

mod outgoing;
mod reader;

pub(crate) use outgoing::Outgoing;
pub(crate) use reader::{Budget, FrameReader, ReadError, TryRead};
