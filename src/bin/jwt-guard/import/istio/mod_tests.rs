use super::*;

fn objects(yaml: &str) -> (Vec<Object>, FieldReport) {
    let mut report = FieldReport::default();
    let mut objects = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(yaml) {
        let doc = <Value as serde::Deserialize>::deserialize(doc).unwrap();
        read_document(&doc, "t", "default", &mut objects, &mut report);
    }
    (objects, report)
}

fn run_import(yaml: &str) -> (Json, FieldReport) {
    let (objects, mut report) = objects(yaml);
    let imported = import(&objects, "istio-system", &mut report).unwrap();
    (imported.config, report)
}

const RA: &str = r#"
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt-example, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  jwtRules:
  - issuer: testing@secure.istio.io
    jwks: '{"keys": []}'
"#;

#[test]
fn request_authentication_alone_allows_every_request_anonymous_or_valid() {
    let (config, report) = run_import(RA);
    assert!(!report.is_lossy(), "{}", report.render());
    assert_eq!(
        config["rules"],
        json!([{"name": ALLOW_ALL_RULE, "match": {}, "allow_anonymous": true}])
    );
    assert_eq!(
        config["providers"]["testing_secure_istio_io"]["issuer"],
        "testing@secure.istio.io"
    );
}

#[test]
fn allow_policies_follow_the_authenticating_rule_and_deny_rules_come_first() {
    let yaml = format!(
        "{RA}---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: require-jwt, namespace: foo}}
spec:
  selector: {{matchLabels: {{app: httpbin}}}}
  action: ALLOW
  rules:
  - from: [{{source: {{requestPrincipals: [testing@secure.istio.io/testing@secure.istio.io]}}}}]
---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {{name: deny-admin, namespace: foo}}
spec:
  action: DENY
  rules:
  - to: [{{operation: {{paths: [/admin*]}}}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: other}}
"
    );
    let (config, report) = run_import(&yaml);
    assert!(!report.is_lossy(), "{}", report.render());
    let rules = config["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 3);
    assert_eq!(
        rules[0],
        json!({"name": "deny-admin-r0", "action": "deny", "match": {"paths": ["/admin*"]}})
    );
    assert_eq!(rules[1]["name"], AUTHN_RULE);
    assert_eq!(rules[1]["fall_through"], true);
    assert_eq!(
        rules[2],
        json!({"name": "require-jwt-r0", "match": {}, "allow_anonymous": true,
                   "fall_through": true,
                   "principals": {"any": ["testing@secure.istio.io/testing@secure.istio.io"]}})
    );
    assert!(report.render().contains("ignored          t"));
}

#[test]
fn an_allow_policy_without_rules_allows_nothing() {
    let (config, _) = run_import(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: allow-nothing, namespace: default}\nspec: {}\n",
    );
    let rules = config["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0]["name"], AUTHN_RULE);
}

#[test]
fn lossy_allow_rules_are_left_out_and_lossy_deny_rules_keep_the_rest() {
    let (config, report) = run_import(
        r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: a, namespace: foo}
spec:
  rules:
  - from: [{source: {principals: [cluster.local/ns/default/sa/curl]}}]
  - to: [{operation: {methods: [GET]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: d, namespace: foo}
spec:
  action: DENY
  rules:
  - from: [{source: {notNamespaces: [foo]}}]
    to: [{operation: {paths: [/admin]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: c, namespace: foo}
spec:
  action: CUSTOM
  provider: {name: ext}
  rules: [{}]
"#,
    );
    assert!(report.is_lossy());
    let names: Vec<&str> = config["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["d-r0", AUTHN_RULE, "a-r1"]);
    assert_eq!(config["rules"][0]["match"], json!({"paths": ["/admin"]}));
}

#[test]
fn several_workloads_are_refused_one_is_the_wasm_plugin_scope() {
    let two = format!(
        "{RA}---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: x, namespace: foo}}\nspec:\n  selector: {{matchLabels: {{app: other}}}}\n"
    );
    let (objs, mut report) = objects(&two);
    assert!(import(&objs, "istio-system", &mut report).is_err());

    let (objs, mut report) = objects(&format!(
        "{RA}---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: mesh, namespace: istio-system}}\nspec: {{action: DENY}}\n"
    ));
    let imported = import(&objs, "istio-system", &mut report).unwrap();
    let manifest = wasm_plugin(&imported.config, &imported.target).unwrap();
    assert!(manifest.contains("namespace: foo"), "{manifest}");
    assert!(manifest.contains("app: httpbin"), "{manifest}");
    assert!(manifest.contains("pluginConfig:"), "{manifest}");
    assert!(manifest.contains("name: jwt-guard-httpbin"), "{manifest}");
}

#[test]
fn one_provider_per_issuer_and_one_no_token_can_pass_without_request_authentication() {
    let (config, report) = run_import(&format!("{RA}---\n{RA}"));
    assert!(report.is_lossy());
    assert_eq!(config["providers"].as_object().unwrap().len(), 1);

    let (config, report) = run_import(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a, namespace: foo}\nspec:\n  rules: [{from: [{source: {ipBlocks: [10.0.0.0/8]}}]}]\n",
    );
    assert!(!report.is_lossy(), "{}", report.render());
    let provider = &config["providers"]["istio-no-request-authentication"];
    assert_eq!(provider["from_headers"], json!([{"name": NO_RA_HEADER}]));
    let k = provider["jwks"]["keys"][0]["k"].as_str().unwrap();
    assert_eq!(k.len(), 86, "64 random bytes");
    assert_eq!(config["client_ip"], json!({"from": "peer"}));
    assert_eq!(
        config["rules"][1]["source_ips"],
        json!({"allow": ["10.0.0.0/8"]})
    );
}

#[test]
fn rule_names_are_valid_and_unique() {
    let mut taken = BTreeSet::new();
    assert_eq!(rule_name("ns.a-r0", &mut taken), "ns_a-r0");
    assert_eq!(rule_name("ns.a-r0", &mut taken), "ns_a-r0-2");
    assert!(rule_name(&"x".repeat(100), &mut taken).len() <= 64);
}
