//! BSON values read leniently (wire-compatible servers differ in how they
//! store numbers) and converted to and from JSON.

use mongodb::bson::{Bson, Document};
use serde_json::{Map, Value as Json};

/// An integer stored as Int32, Int64 or a whole Double.
pub(crate) fn bson_i64(v: &Bson) -> Option<i64> {
    match v {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        Bson::Double(f) if f.fract() == 0.0 => Some(*f as i64),
        _ => None,
    }
}

/// JSON to BSON: integers as Int64, other numbers as Double.
pub(crate) fn json_to_bson(v: &Json) -> Bson {
    match v {
        Json::Null => Bson::Null,
        Json::Bool(b) => Bson::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Bson::Int64(i),
            None => Bson::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Bson::String(s.clone()),
        Json::Array(a) => Bson::Array(a.iter().map(json_to_bson).collect()),
        Json::Object(o) => {
            Bson::Document(o.iter().map(|(k, v)| (k.clone(), json_to_bson(v))).collect())
        }
    }
}

/// BSON to JSON, the logical shape (`_id` dropped at the top level by the
/// callers).
pub(crate) fn bson_to_json(v: Bson) -> Json {
    match v {
        Bson::Null | Bson::Undefined => Json::Null,
        Bson::Boolean(b) => Json::Bool(b),
        Bson::Int32(i) => Json::from(i),
        Bson::Int64(i) => Json::from(i),
        Bson::Double(f) => serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number),
        Bson::String(s) => Json::String(s),
        Bson::Array(a) => Json::Array(a.into_iter().map(bson_to_json).collect()),
        Bson::Document(d) => doc_to_json(d),
        other => other.into_relaxed_extjson(),
    }
}

/// A document as a JSON object, without its `_id`.
pub(crate) fn doc_to_json(d: Document) -> Json {
    let mut m = Map::new();
    for (k, v) in d {
        if k != "_id" {
            m.insert(k, bson_to_json(v));
        }
    }
    Json::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_through_bson() {
        let v = serde_json::json!({"a": [1, 2.5, "x", null, true], "b": {"c": -3}});
        assert_eq!(bson_to_json(json_to_bson(&v)), v);
    }
}
