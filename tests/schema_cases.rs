//! schema/cases.json through the configuration parser: every case must get the verdict the file
//! gives, and a refusal must name the field it gives. tests/integration/test_schema.py checks the
//! JSON Schema (schema/jwt-guard.schema.json) against the same file, so the two cannot drift apart
//! unnoticed.

use jwt_guard::config::Config;
use serde_json::Value;

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(object) = target {
        for (name, value) in patch {
            if value.is_null() {
                object.remove(name);
            } else {
                merge(object.entry(name.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

#[test]
fn the_parser_gives_every_verdict_of_schema_cases() {
    let file: Value = serde_json::from_str(include_str!("../schema/cases.json")).unwrap();
    let cases = file["cases"].as_array().unwrap();
    assert!(
        cases.len() > 50,
        "schema/cases.json has only {} cases",
        cases.len()
    );
    let mut wrong = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let mut config = file["base"].clone();
        merge(&mut config, &case["patch"]);
        let result = Config::from_json(config.to_string().as_bytes());
        match (case["verdict"].as_str().unwrap(), result) {
            ("valid", Ok(_)) => {}
            ("valid", Err(err)) => wrong.push(format!("{name}: refused ({err}), expected valid")),
            ("refused" | "semantic", Ok(_)) => {
                wrong.push(format!("{name}: accepted, expected a refusal"))
            }
            ("refused" | "semantic", Err(err)) => {
                let field = case["field"].as_str().unwrap();
                if err.field != field {
                    wrong.push(format!(
                        "{name}: refused naming {:?} ({err}), expected {field:?}",
                        err.field
                    ));
                }
            }
            (verdict, _) => wrong.push(format!("{name}: unknown verdict {verdict:?}")),
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn merge_patch_follows_rfc_7386() {
    let mut doc = serde_json::json!({"a": {"b": 1, "c": 2}, "d": [1, 2], "e": 3});
    merge(
        &mut doc,
        &serde_json::json!({"a": {"b": null, "x": 4}, "d": [3], "e": {"f": 5}}),
    );
    assert_eq!(
        doc,
        serde_json::json!({"a": {"c": 2, "x": 4}, "d": [3], "e": {"f": 5}})
    );
}
