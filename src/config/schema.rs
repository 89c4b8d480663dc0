//! `irun schema`: the JSON Schema of Irun.toml, derived from the structs serde reads it with ([`super::raw`]), so
//! a key irun accepts is a key the schema lists.

use schemars::Schema;
use schemars::generate::SchemaSettings;
use schemars::transform::{RecursiveTransform, transform_subschemas};
use serde_json::Value;

use super::raw::RawConfig;

/// The schema, as `irun schema` prints it.
pub(crate) fn json() -> String {
    let generator = SchemaSettings::draft2020_12().with_transform(RecursiveTransform(tidy)).into_generator();
    let schema = generator.into_root_schema_for::<RawConfig>();
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

/// TOML has no null: an optional key is there or not, so the `null` schemars allows for an `Option` goes. A
/// description is one line (doc comments wrap), and integers need no `format`.
fn tidy(schema: &mut Schema) {
    let is_null = |v: &Value| v.get("type").and_then(Value::as_str) == Some("null");
    if let Some(obj) = schema.as_object_mut() {
        obj.remove("format");
        if let Some(Value::String(d)) = obj.get_mut("description") {
            *d = d.split_whitespace().collect::<Vec<_>>().join(" ");
        }
        if let Some(Value::Array(types)) = obj.get_mut("type") {
            types.retain(|t| t != "null");
            if let [only] = types.as_slice() {
                let only = only.clone();
                obj.insert("type".into(), only);
            }
        }
        let one_left = obj.get("anyOf").and_then(Value::as_array).and_then(|alternatives| {
            let kept: Vec<&Value> = alternatives.iter().filter(|a| !is_null(a)).collect();
            (kept.len() == 1 && alternatives.len() == 2).then(|| kept[0].clone())
        });
        if let Some(Value::Object(kept)) = one_left {
            obj.remove("anyOf");
            obj.extend(kept);
        }
    }
    transform_subschemas(&mut tidy, schema);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The keys serde accepts at one level of Irun.toml, from its "unknown field" message.
    fn accepted_keys(toml_text: &str) -> BTreeSet<String> {
        let message = match toml::from_str::<RawConfig>(toml_text) {
            Ok(_) => panic!("`zzz` is not a key"),
            Err(e) => e.message().to_string(),
        };
        let expected = message.split("expected one of").nth(1).unwrap_or_else(|| panic!("{message}"));
        expected.split('`').skip(1).step_by(2).map(str::to_string).collect()
    }

    #[test]
    fn the_json_schema_lists_every_key_irun_accepts_and_no_other() {
        let schema: serde_json::Value = serde_json::from_str(&json()).unwrap();
        let keys = |v: &serde_json::Value| -> BTreeSet<String> { v.as_object().unwrap().keys().cloned().collect() };
        assert_eq!(keys(&schema["properties"]), accepted_keys("zzz = 1\n"));
        assert_eq!(keys(&schema["$defs"]["task"]["properties"]), accepted_keys("[tasks.a]\nzzz = 1\n"));
        assert_eq!(
            keys(&schema["$defs"]["ready"]["properties"]),
            accepted_keys("[tasks.a]\ncmd = \"x\"\nready = { zzz = 1 }\n")
        );
    }

    #[test]
    fn no_key_is_required_and_none_may_be_null() {
        let text = json();
        assert!(!text.contains("\"null\""), "{text}");
        let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
        for def in [&schema, &schema["$defs"]["task"], &schema["$defs"]["ready"]] {
            assert!(def.get("required").is_none(), "{def}");
        }
    }

    #[test]
    fn a_group_may_hold_only_its_description_deps_and_sources() {
        let schema: serde_json::Value = serde_json::from_str(&json()).unwrap();
        let forbidden = &schema["$defs"]["task"]["allOf"][0]["then"]["not"]["anyOf"];
        let keys: BTreeSet<&str> =
            forbidden.as_array().unwrap().iter().map(|r| r["required"][0].as_str().unwrap()).collect();
        let all = accepted_keys("[tasks.a]\nzzz = 1\n");
        let expected: BTreeSet<&str> =
            all.iter().map(String::as_str).filter(|k| !["cmd", "description", "deps", "sources"].contains(k)).collect();
        assert_eq!(keys, expected);
    }
}
