//! Fields of JSON objects by path, read and written without a panic
//! whatever the value holds (an object is made where a path needs one).

use serde_json::{Map, Value};

static NULL: Value = Value::Null;

/// The value at `path`, or `null` when any step is missing.
pub(crate) fn at<'v, K: AsRef<str>>(value: &'v Value, path: &[K]) -> &'v Value {
    path.iter()
        .try_fold(value, |value, key| value.get(key.as_ref()))
        .unwrap_or(&NULL)
}

/// Sets the value at `path`, making objects of what is on the way.
pub(crate) fn put<K: AsRef<str>>(value: &mut Value, path: &[K], new: Value) {
    let mut slot = value;
    for key in path {
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        slot = match slot {
            Value::Object(map) => map.entry(key.as_ref().to_owned()).or_insert(Value::Null),
            _ => return,
        };
    }
    *slot = new;
}

/// Removes the value at `path`, if there is one.
pub(crate) fn take<K: AsRef<str>>(value: &mut Value, path: &[K]) -> Option<Value> {
    let (last, parents) = path.split_last()?;
    let parent = parents
        .iter()
        .try_fold(value, |value, key| value.get_mut(key.as_ref()))?;
    parent.as_object_mut()?.remove(last.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_through_anything_never_panic() {
        let mut value = serde_json::json!({"metadata": "not an object"});
        assert_eq!(at(&value, &["metadata", "name"]), &Value::Null);
        put(&mut value, &["metadata", "name"], Value::from("x"));
        assert_eq!(value, serde_json::json!({"metadata": {"name": "x"}}));
        assert_eq!(
            take(&mut value, &["metadata", "name"]),
            Some(Value::from("x"))
        );
        assert_eq!(take(&mut value, &["spec", "x"]), None);
    }
}
