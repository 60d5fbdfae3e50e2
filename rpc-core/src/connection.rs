//! Frames over a byte stream: `FrameReader` reads whole messages, `write_frames` writes them.
//!
//! Both the daemon and the proxy use these; neither knows anything of what the frames mean.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::protocol::{HEADER_LEN, Message, ProtocolError};

/// The most buffer added per read while a frame is incomplete. Large frames grow the buffer
/// in steps of this size, so a header that announces a large body costs nothing until the
/// bytes really arrive.
const READ_CHUNK: usize = 64 * 1024;

/// The least buffer a read gets, so small frames that arrive together are read in one call.
/// A connection allocates it at its first read, not before.
const READ_MIN: usize = 4 * 1024;

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
pub(crate) struct FrameReader<R> {
    io: R,
    buf: BytesMut,
    max_body_len: usize,
    frame_timeout: Duration,
    /// When the first byte of the incomplete frame at the front of `buf` arrived.
    frame_started: Option<Instant>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub(crate) fn new(io: R, max_body_len: usize, frame_timeout: Duration) -> FrameReader<R> {
        FrameReader {
            io,
            buf: BytesMut::new(),
            max_body_len,
            frame_timeout,
            frame_started: None,
        }
    }

    /// Reads the next message; `Ok(None)` when the peer closed the stream between frames.
    ///
    /// Cancel-safe: bytes read so far stay in the buffer, and the frame deadline is kept
    /// across calls, so a caller may use this in `select!`.
    pub(crate) async fn read_message(&mut self) -> Result<Option<Message>, ReadError> {
        loop {
            if let Some(message) = Message::decode(&mut self.buf, self.max_body_len)? {
                self.frame_started = (!self.buf.is_empty()).then(Instant::now);
                return Ok(Some(message));
            }
            let wanted = Message::announced_len(&self.buf).unwrap_or(HEADER_LEN) - self.buf.len();
            self.buf.reserve(wanted.clamp(READ_MIN, READ_CHUNK));
            let read = match self.frame_started {
                None => self.io.read_buf(&mut self.buf).await?,
                Some(started) => {
                    let deadline = started + self.frame_timeout;
                    tokio::time::timeout_at(deadline, self.io.read_buf(&mut self.buf))
                        .await
                        .map_err(|_| ProtocolError::FrameTimeout(self.frame_timeout))??
                }
            };
            if read == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(ProtocolError::Truncated {
                    received: self.buf.len(),
                    expected: Message::announced_len(&self.buf).unwrap_or(HEADER_LEN),
                }
                .into());
            }
            if self.frame_started.is_none() {
                self.frame_started = Some(Instant::now());
            }
        }
    }
}

/// Frames at least this large are written straight from their own buffer instead of being
/// copied into a batch.
const LARGE_FRAME: usize = 16 * 1024;

/// The most bytes gathered into one write; also the batch capacity kept between writes, so an
/// idle connection holds no more than this (and one that never batched holds nothing).
const MAX_BATCH: usize = 64 * 1024;

/// Writes every frame sent on `frames` until all senders are gone. A lone frame is written as
/// it is; frames that are ready together are coalesced into one write.
pub(crate) async fn write_frames<W: AsyncWrite + Unpin>(
    mut io: W,
    mut frames: mpsc::Receiver<Bytes>,
) -> std::io::Result<()> {
    let mut batch = BytesMut::new();
    while let Some(first) = frames.recv().await {
        let mut next = frames.try_recv().ok();
        if next.is_none() {
            io.write_all(&first).await?;
            io.flush().await?;
            continue;
        }
        batch.extend_from_slice(&first);
        while let Some(frame) = next {
            if frame.len() >= LARGE_FRAME {
                io.write_all(&batch).await?;
                batch.clear();
                io.write_all(&frame).await?;
            } else {
                batch.extend_from_slice(&frame);
                if batch.len() >= MAX_BATCH {
                    io.write_all(&batch).await?;
                    batch.clear();
                }
            }
            next = frames.try_recv().ok();
        }
        io.write_all(&batch).await?;
        batch.clear();
        if batch.capacity() > MAX_BATCH {
            batch = BytesMut::new();
        }
        io.flush().await?;
    }
    io.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Flags, Kind};

    #[tokio::test]
    async fn reads_frames_and_clean_eof() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&Message::encode(Kind::Ping, Flags::NONE, 1, b"x", 100).unwrap());
        bytes.extend_from_slice(&Message::encode(Kind::Pong, Flags::NONE, 2, b"", 100).unwrap());
        let mut reader = FrameReader::new(&bytes[..], 100, Duration::from_secs(1));
        assert_eq!(
            reader
                .read_message()
                .await
                .unwrap()
                .unwrap()
                .header
                .request_id,
            1
        );
        assert_eq!(
            reader
                .read_message()
                .await
                .unwrap()
                .unwrap()
                .header
                .request_id,
            2
        );
        assert!(reader.read_message().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn eof_inside_a_frame_is_truncation() {
        let frame = Message::encode(Kind::Ping, Flags::NONE, 1, b"abcdef", 100).unwrap();
        let mut reader = FrameReader::new(&frame[..23], 100, Duration::from_secs(1));
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
        let mut reader = FrameReader::new(server, 100, Duration::from_secs(3));
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
    async fn writer_delivers_every_frame_in_order() {
        let (tx, rx) = mpsc::channel(4);
        let (client, mut server) = tokio::io::duplex(1024);
        let writer = tokio::spawn(write_frames(client, rx));
        for i in 0..10u8 {
            tx.send(Bytes::from(vec![i; 3])).await.unwrap();
        }
        drop(tx);
        writer.await.unwrap().unwrap();
        let mut all = Vec::new();
        server.read_to_end(&mut all).await.unwrap();
        let expected: Vec<u8> = (0..10u8).flat_map(|i| [i; 3]).collect();
        assert_eq!(all, expected);
    }
}
