//! The little of Kubernetes' protobuf encoding the stand-in reads, for the
//! requests `kubectl` sends only as protobuf and does not send otherwise:
//! TokenRequest, the access and rules reviews, and the objects `kubectl
//! create namespace|secret|configmap|serviceaccount` make. It reads the
//! `k8s\0` envelope (a `runtime.Unknown` whose field 2 holds the object) and
//! fields by number, the numbers of the `generated.proto` files of
//! `k8s.io/api` and `k8s.io/apimachinery`. Any other protobuf body is
//! refused with a JSON `Status` 415: kubectl does not fall back to JSON, so
//! `kubectl create deployment` and the like need `kubectl apply -f` here.

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

    /// Every occurrence of repeated message field `number`.
    pub fn messages(&self, number: u64) -> Vec<Message<'m>> {
        self.0
            .iter()
            .filter_map(|(n, v)| match v {
                Value::Bytes(b) if *n == number => Self::parse(b),
                _ => None,
            })
            .collect()
    }

    /// Varint field `number` as a boolean.
    pub fn bool(&self, number: u64) -> Option<bool> {
        self.int64(number).map(|x| x != 0)
    }

    /// Varint field `number` as a signed 64-bit integer.
    pub fn int64(&self, number: u64) -> Option<i64> {
        self.0.iter().rev().find_map(|(n, v)| match v {
            Value::Varint(x) if *n == number => Some(i64::from_ne_bytes(x.to_ne_bytes())),
            _ => None,
        })
    }
}

/// A `map<string, string>` field as a JSON object (entries: key 1, value 2).
fn string_map(message: &Message<'_>, number: u64) -> Option<serde_json::Value> {
    let entries = message.messages(number);
    (!entries.is_empty()).then(|| {
        entries
            .iter()
            .map(|e| {
                (
                    e.string(1).unwrap_or_default(),
                    serde_json::Value::from(e.string(2).unwrap_or_default()),
                )
            })
            .collect()
    })
}

/// A `map<string, bytes>` field as a JSON object of base64 values.
fn bytes_map(message: &Message<'_>, number: u64) -> Option<serde_json::Value> {
    use base64::Engine as _;
    let entries = message.messages(number);
    (!entries.is_empty()).then(|| {
        entries
            .iter()
            .map(|e| {
                let value = base64::engine::general_purpose::STANDARD
                    .encode(e.bytes(2).unwrap_or_default());
                (
                    e.string(1).unwrap_or_default(),
                    serde_json::Value::from(value),
                )
            })
            .collect()
    })
}

/// Sets `key` of `object` when `value` is there and not empty (gogo
/// protobuf writes an unset optional string as an empty one).
fn set(
    object: &mut serde_json::Map<String, serde_json::Value>,
    key: &str,
    value: Option<serde_json::Value>,
) {
    if let Some(value) = value.filter(|v| v.as_str() != Some("")) {
        object.insert(key.to_owned(), value);
    }
}

/// `ObjectMeta` as a client writes it on create (meta/v1: name 1,
/// generateName 2, namespace 3, labels 11, annotations 12, finalizers 14).
fn object_meta(meta: &Message<'_>) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    set(&mut out, "name", meta.string(1).map(Into::into));
    set(&mut out, "generateName", meta.string(2).map(Into::into));
    set(&mut out, "namespace", meta.string(3).map(Into::into));
    set(&mut out, "labels", string_map(meta, 11));
    set(&mut out, "annotations", string_map(meta, 12));
    let finalizers = meta.strings(14);
    set(
        &mut out,
        "finalizers",
        (!finalizers.is_empty()).then(|| finalizers.into()),
    );
    serde_json::Value::Object(out)
}

/// The JSON of a protobuf object of `kind` (core/v1), for the kinds
/// `kubectl create` sends as protobuf; `None` for any other kind.
pub(crate) fn object(kind: &str, body: &[u8]) -> Option<Result<serde_json::Value, String>> {
    if !matches!(
        kind,
        "Namespace" | "Secret" | "ConfigMap" | "ServiceAccount"
    ) {
        return None;
    }
    let Some(message) = Message::enveloped(body) else {
        return Some(Err(format!("the protobuf body is not a {kind}")));
    };
    let mut out = serde_json::Map::new();
    out.insert("apiVersion".into(), "v1".into());
    out.insert("kind".into(), kind.into());
    let meta = message
        .message(1)
        .map_or(serde_json::Value::Null, |m| object_meta(&m));
    out.insert("metadata".into(), meta);
    match kind {
        // Secret: data 2 (bytes), type 3, stringData 4, immutable 5.
        "Secret" => {
            set(&mut out, "data", bytes_map(&message, 2));
            set(&mut out, "type", message.string(3).map(Into::into));
            set(&mut out, "stringData", string_map(&message, 4));
            set(&mut out, "immutable", message.bool(5).map(Into::into));
        }
        // ConfigMap: data 2, binaryData 3 (bytes), immutable 4.
        "ConfigMap" => {
            set(&mut out, "data", string_map(&message, 2));
            set(&mut out, "binaryData", bytes_map(&message, 3));
            set(&mut out, "immutable", message.bool(4).map(Into::into));
        }
        // ServiceAccount: secrets 2 (ObjectReference: name 3), imagePullSecrets 3
        // (LocalObjectReference: name 1), automountServiceAccountToken 4.
        "ServiceAccount" => {
            let names = |number: u64, field: u64| -> Option<serde_json::Value> {
                let refs = message.messages(number);
                (!refs.is_empty()).then(|| {
                    refs.iter()
                        .map(|r| serde_json::json!({"name": r.string(field).unwrap_or_default()}))
                        .collect()
                })
            };
            set(&mut out, "secrets", names(2, 3));
            set(&mut out, "imagePullSecrets", names(3, 1));
            set(
                &mut out,
                "automountServiceAccountToken",
                message.bool(4).map(Into::into),
            );
        }
        // Namespace: spec 2 (finalizers 1).
        _ => {
            let finalizers = message
                .message(2)
                .map(|spec| spec.strings(1))
                .unwrap_or_default();
            if !finalizers.is_empty() {
                out.insert("spec".into(), serde_json::json!({"finalizers": finalizers}));
            }
        }
    }
    Some(Ok(serde_json::Value::Object(out)))
}

/// Reads any protobuf body the stand-in decodes, for the fuzz harness:
/// never panics, whatever the bytes.
pub fn read_any(body: &[u8]) -> usize {
    let objects = ["Namespace", "Secret", "ConfigMap", "ServiceAccount"]
        .iter()
        .filter_map(|kind| object(kind, body)?.ok())
        .count();
    let Some(object) = Message::enveloped(body) else {
        return objects;
    };
    let spec = object.message(2);
    let nested = spec
        .as_ref()
        .and_then(|s| s.message(1))
        .map_or(0, |m| m.strings(5).len());
    objects + object.strings(1).len() + nested + usize::from(object.int64(4).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_from_kubectl_create_reads_as_its_json() {
        // `kubectl create namespace dbg2` (v1.32), as sent: gogo protobuf
        // writes unset strings as empty ones.
        let body = [
            &b"k8s\0"[..],
            &[0x0a, 0x0f, 0x0a, 0x02],
            b"v1",
            &[0x12, 0x09],
            b"Namespace",
            &[0x12, 0x1c, 0x0a, 0x14, 0x0a, 0x04],
            b"dbg2",
            &[
                0x12, 0, 0x1a, 0, 0x22, 0, 0x2a, 0, 0x32, 0, 0x38, 0, 0x42, 0,
            ],
            &[0x12, 0, 0x1a, 0x02, 0x0a, 0, 0x1a, 0, 0x22, 0],
        ]
        .concat();
        let namespace = object("Namespace", &body).unwrap().unwrap();
        assert_eq!(
            namespace,
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dbg2"}})
        );
    }

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
