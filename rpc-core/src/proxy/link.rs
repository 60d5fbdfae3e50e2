//! `Link`: one open connection of a proxy, with its reader and writer tasks.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::task::JoinHandle;

use super::pending::{Ended, Pending};
use super::writer::{WriteHalf, Writer};
use crate::codec::Format;
use crate::connection::{FrameReader, ReadError};
use crate::protocol::{Flags, Kind, Message, ProtocolError, RemoteError};
use crate::{Config, Error, Location};

/// An open, handshaken connection to one object at a daemon.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) writer: Arc<Writer>,
    pub(crate) pending: Arc<Pending>,
    pub(crate) format: Format,
    tasks: [JoinHandle<()>; 2],
}

impl Drop for Link {
    fn drop(&mut self) {
        // The last proxy clone is gone: stop the tasks, which closes the socket.
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Link {
    /// Connects to `location`, performs the handshake for `object`, and starts the tasks.
    pub(crate) async fn connect(
        location: &Location,
        object: &str,
        config: &Config,
    ) -> Result<Link, Error> {
        let address = location.to_string();
        let connect_error = |source| Error::Connect {
            address: address.clone(),
            source,
        };
        let opening = async {
            match location {
                Location::Tcp { host, port } => {
                    let stream = TcpStream::connect((host.as_str(), *port))
                        .await
                        .map_err(connect_error)?;
                    // Small calls must not wait for Nagle's algorithm.
                    stream.set_nodelay(true).map_err(connect_error)?;
                    let (read, write) = stream.into_split();
                    Link::handshake(read, write, WriteHalf::Tcp, object, config).await
                }
                Location::Unix(path) => {
                    let stream = UnixStream::connect(path).await.map_err(connect_error)?;
                    let (read, write) = stream.into_split();
                    Link::handshake(read, write, WriteHalf::Unix, object, config).await
                }
            }
        };
        match tokio::time::timeout(config.connect_timeout, opening).await {
            Ok(link) => link,
            Err(_) => Err(connect_error(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "no connection and handshake within {:?} (see `Config::connect_timeout`)",
                    config.connect_timeout
                ),
            ))),
        }
    }

    async fn handshake<R, W>(
        read: R,
        mut write: W,
        into_half: fn(W) -> WriteHalf,
        object: &str,
        config: &Config,
    ) -> Result<Link, Error>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let max_body_len = config.max_body_len();
        let hello = Message::encode(
            Kind::Handshake,
            Flags::NONE,
            0,
            object.as_bytes(),
            max_body_len,
        )?;
        write
            .write_all(&hello)
            .await
            .map_err(|e| Error::ConnectionLost(format!("sending the handshake failed: {e}")))?;
        let mut reader = FrameReader::new(read, max_body_len, config.frame_timeout);
        let format = Format::Bincode;
        let reply = match reader.read_message().await {
            Ok(Some(reply)) => reply,
            Ok(None) => {
                return Err(Error::ConnectionLost(
                    "the daemon closed the connection during the handshake".into(),
                ));
            }
            Err(error) => return Err(read_error(error).to_error()),
        };
        match reply.header.kind {
            Kind::HandshakeReply if !reply.header.flags.contains(Flags::FAILURE) => {}
            Kind::HandshakeReply | Kind::Close => {
                let remote = decode_remote_error(format, &reply.body)?;
                return Err(Error::from_remote(remote, config.call_timeout));
            }
            kind => {
                return Err(ProtocolError::Unexpected {
                    kind,
                    context: "the daemon must answer the handshake first",
                }
                .into());
            }
        }
        let pending = Arc::new(Pending::default());
        let (writer, writing) = Writer::start(into_half(write), pending.clone());
        let reading = tokio::spawn(read_replies(
            reader,
            pending.clone(),
            writer.clone(),
            format,
        ));
        Ok(Link {
            writer,
            pending,
            format,
            tasks: [reading, writing],
        })
    }

    /// Whether the connection can still carry calls.
    ///
    /// A link whose tasks are gone (their runtime shut down, as happens when a proxy outlives
    /// the runtime that connected it) can carry nothing, though nothing ended it.
    pub(crate) fn is_open(&self) -> bool {
        !self.pending.has_ended() && !self.tasks.iter().any(JoinHandle::is_finished)
    }
}

/// Routes every reply to its call until the connection ends, then fails the calls left.
async fn read_replies<R: AsyncRead + Unpin>(
    mut reader: FrameReader<R>,
    pending: Arc<Pending>,
    writer: Arc<Writer>,
    format: Format,
) {
    let ended = loop {
        let message = match reader.read_message().await {
            Ok(Some(message)) => message,
            Ok(None) => break Ended::Lost("the daemon closed the connection".into()),
            Err(error) => break read_error(error),
        };
        let header = message.header;
        match header.kind {
            // A reply nobody waits for belongs to a call that was cancelled or timed out.
            Kind::Reply => {
                pending.complete(header.request_id, message);
            }
            Kind::Ping => {
                let pong = Message::encode(
                    Kind::Pong,
                    Flags::NONE,
                    header.request_id,
                    &message.body,
                    usize::MAX,
                );
                if let Ok(pong) = pong {
                    // A failed send has already ended the connection.
                    let _ = writer.send(pong);
                }
            }
            Kind::Pong => {
                pending.complete(header.request_id, message);
            }
            Kind::Close => {
                let reason = match decode_remote_error(format, &message.body) {
                    Ok(remote) => format!("the daemon closed the connection: {remote}"),
                    Err(error) => format!(
                        "the daemon closed the connection with an unreadable reason: {error}"
                    ),
                };
                break Ended::Lost(reason);
            }
            kind => {
                break Ended::Protocol(ProtocolError::Unexpected {
                    kind,
                    context: "a daemon sends only replies, pings, pongs and close after the handshake",
                });
            }
        }
    };
    tracing::debug!(target: "rpc_core::proxy", ?ended, "connection ended");
    pending.end(ended);
}

fn read_error(error: ReadError) -> Ended {
    match error {
        ReadError::Protocol(error) => Ended::Protocol(error),
        ReadError::Io(error) => Ended::Lost(error.to_string()),
    }
}

/// Decodes the `RemoteError` in a failure frame.
pub(crate) fn decode_remote_error(format: Format, body: &[u8]) -> Result<RemoteError, Error> {
    format.decode(body).map_err(|source| Error::Codec {
        what: "the daemon's error report".into(),
        source,
    })
}
