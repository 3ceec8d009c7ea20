//! [`CompactJson`]: a JSON value kept as its compact text. A small JSON object in memory takes
//! hundreds of bytes (a map, a string per key and value); as text it takes a few dozen. What is
//! held per step for the whole run (a step's parameters as written, its output in the summary)
//! is kept this way, so an experiment of thousands of steps stays small; it is read back as a
//! value where it is used (the journal, the report), and serializes as the value it holds.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value as Json;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactJson(Box<str>);

impl CompactJson {
    pub fn new(v: &Json) -> CompactJson {
        CompactJson(v.to_string().into_boxed_str())
    }

    /// The value.
    pub fn json(&self) -> Json {
        serde_json::from_str(&self.0).expect("written from a JSON value")
    }
}

impl Default for CompactJson {
    fn default() -> CompactJson {
        CompactJson::new(&Json::Null)
    }
}

impl From<Json> for CompactJson {
    fn from(v: Json) -> CompactJson {
        CompactJson::new(&v)
    }
}

impl std::fmt::Display for CompactJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for CompactJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for CompactJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<CompactJson, D::Error> {
        Json::deserialize(d).map(|v| CompactJson::new(&v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn holds_and_serializes_the_value_in_its_key_order() {
        let v = json!({"zone": "a", "count": 3, "nested": {"b": [1, null], "a": "x"}});
        let c = CompactJson::new(&v);
        assert_eq!(c.json(), v);
        assert_eq!(
            c.to_string(),
            r#"{"zone":"a","count":3,"nested":{"b":[1,null],"a":"x"}}"#
        );
        assert_eq!(serde_json::to_value(&c).unwrap(), v);
        let back: CompactJson = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(back, c);
        assert_eq!(CompactJson::default().json(), Json::Null);
    }
}
