//! The two halves of a proxy's socket, TCP or Unix, with the calls that never wait.

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::{tcp, unix};

use crate::connection::TryRead;

/// The read half of a proxy's socket.
#[derive(Debug)]
pub(crate) enum ReadHalf {
    Tcp(tcp::OwnedReadHalf),
    Unix(unix::OwnedReadHalf),
}

impl ReadHalf {
    /// Shuts the whole socket down, both ways, though the write half lives on in a task.
    pub(crate) fn shutdown(&self) {
        let socket = match self {
            ReadHalf::Tcp(half) => socket2::SockRef::from(half.as_ref()),
            ReadHalf::Unix(half) => socket2::SockRef::from(half.as_ref()),
        };
        // A socket that is closed already needs nothing more.
        let _ = socket.shutdown(std::net::Shutdown::Both);
    }
}

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ReadHalf::Tcp(half) => Pin::new(half).poll_read(cx, buf),
            ReadHalf::Unix(half) => Pin::new(half).poll_read(cx, buf),
        }
    }
}

impl TryRead for ReadHalf {
    fn try_read_buf(&mut self, buf: &mut BytesMut) -> std::io::Result<usize> {
        match self {
            ReadHalf::Tcp(half) => TryRead::try_read_buf(half, buf),
            ReadHalf::Unix(half) => TryRead::try_read_buf(half, buf),
        }
    }
}

/// The write half of a proxy's socket.
#[derive(Debug)]
pub(crate) enum WriteHalf {
    Tcp(tcp::OwnedWriteHalf),
    Unix(unix::OwnedWriteHalf),
}

impl WriteHalf {
    pub(crate) fn try_write_vectored(&self, slices: &[IoSlice<'_>]) -> std::io::Result<usize> {
        match self {
            WriteHalf::Tcp(half) => half.try_write_vectored(slices),
            WriteHalf::Unix(half) => half.try_write_vectored(slices),
        }
    }

    pub(crate) async fn writable(&self) -> std::io::Result<()> {
        match self {
            WriteHalf::Tcp(half) => half.writable().await,
            WriteHalf::Unix(half) => half.writable().await,
        }
    }
}
