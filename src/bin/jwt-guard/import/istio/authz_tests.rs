use super::*;

fn parts(yaml: &str) -> (Vec<Part>, FieldReport) {
    let value: Value = serde_yaml_ng::from_str(yaml).unwrap();
    let mut report = FieldReport::default();
    let parts = rules(&value, "rules", &mut report);
    (parts, report)
}

fn rule_of(part: &Part) -> Json {
    let mut rule = Map::new();
    rule.insert("match".into(), Json::Object(part.matcher.clone()));
    part.conds.write(&mut rule);
    Json::Object(rule)
}

#[test]
fn cross_product_of_sources_and_operations_each_with_the_conditions() {
    let (parts, report) = parts(
        r#"
- from:
  - source: {requestPrincipals: ["iss/a"]}
  - source: {notRequestPrincipals: ["*"], ipBlocks: ["10.0.0.0/8"]}
  to:
  - operation: {methods: [GET], paths: ["/info*"]}
  - operation: {methods: [POST], paths: ["/data"], notHosts: ["a.example.com"]}
  when:
  - key: request.auth.claims[iss]
    values: ["https://accounts.google.com"]
  - key: request.headers[X-Tenant]
    notValues: ["evil*"]
"#,
    );
    assert_eq!(parts.len(), 4);
    assert!(parts.iter().all(|p| !p.lossy), "{}", report.render());
    assert_eq!(parts[0].suffix, "r0-f0-t0");
    assert_eq!(
        rule_of(&parts[0]),
        json!({"match": {"methods": ["GET"], "paths": ["/info*"]},
                   "headers": [{"name": "x-tenant", "not_values": ["evil*"]}],
                   "principals": {"any": ["iss/a"]},
                   "claims": [{"name": "iss", "values": ["https://accounts.google.com"]}]})
    );
    assert_eq!(
        rule_of(&parts[3]),
        json!({"match": {"methods": ["POST"], "paths": ["/data"], "not_hosts": ["a.example.com"]},
                   "source_ips": {"allow": ["10.0.0.0/8"]},
                   "headers": [{"name": "x-tenant", "not_values": ["evil*"]}],
                   "principals": {"none": ["*"]},
                   "claims": [{"name": "iss", "values": ["https://accounts.google.com"]}]})
    );
}

#[test]
fn an_empty_rule_is_every_request() {
    let (parts, report) = parts("- {}\n");
    assert_eq!(parts.len(), 1);
    assert_eq!(rule_of(&parts[0]), json!({"match": {}}));
    assert!(!report.is_lossy());
}

#[test]
fn mtls_identities_ports_and_claim_patterns_are_not_expressible() {
    for yaml in [
        "- from: [{source: {principals: [cluster.local/ns/default/sa/curl]}}]\n",
        "- from: [{source: {namespaces: [dev]}}]\n",
        "- to: [{operation: {ports: ['8080']}}]\n",
        "- to: [{operation: {hosts: ['example.com:8080']}}]\n",
        "- to: [{operation: {hosts: ['example.*']}}]\n",
        "- when: [{key: 'request.auth.claims[groups]', values: ['g*']}]\n",
        "- when: [{key: source.namespace, values: [foo]}]\n",
        "- when: [{key: destination.port, values: ['80']}]\n",
        "- when: [{key: connection.sni, values: [a]}]\n",
        "- when: [{key: 'experimental.envoy.filters.a.b[c]', values: [a]}]\n",
        "- when: [{key: 'request.auth.claims[a.b][c]', values: [x]}]\n",
        "- from: [{source: {requestPrincipals: [a/b]}}]\n  when: [{key: request.auth.principal, values: [c/d]}]\n",
    ] {
        let (parts, report) = parts(yaml);
        assert!(parts.iter().all(|p| p.lossy), "{yaml}");
        assert!(report.is_lossy(), "{yaml}");
    }
}

#[test]
fn conditions_map_to_their_jwt_guard_forms() {
    let (parts, report) = parts(
        r#"
- when:
  - {key: "request.auth.claims[realm][roles]", values: [admin]}
  - {key: request.auth.audiences, values: [api]}
  - {key: request.auth.presenter, notValues: [bad-client]}
  - {key: request.auth.principal, values: ["*"], notValues: ["iss/blocked"]}
  - {key: "request.auth.claims[scope]", values: [read], notValues: [admin]}
  - {key: remote.ip, values: [1.2.3.4], notValues: [1.2.3.5]}
  - {key: "request.headers[User-Agent]", values: ["Mozilla/*"]}
"#,
    );
    assert!(!report.is_lossy(), "{}", report.render());
    assert!(parts[0].conds.uses_ip);
    assert_eq!(
        rule_of(&parts[0]),
        json!({"match": {},
                   "source_ips": {"allow": ["1.2.3.4"], "deny": ["1.2.3.5"]},
                   "headers": [{"name": "user-agent", "values": ["Mozilla/*"]}],
                   "principals": {"any": ["*"], "none": ["iss/blocked"]},
                   "scopes": {"any": ["read"], "none": ["admin"]},
                   "claims": [{"name": "realm.roles", "values": ["admin"]},
                              {"name": "aud", "values": ["api"]},
                              {"name": "azp", "not_values": ["bad-client"]}]})
    );
}

#[test]
fn a_star_principal_combines_with_a_narrower_one() {
    let (parts, report) = parts(
        "- from: [{source: {requestPrincipals: ['*']}}]\n  when: [{key: request.auth.principal, values: [a/b]}]\n",
    );
    assert!(!report.is_lossy());
    assert_eq!(rule_of(&parts[0])["principals"], json!({"any": ["a/b"]}));
}

#[test]
fn hosts() {
    assert_eq!(host("*"), Ok(None));
    assert_eq!(host("*.Example.com"), Ok(Some("*.example.com".into())));
    assert_eq!(host("Example.com"), Ok(Some("example.com".into())));
    assert!(host("*example.com").is_err());
    assert!(host("a.b:80").is_err());
}
