//! The datagrams of broadcast discovery, as bytes: requests, and answers a client with the
//! deployment's [`Secret`] can verify.
//!
//! A plain request is the 9 bytes `GET_NSURI`, answered by the nameserver's URI as text
//! (Pyro's protocol). A client with a secret sends `GET_NSURI` and a space, then a fresh
//! 16-byte nonce in hex; a nameserver with the same secret answers with its URI, a space, and
//! the HMAC-SHA256 of the nonce and the URI in hex. The client ignores every answer whose tag
//! does not verify, so a rogue responder is ignored even when it answers first, and a recorded
//! answer is useless for another request. Without a secret nothing changes.

use crate::secret::{Secret, TAG_LEN};

use super::DISCOVERY_REQUEST;

/// The length of a discovery nonce, in bytes.
pub const NONCE_LEN: usize = 16;

/// The longest request: `GET_NSURI`, a space, the nonce in hex.
pub const MAX_REQUEST_LEN: usize = DISCOVERY_REQUEST.len() + 1 + 2 * NONCE_LEN;

const LABEL: &[u8] = b"ROBJ/1 discovery";

/// A discovery request as a datagram carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `GET_NSURI` alone: answered with the URI.
    Plain,
    /// With a nonce: answered with the URI and a tag, by a nameserver with a secret.
    Signed([u8; NONCE_LEN]),
}

impl Request {
    /// The request in `datagram`, if it is one.
    pub fn parse(datagram: &[u8]) -> Option<Request> {
        let rest = datagram.strip_prefix(DISCOVERY_REQUEST)?;
        if rest.is_empty() {
            return Some(Request::Plain);
        }
        let hex = rest.strip_prefix(b" ")?;
        decode_hex(hex).map(Request::Signed)
    }

    /// The datagram.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut datagram = DISCOVERY_REQUEST.to_vec();
        if let Request::Signed(nonce) = self {
            datagram.push(b' ');
            datagram.extend_from_slice(encode_hex(nonce).as_bytes());
        }
        datagram
    }

    /// The answer to this request for the nameserver at `uri`: signed when both the request
    /// and the nameserver have a nonce and a secret.
    pub fn answer(&self, uri: &str, secret: Option<&Secret>) -> String {
        match (self, secret) {
            (Request::Signed(nonce), Some(secret)) => {
                let tag = secret.sign(&[LABEL, nonce, uri.as_bytes()]);
                format!("{uri} {}", encode_hex(&tag))
            }
            _ => uri.to_owned(),
        }
    }
}

/// The URI text of `answer` to the signed request with `nonce`, if its tag verifies `secret`.
///
/// # Errors
///
/// A short reason, for the logs, when the answer carries no tag or a wrong one.
pub fn verified_answer<'a>(
    answer: &'a [u8],
    nonce: &[u8; NONCE_LEN],
    secret: &Secret,
) -> Result<&'a [u8], &'static str> {
    let split = answer
        .iter()
        .rposition(|byte| *byte == b' ')
        .ok_or("carries no tag (the nameserver has no secret, or is not ours)")?;
    let (uri, tag) = (&answer[..split], &answer[split + 1..]);
    let tag: [u8; TAG_LEN] = decode_hex(tag).ok_or("carries a malformed tag")?;
    if secret.verifies(&[LABEL, nonce, uri], &tag) {
        Ok(uri)
    } else {
        Err("carries a tag that does not verify with the secret")
    }
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn decode_hex<const N: usize>(hex: &[u8]) -> Option<[u8; N]> {
    if hex.len() != 2 * N {
        return None;
    }
    let mut out = [0; N];
    for (slot, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let text = std::str::from_utf8(pair).ok()?;
        *slot = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_others_are_not_requests() {
        for request in [Request::Plain, Request::Signed([0xab; NONCE_LEN])] {
            let bytes = request.to_bytes();
            assert!(bytes.len() <= MAX_REQUEST_LEN);
            assert_eq!(Request::parse(&bytes), Some(request));
        }
        for other in [
            &b"GET_NSUR"[..],
            b"GET_NSURI ",
            b"GET_NSURI zz",
            b"GET_NSURIx",
        ] {
            assert_eq!(Request::parse(other), None, "{other:?}");
        }
    }

    #[test]
    fn only_an_answer_made_with_the_secret_for_this_nonce_verifies() {
        let secret = Secret::new("the deployment's secret").unwrap();
        let other = Secret::new("somebody else's secret").unwrap();
        let uri = "PYRO:Pyro.NameServer@127.0.0.1:9090";
        let nonce = [7; NONCE_LEN];
        let request = Request::Signed(nonce);
        let answer = request.answer(uri, Some(&secret));
        assert_eq!(
            verified_answer(answer.as_bytes(), &nonce, &secret),
            Ok(uri.as_bytes())
        );
        assert!(verified_answer(answer.as_bytes(), &[8; NONCE_LEN], &secret).is_err());
        assert!(verified_answer(answer.as_bytes(), &nonce, &other).is_err());
        let plain = request.answer(uri, None);
        assert_eq!(plain, uri);
        assert!(verified_answer(plain.as_bytes(), &nonce, &secret).is_err());
        let forged = answer.replace("127.0.0.1", "127.0.0.2");
        assert!(verified_answer(forged.as_bytes(), &nonce, &secret).is_err());
        assert_eq!(Request::Plain.answer(uri, Some(&secret)), uri);
    }
}
