//! Deserializers that accept what stout accepts: numbers as JSON numbers or
//! strings (`"5.0"`), doubles also as `"Infinity"`/`"-Infinity"`.

use serde::de::{self, Deserializer, Visitor};
use std::fmt;

struct F64Visitor;

impl<'de> Visitor<'de> for F64Visitor {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number or a numeric string")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        match v.trim() {
            "Infinity" | "inf" => Ok(f64::INFINITY),
            "-Infinity" | "-inf" => Ok(f64::NEG_INFINITY),
            t => t
                .parse()
                .map_err(|_| E::custom(format!("'{v}' is not a number"))),
        }
    }
}

pub fn f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    d.deserialize_any(F64Visitor)
}

pub fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    f64(d).map(Some)
}

struct I64Visitor;

impl<'de> Visitor<'de> for I64Visitor {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer or an integer string")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom(format!("{v} is out of range")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        if v.fract() == 0.0 && v.abs() < 9.2e18 {
            Ok(v as i64)
        } else {
            Err(E::custom(format!("{v} is not an integer")))
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
        v.trim()
            .parse()
            .map_err(|_| E::custom(format!("'{v}' is not an integer")))
    }
}

pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    d.deserialize_any(I64Visitor)
}

/// A uint64: a JSON number without a fraction, or a string of digits.
pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = i128::from(i64(d)?);
    u64::try_from(v).map_err(|_| de::Error::custom(format!("{v} is not an unsigned integer")))
}

/// A uint32: as [`u64`], and within range.
pub fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = u64(d)?;
    u32::try_from(v).map_err(|_| de::Error::custom(format!("{v} is out of range for a uint32")))
}

pub fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    u32(d).map(Some)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Deserialize)]
    struct S {
        #[serde(deserialize_with = "super::f64")]
        x: f64,
        #[serde(deserialize_with = "super::i64")]
        n: i64,
    }

    #[test]
    fn numbers_or_strings() {
        for (v, x, n) in [
            (json!({"x": 1.5, "n": 3}), 1.5, 3),
            (json!({"x": "5.0", "n": "7"}), 5.0, 7),
            (json!({"x": "Infinity", "n": 2.0}), f64::INFINITY, 2),
        ] {
            let s: S = serde_json::from_value(v).unwrap();
            assert_eq!((s.x, s.n), (x, n));
        }
        assert!(serde_json::from_value::<S>(json!({"x": "abc", "n": 1})).is_err());
        assert!(serde_json::from_value::<S>(json!({"x": 1, "n": 1.5})).is_err());
    }
}
