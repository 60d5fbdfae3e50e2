//! `Vec<u8>` in a service trait travels as one byte string (alone, in an `Option`, as a
//! `Result`'s value), and the bytes on the wire are those of a plain `Vec<u8>`, so a peer that
//! encodes it element by element is understood.

use rpc_core::{CallError, Daemon, Proxy, service};
use serde_bytes::ByteBuf;

/// Why [`Blobs::checked`] refused.
#[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Empty;

/// Byte payloads in every shape the macro handles.
#[service]
pub trait Blobs {
    /// Returns `payload` reversed.
    async fn reversed(&self, payload: Vec<u8>) -> Vec<u8>;
    /// Returns `payload` as it came, `None` included.
    async fn maybe(&self, payload: Option<Vec<u8>>) -> Option<Vec<u8>>;
    /// Refuses an empty payload.
    async fn checked(&self, payload: Vec<u8>, tag: u8) -> Result<Vec<u8>, Empty>;
}

struct BlobsImpl;

impl Blobs for BlobsImpl {
    async fn reversed(&self, mut payload: Vec<u8>) -> Vec<u8> {
        payload.reverse();
        payload
    }

    async fn maybe(&self, payload: Option<Vec<u8>>) -> Option<Vec<u8>> {
        payload
    }

    async fn checked(&self, mut payload: Vec<u8>, tag: u8) -> Result<Vec<u8>, Empty> {
        if payload.is_empty() {
            return Err(Empty);
        }
        payload.push(tag);
        Ok(payload)
    }
}

async fn serve() -> (Daemon, BlobsProxy) {
    let daemon = rpc_tests::spawn_daemon().await;
    let uri = daemon
        .register_as("blobs", BlobsSkeleton::new(BlobsImpl))
        .unwrap();
    (daemon, BlobsProxy::new(uri))
}

#[tokio::test]
async fn byte_vectors_arrive_whole_in_every_shape() {
    let (_daemon, blobs) = serve().await;
    let payload: Vec<u8> = (0..=255).cycle().take(100_000).collect();
    let mut expected = payload.clone();
    expected.reverse();
    assert_eq!(blobs.reversed(payload.clone()).await.unwrap(), expected);
    assert_eq!(blobs.reversed(Vec::new()).await.unwrap(), Vec::<u8>::new());
    assert_eq!(
        blobs.maybe(Some(payload.clone())).await.unwrap(),
        Some(payload.clone())
    );
    assert_eq!(blobs.maybe(None).await.unwrap(), None);
    assert_eq!(blobs.checked(vec![1, 2], 9).await.unwrap(), vec![1, 2, 9]);
    assert!(matches!(
        blobs.checked(Vec::new(), 9).await,
        Err(CallError::Method(Empty))
    ));
}

#[tokio::test]
async fn the_wire_is_that_of_a_plain_vec_of_u8() {
    let (_daemon, blobs) = serve().await;
    let plain = Proxy::new(blobs.proxy().uri().clone());
    // A peer that sends and reads a `Vec<u8>` element by element, as serde does by default...
    let reply: Vec<u8> = plain.call("reversed", &(vec![1u8, 2, 3],)).await.unwrap();
    assert_eq!(reply, vec![3, 2, 1]);
    let reply: Option<Vec<u8>> = plain.call("maybe", &(Some(vec![4u8, 5]),)).await.unwrap();
    assert_eq!(reply, Some(vec![4, 5]));
    // ...and one that uses `ByteBuf` explicitly, as the docs advised before.
    let reply: ByteBuf = plain
        .call("reversed", &(ByteBuf::from(vec![7u8, 8]),))
        .await
        .unwrap();
    assert_eq!(reply.into_vec(), vec![8, 7]);
}
