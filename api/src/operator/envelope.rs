//! Mesos' call and answer envelope, `{"type": "GET_X", "get_x": {...}}`,
//! for an enum whose variants are the types: unit variants carry no body,
//! tuple variants carry theirs under the given key. The body is written
//! before the type (Keel's answers always have been: `get_x` < `type`).

macro_rules! envelope {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($unit:ident = $unit_ty:literal),* ;
            $($var:ident($body:ty) = $ty:literal / $key:literal),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $($unit,)*
            $($var($body),)*
        }

        impl $name {
            /// The `type` name, e.g. `GET_HEALTH`.
            pub fn kind(&self) -> &'static str {
                match self {
                    $($name::$unit => $unit_ty,)*
                    $($name::$var(_) => $ty,)*
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                match self {
                    $($name::$unit => {
                        let mut m = s.serialize_map(Some(1))?;
                        m.serialize_entry("type", $unit_ty)?;
                        m.end()
                    })*
                    $($name::$var(body) => {
                        let mut m = s.serialize_map(Some(2))?;
                        m.serialize_entry($key, body)?;
                        m.serialize_entry("type", $ty)?;
                        m.end()
                    })*
                }
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                use serde::de::Error;
                let mut v = serde_json::Value::deserialize(d)?;
                let kind = match v.get("type") {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    _ => return Err(D::Error::custom("missing field `type`")),
                };
                match kind.as_str() {
                    $($unit_ty => Ok($name::$unit),)*
                    $($ty => {
                        let body = v
                            .get_mut($key)
                            .map(serde_json::Value::take)
                            .filter(|b| !b.is_null())
                            .ok_or_else(|| D::Error::custom(concat!("missing field `", $key, "`")))?;
                        serde_json::from_value(body).map($name::$var).map_err(D::Error::custom)
                    })*
                    other => Err(D::Error::custom(format!("unknown type {other:?}"))),
                }
            }
        }
    };
}

pub(crate) use envelope;
