//! The little of Kubernetes' protobuf encoding the stand-in reads, for the
//! requests `kubectl` sends only as protobuf (TokenRequest, the access
//! and rules reviews): the `k8s\0` envelope (a `runtime.Unknown` whose
//! field 2 holds the object) and fields by number. Field numbers are those
//! of the `generated.proto` files of `k8s.io/api`. Anything else in a
//! protobuf body is refused (415), and every client falls back to JSON for
//! the rest.

const MAGIC: &[u8] = b"k8s\0";

/// One field of a message.
enum Value<'m> {
    Varint(u64),
    Bytes(&'m [u8]),
}

/// The varint at the start of `bytes`, and what follows it.
fn varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, bytes.get(i + 1..)?));
        }
    }
    None
}

/// Every field of `message`, in order; `None` if it is malformed.
fn fields(mut message: &[u8]) -> Option<Vec<(u64, Value<'_>)>> {
    let mut out = Vec::new();
    while !message.is_empty() {
        let (key, rest) = varint(message)?;
        let number = key >> 3;
        match key & 7 {
            0 => {
                let (value, rest) = varint(rest)?;
                out.push((number, Value::Varint(value)));
                message = rest;
            }
            1 => message = rest.get(8..)?,
            5 => message = rest.get(4..)?,
            2 => {
                let (len, rest) = varint(rest)?;
                let len = usize::try_from(len).ok()?;
                out.push((number, Value::Bytes(rest.get(..len)?)));
                message = rest.get(len..)?;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// A parsed message.
pub(crate) struct Message<'m>(Vec<(u64, Value<'m>)>);

impl<'m> Message<'m> {
    /// The object inside a `k8s\0` envelope.
    pub fn enveloped(body: &'m [u8]) -> Option<Self> {
        let unknown = Self::parse(body.strip_prefix(MAGIC)?)?;
        Self::parse(unknown.bytes(2).unwrap_or_default())
    }

    /// A message.
    pub fn parse(bytes: &'m [u8]) -> Option<Self> {
        fields(bytes).map(Self)
    }

    /// The last length-delimited field `number`.
    pub fn bytes(&self, number: u64) -> Option<&'m [u8]> {
        self.0.iter().rev().find_map(|(n, v)| match v {
            Value::Bytes(b) if *n == number => Some(*b),
            _ => None,
        })
    }

    /// Field `number` as a message; an absent one reads as empty.
    pub fn message(&self, number: u64) -> Option<Message<'m>> {
        Self::parse(self.bytes(number).unwrap_or_default())
    }

    /// Field `number` as text.
    pub fn string(&self, number: u64) -> Option<String> {
        self.bytes(number)
            .and_then(|b| std::str::from_utf8(b).ok())
            .map(str::to_owned)
    }

    /// Every occurrence of repeated text field `number`.
    pub fn strings(&self, number: u64) -> Vec<String> {
        self.0
            .iter()
            .filter_map(|(n, v)| match v {
                Value::Bytes(b) if *n == number => std::str::from_utf8(b).ok().map(str::to_owned),
                _ => None,
            })
            .collect()
    }

    /// Varint field `number` as a signed 64-bit integer.
    pub fn int64(&self, number: u64) -> Option<i64> {
        self.0.iter().rev().find_map(|(n, v)| match v {
            Value::Varint(x) if *n == number => Some(i64::from_ne_bytes(x.to_ne_bytes())),
            _ => None,
        })
    }
}

/// Reads any protobuf body the stand-in decodes, for the fuzz harness:
/// never panics, whatever the bytes.
pub fn read_any(body: &[u8]) -> usize {
    let Some(object) = Message::enveloped(body) else {
        return 0;
    };
    let spec = object.message(2);
    let nested = spec
        .as_ref()
        .and_then(|s| s.message(1))
        .map_or(0, |m| m.strings(5).len());
    object.strings(1).len() + nested + usize::from(object.int64(4).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_from_the_envelope() {
        // Unknown{typeMeta, raw: SSRR{metadata: {}, spec: {namespace: "shop"}}}
        let spec = [&[0x0a, 4][..], b"shop"].concat();
        let object = [&[0x0a, 0][..], &[0x12, 6], &spec].concat();
        let type_meta = [&[0x0a, 2][..], b"v1"].concat();
        let unknown = [&[0x0a, 4][..], &type_meta, &[0x12, 10], &object, &[0x1a, 0]].concat();
        let body = [MAGIC, &unknown].concat();
        let review = Message::enveloped(&body).unwrap();
        assert_eq!(
            review.message(2).unwrap().string(1).as_deref(),
            Some("shop")
        );
        assert!(Message::enveloped(&unknown).is_none(), "no envelope");
        assert!(
            Message::enveloped(&body[..body.len() - 4]).is_none(),
            "cut short"
        );
        // TokenRequestSpec{audiences: ["a", "b"], expirationSeconds: 600}
        let spec = [&[0x0a, 1, b'a', 0x0a, 1, b'b', 0x20][..], &[0xd8, 0x04]].concat();
        let spec = Message::parse(&spec).unwrap();
        assert_eq!(spec.strings(1), ["a", "b"]);
        assert_eq!(spec.int64(4), Some(600));
    }
}
