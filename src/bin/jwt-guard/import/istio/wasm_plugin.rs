//! The Istio `WasmPlugin` that applies an imported configuration to the workloads the
//! policies selected (`--wasm-plugin OUT`).

use serde_json::{Map, Value as Json, json};

use super::Scope;

/// The WasmPlugin manifest of envoy/istio/wasmplugin.yaml, carrying `config`.
pub fn wasm_plugin(config: &Json, (namespace, scope): &(String, Scope)) -> Result<String, String> {
    let mut spec = Map::new();
    match scope {
        Scope::Namespace => {}
        Scope::Selector(labels) => {
            let labels: Map<String, Json> =
                labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            spec.insert("selector".into(), json!({"matchLabels": labels}));
        }
        Scope::TargetRefs(refs) => {
            let refs: Json = serde_json::from_str(refs).map_err(|e| e.to_string())?;
            spec.insert("targetRefs".into(), refs);
        }
    }
    spec.insert(
        "url".into(),
        json!("oci://registry.example.com/jwt-guard:0.1.0"),
    );
    spec.insert("imagePullPolicy".into(), json!("IfNotPresent"));
    spec.insert("phase".into(), json!("AUTHN"));
    spec.insert("pluginName".into(), json!("jwt_guard"));
    spec.insert("failStrategy".into(), json!("FAIL_CLOSE"));
    spec.insert("pluginConfig".into(), config.clone());
    // One WasmPlugin per workload: the selector's values tell them apart in a namespace.
    let mut name = "jwt-guard".to_string();
    if let Scope::Selector(labels) = scope {
        for (_, value) in labels {
            name.push('-');
            name.extend(value.chars().map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            }));
        }
        name.truncate(63);
        name = name.trim_end_matches('-').to_string();
    }
    let manifest = json!({
        "apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "WasmPlugin",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    });
    let body = serde_yaml_ng::to_string(&manifest).map_err(|e| e.to_string())?;
    Ok(format!(
        "# Written by `jwt-guard import istio`: the imported policies as jwt-guard's configuration,\n\
         # on the workloads they selected. Put your registry's address of the module in `url`\n\
         # (make oci; docs/deploy.md, \"Istio\"), then remove the Istio RequestAuthentication and\n\
         # AuthorizationPolicy objects it replaces (docs/migration.md, \"From Istio\").\n{body}"
    ))
}
