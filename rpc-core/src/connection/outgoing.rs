//! `Outgoing`: frames waiting to be written, coalesced into few vectored writes.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Frames smaller than this are copied into a shared batch, so many small frames leave in one
/// write; larger ones are queued as they are, never copied.
const COPY_BELOW: usize = 4 * 1024;

/// The most buffers handed to one vectored write.
const MAX_IO_SLICES: usize = 64;

/// The largest written buffer kept for the next frame: room for a 64 KiB payload, and little
/// enough that an idle connection holds little.
const SPARE_MAX: usize = 64 * 1024 + 256;

/// Frames waiting to be written, coalesced into few vectored writes.
#[derive(Debug, Default)]
pub(crate) struct Outgoing {
    queue: VecDeque<BytesMut>,
    /// Small frames gathered since the last buffer in `queue`.
    batch: BytesMut,
    /// Bytes queued in all, for back-pressure.
    len: usize,
    /// A buffer already written, for the next frame: a busy connection allocates no frames.
    spare: Option<BytesMut>,
}

impl Outgoing {
    pub(crate) fn push(&mut self, frame: BytesMut) {
        // A frame that finds nothing waiting, the common case, is written as it is: copying
        // pays only when it gathers frames.
        let alone = self.len == 0;
        self.len += frame.len();
        if frame.len() < COPY_BELOW && !alone {
            self.batch.extend_from_slice(&frame);
        } else {
            self.seal_batch();
            self.queue.push_back(frame);
        }
    }

    /// An empty buffer for the next frame: one written before, if there is one.
    pub(crate) fn take_spare(&mut self) -> BytesMut {
        self.spare.take().unwrap_or_default()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes waiting to be written.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Hands the queued buffers to `write` as one vectored write, gathered on the stack. One
    /// buffer, the common case, is handed over without filling an array of slices (1 KiB).
    fn write_with<T>(&mut self, write: impl FnOnce(&[IoSlice<'_>]) -> T) -> T {
        self.seal_batch();
        if self.queue.len() == 1 {
            return write(&[IoSlice::new(&self.queue[0])]);
        }
        let mut slices = [IoSlice::new(&[]); MAX_IO_SLICES];
        let mut count = 0;
        for (slot, buffer) in slices.iter_mut().zip(&self.queue) {
            *slot = IoSlice::new(buffer);
            count += 1;
        }
        write(&slices[..count])
    }

    /// Accounts for a write the socket reported: `written` bytes left the queue.
    fn wrote(&mut self, written: usize) -> std::io::Result<()> {
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        self.advance(written);
        Ok(())
    }

    fn seal_batch(&mut self) {
        if !self.batch.is_empty() {
            // `split` keeps the batch's spare capacity for the next small frames.
            self.queue.push_back(self.batch.split());
        }
    }

    /// Writes as much as `write` takes of one vectored write; `Ok(false)` if it would block.
    /// For sockets written without awaiting, from whichever task holds them.
    pub(crate) fn try_write_with(
        &mut self,
        write: impl FnOnce(&[IoSlice<'_>]) -> std::io::Result<usize>,
    ) -> std::io::Result<bool> {
        match self.write_with(write) {
            Ok(written) => self.wrote(written).map(|()| true),
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
            Err(error) => Err(error),
        }
    }

    fn advance(&mut self, mut written: usize) {
        self.len -= written;
        while written > 0 {
            let Some(front) = self.queue.front_mut() else {
                break;
            };
            if written >= front.len() {
                written -= front.len();
                if let Some(mut done) = self.queue.pop_front()
                    && self.spare.is_none()
                    && done.capacity() <= SPARE_MAX
                {
                    done.clear();
                    self.spare = Some(done);
                }
            } else {
                front.advance(written);
                written = 0;
            }
        }
    }

    /// Writes as much as one vectored write takes, if the socket takes it now. Cancel-safe:
    /// the queue only advances by what a completed write reports. (A poll function rather
    /// than an async one: the slices live on the stack, not in a future that is moved about.)
    pub(crate) fn poll_write_to<W: AsyncWrite + Unpin>(
        &mut self,
        io: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        let written =
            ready!(self.write_with(|slices| Pin::new(&mut *io).poll_write_vectored(cx, slices)))?;
        Poll::Ready(self.wrote(written))
    }

    /// Writes as much as one vectored write takes; see [`poll_write_to`](Self::poll_write_to).
    pub(crate) async fn write_to<W: AsyncWrite + Unpin>(
        &mut self,
        io: &mut W,
    ) -> std::io::Result<()> {
        std::future::poll_fn(|cx| self.poll_write_to(io, cx)).await
    }

    /// Writes everything queued.
    pub(crate) async fn flush_to<W: AsyncWrite + Unpin>(
        &mut self,
        io: &mut W,
    ) -> std::io::Result<()> {
        while !self.is_empty() {
            self.write_to(io).await?;
        }
        io.flush().await
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    #[tokio::test]
    async fn outgoing_keeps_order_across_small_and_large_frames() {
        let mut outgoing = Outgoing::default();
        let frames: Vec<BytesMut> = [3, 5000, 2, 1, 9000, 4]
            .iter()
            .enumerate()
            .map(|(i, len)| BytesMut::from(&vec![i as u8; *len][..]))
            .collect();
        for frame in &frames {
            outgoing.push(frame.clone());
        }
        // A tiny pipe forces many partial writes.
        let (mut client, mut server) = tokio::io::duplex(7);
        let reading = tokio::spawn(async move {
            let mut all = Vec::new();
            server.read_to_end(&mut all).await.unwrap();
            all
        });
        outgoing.flush_to(&mut client).await.unwrap();
        assert!(outgoing.is_empty());
        drop(client);
        let expected: Vec<u8> = frames.iter().flat_map(|f| f.to_vec()).collect();
        assert_eq!(reading.await.unwrap(), expected);
    }
}
