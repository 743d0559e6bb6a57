//! Serde adapters that store Mesos resources and attributes in their v1 JSON
//! form (the form operators already know from the API).

pub mod resources {
    use keel_api::resources::Resources;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(r: &Resources, s: S) -> Result<S::Ok, S::Error> {
        r.to_v1_json().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Resources, D::Error> {
        let json = serde_json::Value::deserialize(d)?;
        Resources::from_v1_json(&json).map_err(serde::de::Error::custom)
    }
}

pub mod attributes {
    use keel_api::attributes::Attributes;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(a: &Attributes, s: S) -> Result<S::Ok, S::Error> {
        a.to_v1_json().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Attributes, D::Error> {
        let json = serde_json::Value::deserialize(d)?;
        Attributes::from_v1_json(&json).map_err(serde::de::Error::custom)
    }
}
