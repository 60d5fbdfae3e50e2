//! A connection to a Python Pyro5 daemon: Pyro5's protocol 502 from the client's side, one
//! call at a time, as Pyro5 connections carry them.
//!
//! A proxy whose [`Config::pyro5_format`] is set calls through this instead of a [`Link`]:
//! it connects, sends CONNECT for its object, and then, per call, one INVOKE and its RESULT
//! (matched by sequence number). Concurrent calls through one proxy wait for each other.
//! A failed connection is dropped, and the next call connects again.
//!
//! [`Link`]: super::link::Link

use std::time::Duration;

use bytes::BytesMut;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::codec::{Format, PyException, PyValue, to_py_value};
use crate::config::Config;
use crate::connection::{FrameReader, ReadError};
use crate::error::{Disconnect, Error};
use crate::protocol::pyro5::{self, MessageType, Pyro5Message, flags, serializer_id, write_header};
use crate::uri::Location;

/// An open Pyro5 connection.
pub(crate) struct Pyro5Link {
    reader: FrameReader<OwnedReadHalf, Pyro5Message>,
    writer: OwnedWriteHalf,
    format: Format,
    object: String,
    seq: u16,
    max_depth: usize,
}

impl Pyro5Link {
    /// Connects to the daemon at `location` and opens the connection for `object`.
    pub(crate) async fn connect(
        location: &Location,
        object: &str,
        format: Format,
        config: &Config,
    ) -> Result<Pyro5Link, Error> {
        let Location::Tcp { host, port } = location else {
            return Err(Error::UnusableUri {
                uri: location.to_string(),
                reason: "Pyro5 proxies connect over TCP only".into(),
            });
        };
        let address = location.to_string();
        let connect_error = |source| Error::Connect {
            address: address.clone(),
            source,
        };
        let stream = tokio::time::timeout(
            config.connect_timeout,
            TcpStream::connect((host.as_str(), *port)),
        )
        .await
        .map_err(|_| Error::Timeout(config.connect_timeout))?
        .map_err(connect_error)?;
        stream.set_nodelay(true).map_err(connect_error)?;
        let (read, writer) = stream.into_split();
        let mut link = Pyro5Link {
            reader: FrameReader::new(read, config.max_body_len(), config.frame_timeout),
            writer,
            format,
            object: object.to_owned(),
            seq: 0,
            max_depth: config.max_nesting_depth.min(pyro5::MAX_NESTING),
        };
        let hello = PyValue::dict([
            ("handshake", PyValue::str("hello")),
            ("object", PyValue::str(object)),
        ]);
        let reply = link
            .exchange(MessageType::Connect, 0, &hello, config.handshake_timeout)
            .await?;
        match reply.message_type() {
            Some(MessageType::ConnectOk) => Ok(link),
            Some(MessageType::ConnectFail) => {
                // The reason is serialized as the reply's serializer id says.
                let reason = pyro5::format_of(reply.serializer_id)
                    .and_then(|format| format.decode::<String>(&reply.data).ok())
                    .unwrap_or_default();
                Err(if reason == "unknown object" {
                    Error::UnknownObject(object.to_owned())
                } else {
                    Error::PythonException(PyException::new(
                        "Pyro5.errors.CommunicationError",
                        format!("connection rejected: {reason}"),
                    ))
                })
            }
            _ => Err(unexpected("the answer to CONNECT")),
        }
    }

    /// Calls `method` with the argument tuple `args`; its value as `R`.
    pub(crate) async fn call<A, R>(
        &mut self,
        method: &str,
        args: &A,
        timeout: Duration,
    ) -> Result<R, Error>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let invoke = self.invocation(method, args)?;
        let reply = self
            .exchange(MessageType::Invoke, 0, &invoke, timeout)
            .await?;
        if reply.message_type() != Some(MessageType::Result) {
            return Err(unexpected("the answer to INVOKE"));
        }
        let value = self
            .format
            .decode_py_value(&reply.data, self.max_depth)
            .map_err(|source| Error::Codec {
                what: format!("the reply of `{method}`"),
                source,
            })?;
        if reply.has(flags::EXCEPTION) {
            let exception = PyException::from_py_value(&value)
                .unwrap_or_else(|| PyException::new("builtins.Exception", value.to_serpent_text()));
            return Err(Error::PythonException(exception));
        }
        Format::from_returned(&value).map_err(|source| Error::Codec {
            what: format!("the reply of `{method}`"),
            source,
        })
    }

    /// Sends a oneway call to `method`.
    pub(crate) async fn call_oneway<A: Serialize + ?Sized>(
        &mut self,
        method: &str,
        args: &A,
    ) -> Result<(), Error> {
        let invoke = self.invocation(method, args)?;
        self.seq = self.seq.wrapping_add(1);
        let frame = self.frame(MessageType::Invoke, flags::ONEWAY, &invoke);
        self.writer
            .write_all(&frame)
            .await
            .map_err(|error| Error::ConnectionLost(Disconnect::Write(error.into())))
    }

    /// Pings the daemon.
    pub(crate) async fn ping(&mut self, timeout: Duration) -> Result<(), Error> {
        self.seq = self.seq.wrapping_add(1);
        let frame = pyro5::encode(
            MessageType::Ping,
            serializer_id(self.format),
            0,
            self.seq,
            None,
            b"ping",
        );
        self.send_and_read(&frame, timeout).await.map(drop)
    }

    /// The INVOKE document for a call.
    fn invocation<A: Serialize + ?Sized>(&self, method: &str, args: &A) -> Result<PyValue, Error> {
        let args = to_py_value(args).map_err(|source| Error::Codec {
            what: format!("the arguments of `{method}`"),
            source,
        })?;
        let vargs = match args {
            PyValue::Tuple(items) | PyValue::List(items) => items,
            PyValue::None => Vec::new(),
            one => vec![one],
        };
        Ok(match self.format {
            Format::Json => PyValue::dict([
                ("object", PyValue::str(&self.object)),
                ("method", PyValue::str(method)),
                ("params", PyValue::List(vargs)),
                ("kwargs", PyValue::Dict(Vec::new())),
            ]),
            _ => PyValue::Tuple(vec![
                PyValue::str(&self.object),
                PyValue::str(method),
                PyValue::Tuple(vargs),
                PyValue::Dict(Vec::new()),
            ]),
        })
    }

    fn frame(&self, msg_type: MessageType, flags: u16, value: &PyValue) -> BytesMut {
        let mut frame = pyro5::frame_buffer(b"");
        // A value of our own making always encodes.
        let _ = self.format.encode_into(value, &mut frame);
        write_header(
            &mut frame,
            msg_type,
            serializer_id(self.format),
            flags,
            self.seq,
            None,
        );
        frame
    }

    /// Sends one message and reads its answer, which must echo its sequence number.
    async fn exchange(
        &mut self,
        msg_type: MessageType,
        flags: u16,
        value: &PyValue,
        timeout: Duration,
    ) -> Result<Pyro5Message, Error> {
        if msg_type == MessageType::Invoke {
            self.seq = self.seq.wrapping_add(1);
        }
        let frame = self.frame(msg_type, flags, value);
        self.send_and_read(&frame, timeout).await
    }

    async fn send_and_read(
        &mut self,
        frame: &[u8],
        timeout: Duration,
    ) -> Result<Pyro5Message, Error> {
        let exchange = async {
            self.writer
                .write_all(frame)
                .await
                .map_err(|error| Error::ConnectionLost(Disconnect::Write(error.into())))?;
            match self.reader.read_message().await {
                Ok(Some(reply)) => Ok(reply),
                Ok(None) => Err(Error::ConnectionLost(Disconnect::Closed)),
                Err(ReadError::Io(error)) => {
                    Err(Error::ConnectionLost(Disconnect::Read(error.into())))
                }
                Err(ReadError::Protocol(error)) => Err(Error::Protocol(error)),
            }
        };
        let reply = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| Error::Timeout(timeout))??;
        if reply.seq != self.seq {
            return Err(unexpected("a reply out of sequence"));
        }
        Ok(reply)
    }
}

fn unexpected(what: &'static str) -> Error {
    Error::Protocol(crate::protocol::ProtocolError::Malformed {
        what: "Pyro5 reply",
        detail: format!("{what} is not what Pyro5 sends"),
    })
}
