//! `FrameReader`: reads whole frames off a byte stream, enforcing the size limit, the frame
//! deadline and the memory budget for large frames.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use std::marker::PhantomData;

use crate::protocol::pyro5::{self, Pyro5Message};
use crate::protocol::{HEADER_LEN, Message, ProtocolError};

/// A protocol's frames, as a reader needs to know them: how long the header is, what length
/// it announces, and how a whole frame is taken off the buffer.
pub(crate) trait Framing {
    const HEADER_LEN: usize;
    fn announced_len(src: &[u8]) -> Option<usize>;
    fn decode(src: &mut BytesMut, max_body_len: usize) -> Result<Option<Self>, ProtocolError>
    where
        Self: Sized;
}

impl Framing for Message {
    const HEADER_LEN: usize = HEADER_LEN;
    fn announced_len(src: &[u8]) -> Option<usize> {
        Message::announced_len(src)
    }
    fn decode(src: &mut BytesMut, max_body_len: usize) -> Result<Option<Message>, ProtocolError> {
        Message::decode(src, max_body_len)
    }
}

impl Framing for Pyro5Message {
    const HEADER_LEN: usize = pyro5::HEADER_LEN;
    fn announced_len(src: &[u8]) -> Option<usize> {
        Pyro5Message::announced_len(src)
    }
    fn decode(
        src: &mut BytesMut,
        max_body_len: usize,
    ) -> Result<Option<Pyro5Message>, ProtocolError> {
        Pyro5Message::decode(src, max_body_len)
    }
}

/// The most buffer reserved at once for an incomplete frame: a frame up to this size gets its
/// whole buffer in one allocation; a larger one grows as its bytes arrive. Pages of a reserved
/// but unfilled buffer are not touched, so a header that announces a large body costs little
/// memory until the bytes really arrive. 2 MiB, so that a payload of a round megabyte (a frame
/// a few bytes over 1 MiB) is never copied to grow its buffer.
const READ_CHUNK: usize = 2 * 1024 * 1024;

/// The least buffer a read gets, so small frames that arrive together are read in one call.
/// A connection allocates it at its first read, not before.
const READ_MIN: usize = 4 * 1024;

/// The room below which a read first makes room again (up to `READ_MIN`).
const READ_LOW: usize = 1024;

/// Why reading a frame failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// The peer broke the protocol or a limit.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads whole frames from a byte stream, enforcing the size limit and the frame deadline.
#[derive(Debug)]
pub(crate) struct FrameReader<R, F = Message> {
    io: R,
    buf: BytesMut,
    max_body_len: usize,
    frame_timeout: Duration,
    /// When the incomplete frame at the front of `buf` was first found incomplete: a frame
    /// that arrives whole in one read never reads the clock.
    frame_started: Option<Instant>,
    /// Memory that large frames must reserve before their bodies are read, if limited.
    budget: Option<Budget>,
    /// The share of the budget held by the large frame being read.
    held: Option<OwnedSemaphorePermit>,
    framing: PhantomData<fn() -> F>,
}

/// Bytes that large frames being received may occupy at once, over many connections, counted in
/// KiB. A frame that does not fit waits, within its frame deadline, and is not read meanwhile.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    kib: Arc<Semaphore>,
    total_kib: u32,
}

impl Budget {
    pub(crate) fn new(bytes: usize) -> Budget {
        let total_kib = u32::try_from(bytes / 1024)
            .unwrap_or(u32::MAX)
            .clamp(1, Semaphore::MAX_PERMITS as u32);
        Budget {
            kib: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }
}

/// Frames up to this size are read without drawing on the budget: they are cheap, and the
/// common case should not touch a shared counter.
const BUDGET_EXEMPT: usize = 64 * 1024;

/// What a large frame may hold of the budget before any of its body has arrived.
const BUDGET_STEP: usize = 16 * 1024;

impl<R: AsyncRead + Unpin, F: Framing> FrameReader<R, F> {
    pub(crate) fn new(io: R, max_body_len: usize, frame_timeout: Duration) -> FrameReader<R, F> {
        FrameReader {
            io,
            buf: BytesMut::new(),
            max_body_len,
            frame_timeout,
            frame_started: None,
            budget: None,
            held: None,
            framing: PhantomData,
        }
    }

    /// The stream read from.
    pub(crate) fn get_ref(&self) -> &R {
        &self.io
    }

    /// Makes large frames draw on `budget` while they arrive.
    pub(crate) fn with_budget(mut self, budget: Budget) -> FrameReader<R, F> {
        self.budget = Some(budget);
        self
    }

    /// Changes the largest body accepted from the next frame on (a handshake gets a small
    /// limit, the calls after it the full one).
    pub(crate) fn set_max_body_len(&mut self, max_body_len: usize) {
        self.max_body_len = max_body_len;
    }

    /// The next message, if it has already been read whole; reads nothing more.
    #[inline]
    pub(crate) fn buffered_message(&mut self) -> Result<Option<F>, ProtocolError> {
        // Most often asked of an empty buffer, between frames.
        if self.buf.len() < F::HEADER_LEN {
            return Ok(None);
        }
        let message = F::decode(&mut self.buf, self.max_body_len)?;
        if message.is_some() {
            self.frame_started = None;
            self.held = None;
        }
        Ok(message)
    }

    /// Reads the next message; `Ok(None)` when the peer closed the stream between frames.
    ///
    /// Cancel-safe: bytes read so far stay in the buffer, and the frame deadline is kept
    /// across calls, so a caller may use this in `select!`.
    pub(crate) async fn read_message(&mut self) -> Result<Option<F>, ReadError> {
        loop {
            if let Some(message) = self.buffered_message()? {
                return Ok(Some(message));
            }
            self.note_partial_frame();
            let allowed = self.draw_on_budget().await?;
            self.reserve_for_read();
            let deadline = self
                .frame_started
                .map(|started| started + self.frame_timeout);
            let read = if allowed == usize::MAX {
                read_within(&mut self.io, &mut self.buf, deadline, self.frame_timeout).await?
            } else {
                let room = (self.buf.capacity() - self.buf.len()).min(allowed);
                let mut window = (&mut self.buf).limit(room);
                read_within(&mut self.io, &mut window, deadline, self.frame_timeout).await?
            };
            if read == 0 {
                return self.end_of_stream();
            }
        }
    }

    /// For a large frame, takes from the budget what the next read may bring, and returns how
    /// many bytes that read may take (`usize::MAX` for a frame the budget does not cover).
    ///
    /// A frame holds at most twice what has arrived of it (and [`BUDGET_STEP`] at first), not
    /// what its header announces: a header alone cannot hold megabytes of the budget, so
    /// starving other connections costs real bytes sent within the frame deadline.
    async fn draw_on_budget(&mut self) -> Result<usize, ProtocolError> {
        let (Some(budget), Some(len)) = (&self.budget, F::announced_len(&self.buf)) else {
            return Ok(usize::MAX);
        };
        if len <= BUDGET_EXEMPT {
            return Ok(usize::MAX);
        }
        let arrived = self.buf.len();
        let wanted = len.min(arrived + arrived.max(BUDGET_STEP));
        let wanted_kib = u32::try_from(wanted.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .min(budget.total_kib);
        let held_kib = self.held.as_ref().map_or(0, |held| {
            u32::try_from(held.num_permits()).unwrap_or(u32::MAX)
        });
        if wanted_kib > held_kib {
            let deadline = self.frame_started.unwrap_or_else(Instant::now) + self.frame_timeout;
            let more = budget.kib.clone().acquire_many_owned(wanted_kib - held_kib);
            let permit = tokio::time::timeout_at(deadline, more)
                .await
                .map_err(|_| ProtocolError::FrameTimeout(self.frame_timeout))?;
            // The semaphore is never closed, so acquiring fails only by the deadline.
            if let Ok(permit) = permit {
                match &mut self.held {
                    Some(held) => held.merge(permit),
                    None => self.held = Some(permit),
                }
            }
        }
        let held_bytes = self
            .held
            .as_ref()
            .map_or(0, |held| held.num_permits().saturating_mul(1024));
        // A frame larger than the whole budget gets it all, then reads the rest unbudgeted.
        if wanted_kib >= budget.total_kib && held_bytes >= budget.total_kib as usize * 1024 {
            return Ok(usize::MAX);
        }
        Ok(held_bytes.saturating_sub(arrived).max(1))
    }

    /// Bytes read and not yet taken as messages.
    pub(crate) fn buffered_len(&self) -> usize {
        self.buf.len()
    }

    /// Reads more bytes without decoding them, while fewer than `limit` wait in the buffer:
    /// how many arrived, 0 when the peer closed the stream. Cancel-safe.
    pub(crate) async fn read_ahead(&mut self, limit: usize) -> std::io::Result<usize> {
        let room = limit.saturating_sub(self.buf.len());
        if self.buf.capacity() - self.buf.len() < room {
            self.buf.reserve(room);
        }
        let mut window = (&mut self.buf).limit(room);
        self.io.read_buf(&mut window).await
    }

    /// Starts the frame deadline of an incomplete frame, if it has not started: a frame that
    /// arrives whole in one read never reads the clock.
    fn note_partial_frame(&mut self) {
        if !self.buf.is_empty() && self.frame_started.is_none() {
            self.frame_started = Some(Instant::now());
        }
    }

    /// Room for the next read: the rest of the frame, at least `READ_MIN`, at most
    /// `READ_CHUNK`. A buffer with room for the rest of the frame and `READ_LOW` more is read
    /// into as it is, which spares small frames a reserve per read.
    fn reserve_for_read(&mut self) {
        let announced = F::announced_len(&self.buf);
        let wanted = announced.unwrap_or(F::HEADER_LEN) - self.buf.len();
        let room = self.buf.capacity() - self.buf.len();
        if room < wanted.min(READ_CHUNK) + READ_LOW {
            self.buf.reserve(wanted.clamp(READ_MIN, READ_CHUNK));
        }
    }

    /// The outcome of the peer closing the stream: clean between frames, truncation inside one.
    fn end_of_stream(&self) -> Result<Option<F>, ReadError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        Err(ProtocolError::Truncated {
            received: self.buf.len(),
            expected: F::announced_len(&self.buf).unwrap_or(F::HEADER_LEN),
        }
        .into())
    }
}

/// Reads into `buf`, within the frame deadline if one runs (the common case, a frame that
/// starts arriving whole, reads the clock never).
async fn read_within<R: AsyncRead + Unpin, B: BufMut>(
    io: &mut R,
    buf: &mut B,
    deadline: Option<Instant>,
    frame_timeout: Duration,
) -> Result<usize, ReadError> {
    match deadline {
        None => Ok(io.read_buf(buf).await?),
        Some(deadline) => Ok(tokio::time::timeout_at(deadline, io.read_buf(buf))
            .await
            .map_err(|_| ProtocolError::FrameTimeout(frame_timeout))??),
    }
}

/// A byte stream that can be read without waiting, such as a socket half.
pub(crate) trait TryRead {
    /// Reads what has arrived into `buf`; `WouldBlock` if nothing has.
    fn try_read_buf(&mut self, buf: &mut BytesMut) -> std::io::Result<usize>;
}

impl TryRead for tokio::net::tcp::OwnedReadHalf {
    fn try_read_buf(&mut self, buf: &mut BytesMut) -> std::io::Result<usize> {
        tokio::net::tcp::OwnedReadHalf::try_read_buf(self, buf)
    }
}

impl TryRead for tokio::net::unix::OwnedReadHalf {
    fn try_read_buf(&mut self, buf: &mut BytesMut) -> std::io::Result<usize> {
        tokio::net::unix::OwnedReadHalf::try_read_buf(self, buf)
    }
}

impl<R: AsyncRead + TryRead + Unpin, F: Framing> FrameReader<R, F> {
    /// The next message if it has arrived whole, reading only what the stream already holds;
    /// `None` if no whole message has arrived. With no budget in use and nothing arrived, this
    /// costs no system call: the socket's readiness says so.
    pub(crate) fn try_read_message(&mut self) -> Option<Result<Option<F>, ReadError>> {
        // A frame that must wait for the budget is left to `read_message`.
        if self.budget.is_some() {
            return None;
        }
        loop {
            match self.buffered_message() {
                Ok(Some(message)) => return Some(Ok(Some(message))),
                Ok(None) => {}
                Err(error) => return Some(Err(error.into())),
            }
            self.reserve_for_read();
            match self.io.try_read_buf(&mut self.buf) {
                Ok(0) => return Some(self.end_of_stream()),
                Ok(_) => {}
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                    self.note_partial_frame();
                    return None;
                }
                Err(error) => return Some(Err(error.into())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::protocol::{Flags, Kind};

    #[tokio::test]
    async fn reads_frames_and_clean_eof() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&Message::encode(Kind::Ping, Flags::NONE, 1, b"x", 100).unwrap());
        bytes.extend_from_slice(&Message::encode(Kind::Pong, Flags::NONE, 2, b"", 100).unwrap());
        let mut reader = FrameReader::<_, Message>::new(&bytes[..], 100, Duration::from_secs(1));
        for expected in [1, 2] {
            let message = reader.read_message().await.unwrap().unwrap();
            assert_eq!(message.header.request_id, expected);
        }
        assert!(reader.read_message().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn eof_inside_a_frame_is_truncation() {
        let frame = Message::encode(Kind::Ping, Flags::NONE, 1, b"abcdef", 100).unwrap();
        let mut reader = FrameReader::<_, Message>::new(&frame[..23], 100, Duration::from_secs(1));
        assert!(matches!(
            reader.read_message().await,
            Err(ReadError::Protocol(ProtocolError::Truncated {
                received: 23,
                expected: 26
            }))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_frame_hits_the_frame_deadline() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(&MAGIC_AND_MORE).await.unwrap();
        let mut reader = FrameReader::<_, Message>::new(server, 100, Duration::from_secs(3));
        let started = Instant::now();
        assert!(matches!(
            reader.read_message().await,
            Err(ReadError::Protocol(ProtocolError::FrameTimeout(_)))
        ));
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        drop(client);
    }

    const MAGIC_AND_MORE: [u8; 6] = [b'R', b'O', b'B', b'J', 0, 1];

    #[tokio::test]
    async fn trying_to_read_takes_only_what_has_arrived() {
        let (read, write) = tokio::net::UnixStream::pair().unwrap();
        let (read, _) = read.into_split();
        let mut reader = FrameReader::<_, Message>::new(read, 100, Duration::from_secs(1));
        assert!(reader.try_read_message().is_none(), "nothing has arrived");

        let frame = Message::encode(Kind::Ping, Flags::NONE, 9, b"abcdef", 100).unwrap();
        write.writable().await.unwrap();
        write.try_write(&frame[..7]).unwrap();
        assert!(reader.try_read_message().is_none(), "part of a frame");
        write.try_write(&frame[7..]).unwrap();
        // Readiness reaches the socket half through the runtime: wait for it.
        reader.io.readable().await.unwrap();
        let message = reader.try_read_message().unwrap().unwrap().unwrap();
        assert_eq!(message.header.request_id, 9);
        assert_eq!(&message.body[..], b"abcdef");

        drop(write);
        reader.io.readable().await.unwrap();
        let end = reader.try_read_message().unwrap().unwrap();
        assert!(end.is_none(), "a clean end between frames");
    }

    #[tokio::test]
    async fn a_large_frame_waits_for_the_budget_and_is_not_read_meanwhile() {
        use futures_util::FutureExt;

        let budget = Budget::new(1 << 20);
        let frame =
            Message::encode(Kind::Ping, Flags::NONE, 1, &vec![7; 800 << 10], 1 << 20).unwrap();
        let (mut first_tx, first_rx) = tokio::io::duplex(2 << 20);
        let (mut second_tx, second_rx) = tokio::io::duplex(2 << 20);
        let mut first = FrameReader::<_, Message>::new(first_rx, 1 << 20, Duration::from_secs(60))
            .with_budget(budget.clone());
        let mut second =
            FrameReader::<_, Message>::new(second_rx, 1 << 20, Duration::from_secs(60))
                .with_budget(budget.clone());

        // The first frame arrives all but its end: it holds 800 of the 1,024 KiB.
        let end = frame.len() - 1000;
        first_tx.write_all(&frame[..end]).await.unwrap();
        assert!(first.read_message().now_or_never().is_none());
        assert_eq!(first.buf.len(), end);
        // The second arrives whole, but only what fits beside the first is read.
        second_tx.write_all(&frame).await.unwrap();
        assert!(second.read_message().now_or_never().is_none());
        assert!(
            second.buf.len() <= 224 << 10,
            "read {} KiB",
            second.buf.len() >> 10
        );
        assert!(
            budget.kib.available_permits() < 224,
            "the second holds its share"
        );

        // The first completes and gives its share back; now the second is read.
        first_tx.write_all(&frame[end..]).await.unwrap();
        assert_eq!(
            first.read_message().await.unwrap().unwrap().body.len(),
            800 << 10
        );
        assert_eq!(
            second.read_message().await.unwrap().unwrap().body.len(),
            800 << 10
        );
        assert_eq!(budget.kib.available_permits(), 1024);
    }

    #[tokio::test]
    async fn headers_alone_hold_little_of_the_budget() {
        use futures_util::FutureExt;

        let budget = Budget::new(2 << 20);
        let frame =
            Message::encode(Kind::Ping, Flags::NONE, 1, &vec![7; 800 << 10], 1 << 20).unwrap();
        // Thirty-two peers send the header of a large frame and nothing more.
        let mut stalled = Vec::new();
        for _ in 0..32 {
            let (mut tx, rx) = tokio::io::duplex(1 << 20);
            let mut reader = FrameReader::<_, Message>::new(rx, 1 << 20, Duration::from_secs(60))
                .with_budget(budget.clone());
            tx.write_all(&frame[..HEADER_LEN]).await.unwrap();
            assert!(reader.read_message().now_or_never().is_none());
            stalled.push((tx, reader));
        }
        let held_kib = 2048 - budget.kib.available_permits();
        assert!(
            held_kib <= 32 * (BUDGET_STEP / 1024 + 1),
            "{held_kib} KiB held"
        );
        // An honest frame of the same size is read at once beside them.
        let (mut tx, rx) = tokio::io::duplex(2 << 20);
        let mut honest = FrameReader::<_, Message>::new(rx, 1 << 20, Duration::from_secs(60))
            .with_budget(budget.clone());
        tx.write_all(&frame).await.unwrap();
        let message = honest.read_message().now_or_never();
        assert!(
            matches!(&message, Some(Ok(Some(m))) if m.body.len() == 800 << 10),
            "{message:?}"
        );
    }
}
