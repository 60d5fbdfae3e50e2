//! The body of an invoke frame: deadline, method name and encoded arguments.

use std::time::Duration;

use bytes::BufMut;

use super::ProtocolError;

/// The longest method name the invoke body can carry, in bytes.
pub const MAX_METHOD_NAME_LEN: usize = u8::MAX as usize;

/// A decoded invoke body. See the [module docs](super) for its layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invoke<'a> {
    /// How long the daemon may work on the call, counted from the frame's arrival.
    pub deadline: Option<Duration>,
    /// The method to call.
    pub method: &'a str,
    /// The arguments, encoded as one tuple.
    pub args: &'a [u8],
}

impl<'a> Invoke<'a> {
    /// Writes the deadline and method name; the caller appends the encoded arguments.
    ///
    /// A deadline is rounded up to whole milliseconds and capped at `u32::MAX` of them
    /// (about 49 days); a zero deadline is sent as one millisecond, since 0 means none.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::Malformed`] for a method name longer than [`MAX_METHOD_NAME_LEN`].
    pub fn write_prefix(
        buf: &mut impl BufMut,
        deadline: Option<Duration>,
        method: &str,
    ) -> Result<(), ProtocolError> {
        let name_len = u8::try_from(method.len()).map_err(|_| ProtocolError::Malformed {
            what: "method name",
            detail: format!(
                "{} bytes long, the limit is {MAX_METHOD_NAME_LEN}",
                method.len()
            ),
        })?;
        let millis = deadline.map_or(0, |d| {
            // In 64-bit arithmetic: this runs for every call, and 128-bit division is slow.
            let rounded_up = d
                .as_secs()
                .saturating_mul(1000)
                .saturating_add(u64::from(d.subsec_nanos().div_ceil(1_000_000)))
                .max(1);
            u32::try_from(rounded_up).unwrap_or(u32::MAX)
        });
        buf.put_u32(millis);
        buf.put_u8(name_len);
        buf.put_slice(method.as_bytes());
        Ok(())
    }

    /// Decodes an invoke body.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::Malformed`] if the body is too short or the name is not UTF-8.
    pub fn decode(body: &'a [u8]) -> Result<Invoke<'a>, ProtocolError> {
        let malformed = |detail: &str| ProtocolError::Malformed {
            what: "invoke body",
            detail: detail.to_owned(),
        };
        let (&[d0, d1, d2, d3, name_len], rest) = body
            .split_first_chunk::<5>()
            .ok_or_else(|| malformed("shorter than its 5-byte prefix"))?;
        let millis = u32::from_be_bytes([d0, d1, d2, d3]);
        let name = rest
            .get(..usize::from(name_len))
            .ok_or_else(|| malformed("method name runs past the end of the body"))?;
        let method =
            std::str::from_utf8(name).map_err(|_| malformed("method name is not UTF-8"))?;
        Ok(Invoke {
            deadline: (millis != 0).then(|| Duration::from_millis(u64::from(millis))),
            method,
            args: &rest[usize::from(name_len)..],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_bytes_and_round_trip() {
        let mut buf = Vec::new();
        Invoke::write_prefix(&mut buf, Some(Duration::from_millis(258)), "add").unwrap();
        buf.extend_from_slice(&[2, 3]);
        assert_eq!(buf, [0, 0, 1, 2, 3, b'a', b'd', b'd', 2, 3]);
        assert_eq!(
            Invoke::decode(&buf),
            Ok(Invoke {
                deadline: Some(Duration::from_millis(258)),
                method: "add",
                args: &[2, 3],
            })
        );
    }

    #[test]
    fn zero_means_no_deadline_and_tiny_deadlines_survive() {
        let mut buf = Vec::new();
        Invoke::write_prefix(&mut buf, None, "").unwrap();
        assert_eq!(Invoke::decode(&buf).unwrap().deadline, None);
        buf.clear();
        Invoke::write_prefix(&mut buf, Some(Duration::from_micros(10)), "m").unwrap();
        assert_eq!(
            Invoke::decode(&buf).unwrap().deadline,
            Some(Duration::from_millis(1))
        );
    }

    #[test]
    fn deadlines_round_up_to_milliseconds_and_are_capped() {
        let sent = |deadline: Duration| {
            let mut buf = Vec::new();
            Invoke::write_prefix(&mut buf, Some(deadline), "m").unwrap();
            Invoke::decode(&buf).unwrap().deadline.unwrap()
        };
        assert_eq!(sent(Duration::from_secs(2)), Duration::from_millis(2000));
        assert_eq!(
            sent(Duration::from_micros(1_001_500)),
            Duration::from_millis(1002)
        );
        assert_eq!(
            sent(Duration::MAX),
            Duration::from_millis(u64::from(u32::MAX))
        );
    }

    #[test]
    fn malformed_bodies_are_typed_errors() {
        assert!(Invoke::decode(&[0, 0, 0]).is_err());
        assert!(Invoke::decode(&[0, 0, 0, 0, 4, b'a']).is_err());
        assert!(Invoke::decode(&[0, 0, 0, 0, 1, 0xff]).is_err());
        let long = "x".repeat(256);
        assert!(Invoke::write_prefix(&mut Vec::new(), None, &long).is_err());
    }
}
