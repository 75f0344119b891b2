"""schema/jwt-guard.schema.json (JSON Schema draft 2020-12) against jwt-guard's parser and every
configuration the repository ships.

- The schema's objects have exactly the members of the serde structs in src/config/schema.rs (Raw*,
  read from the source as conftest.py reads src/reason.rs), with the same required members,
  unknown members refused, and matching JSON types: a field added to the parser and not to the
  schema (or the reverse) fails here, naming it.
- schema/cases.json: the schema's verdict on every case is the one the file gives; the Rust
  parser gives its own verdict on the same file in tests/schema_cases.rs (`make unit`).
- Every shipped jwt-guard configuration validates: envoy/*.yaml, envoy/istio/*.yaml
  (pluginConfig and the EnvoyFilter's configuration) and the JSON examples of README.md and
  docs/*.md; README.md's example is envoy/envoy.yaml's configuration.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import pytest
import yaml

from harness import REPO_ROOT

SCHEMA_PATH = REPO_ROOT / "schema" / "jwt-guard.schema.json"
CASES_PATH = REPO_ROOT / "schema" / "cases.json"
CONFIG_RS = REPO_ROOT / "src" / "config" / "schema.rs"
README = REPO_ROOT / "README.md"
DOCS = [README, *sorted((REPO_ROOT / "docs").glob("*.md"))]

SCHEMA = json.loads(SCHEMA_PATH.read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def errors(config: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in VALIDATOR.iter_errors(config)]


def test_schema_is_a_valid_draft_2020_12_schema():
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


# --------------------------------------------------------------------------- src/config/schema.rs

# Which schema object each serde struct of src/config/schema.rs is ("#" is the root). RawAllowDeny is
# two: its entries are addresses for source_ips and country codes for countries.
STRUCT_DEFS = {
    "RawConfig": ["#"], "RawProvider": ["provider"], "RawClaimHeader": ["claim_header"],
    "RawRemoteJwks": ["remote_jwks"], "RawHeaderLocation": ["header_location"], "RawRule": ["rule"],
    "RawMatch": ["match"], "RawAnyAll": ["any_all"], "RawClaim": ["claim"],
    "RawAllowDeny": ["ip_list", "country_list"], "RawClientIp": ["client_ip"], "RawGeo": ["geo"],
    "RawCertificateBinding": ["certificate_binding"], "RawDpop": ["dpop"],
    "RawDpopNonce": ["dpop_nonce"],
}
SCALARS = {"bool": "boolean", "String": "string", "u64": "integer", "usize": "integer", "u32": "integer"}


def rust_structs() -> dict[str, dict]:
    """{struct: {"deny_unknown": bool, "fields": {json name: (rust type, required)}}} of the
    `struct Raw*` definitions in src/config/schema.rs (rustfmt layout)."""
    source = CONFIG_RS.read_text()
    structs = {}
    for m in re.finditer(r"^((?:#\[[^\n]*\]\n)*)(?:pub(?:\(\w+\))? )?struct (Raw\w+) \{\n(.*?)^\}", source, re.M | re.S):
        attrs, name, body = m.groups()
        fields, pending = {}, []
        for line in body.splitlines():
            line = line.strip()
            if not line or line.startswith("//"):
                continue
            if line.startswith("#["):
                pending.append(line)
                continue
            fm = re.fullmatch(r"(?:pub(?:\(\w+\))? )?(\w+): (.+),", line)
            assert fm, f"{CONFIG_RS}: struct {name}: cannot read the line {line!r}"
            rust_name, rust_type = fm.groups()
            serde = " ".join(a for a in pending if a.startswith("#[serde("))
            rename = re.search(r'rename = "([^"]+)"', serde)
            has_default = re.search(r"\bdefault\b", serde) is not None
            optional = rust_type.startswith("Option<")
            fields[rename.group(1) if rename else rust_name] = (rust_type, not optional and not has_default)
            pending = []
        structs[name] = {"deny_unknown": "deny_unknown_fields" in attrs, "fields": fields}
    assert "RawConfig" in structs and len(structs) >= 10, f"{CONFIG_RS}: read only {sorted(structs)}"
    return structs


def schema_object(ref: str) -> dict:
    return SCHEMA if ref == "#" else SCHEMA["$defs"][ref]


def resolve(prop: dict) -> dict:
    while "$ref" in prop and "type" not in prop:
        prop = SCHEMA["$defs"][prop["$ref"].removeprefix("#/$defs/")]
    return prop


def type_problems(where: str, rust_type: str, prop: dict, structs: dict) -> list[str]:
    """The schema property's JSON type against the Rust type (Value: anything goes)."""
    inner = re.fullmatch(r"Option<(.+)>", rust_type)
    rust_type = inner.group(1) if inner else rust_type
    target = resolve(prop)
    if rust_type in SCALARS:
        ok = target.get("type") == SCALARS[rust_type] or (rust_type == "String" and "enum" in target
                                                           and all(isinstance(v, str) for v in target["enum"]))
        return [] if ok else [f"{where}: Rust {rust_type}, schema {target.get('type', target)}"]
    if rust_type == "Value":
        return []
    if m := re.fullmatch(r"Vec<(.+)>", rust_type):
        if target.get("type") != "array":
            return [f"{where}: Rust {rust_type}, schema type {target.get('type')}"]
        return type_problems(where + "[]", m.group(1), target.get("items", {}), structs)
    if m := re.fullmatch(r"BTreeMap<String, (.+)>", rust_type):
        if target.get("type") != "object":
            return [f"{where}: Rust {rust_type}, schema type {target.get('type')}"]
        return type_problems(where + "{}", m.group(1), target.get("additionalProperties", {}), structs)
    if rust_type in structs:
        ref = prop.get("$ref", "").removeprefix("#/$defs/")
        return [] if ref in STRUCT_DEFS.get(rust_type, []) else [f"{where}: Rust {rust_type}, schema {prop}"]
    return [f"{where}: Rust type {rust_type} is not known to this test"]


def test_schema_has_the_parsers_fields():
    structs = rust_structs()
    problems = [f"{name}: not mapped to a schema object in STRUCT_DEFS" for name in structs if name not in STRUCT_DEFS]
    for name, refs in STRUCT_DEFS.items():
        if name not in structs:
            problems.append(f"{name}: in STRUCT_DEFS but not in {CONFIG_RS.name}")
            continue
        rust = structs[name]
        for ref in refs:
            obj = schema_object(ref)
            where = "schema root" if ref == "#" else f"$defs/{ref}"
            if not rust["deny_unknown"]:
                problems.append(f"{name}: no #[serde(deny_unknown_fields)]")
            if obj.get("additionalProperties") is not False:
                problems.append(f"{where}: additionalProperties is not false ({name} refuses unknown members)")
            props = obj.get("properties", {})
            for field in sorted(set(rust["fields"]) - set(props)):
                problems.append(f"{where}: no property {field!r} ({name} has it)")
            for field in sorted(set(props) - set(rust["fields"])):
                problems.append(f"{where}: property {field!r} that {name} does not have")
            required = sorted(f for f, (_, req) in rust["fields"].items() if req)
            if sorted(obj.get("required", [])) != required:
                problems.append(f"{where}: required {sorted(obj.get('required', []))}, {name} requires {required}")
            for field, (rust_type, _) in rust["fields"].items():
                if field in props:
                    problems += type_problems(f"{where}.{field}", rust_type, props[field], structs)
    assert not problems, "schema/jwt-guard.schema.json and src/config/schema.rs differ:\n" + "\n".join(problems)


# --------------------------------------------------------------------------- schema/cases.json


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (as tests/schema_cases.rs applies it)."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge(result.get(name), value)
    return result


CASES = json.loads(CASES_PATH.read_text())


def test_cases_file_is_well_formed():
    names = [c["name"] for c in CASES["cases"]]
    assert len(names) == len(set(names)), "case names must be unique"
    for case in CASES["cases"]:
        assert case["verdict"] in ("valid", "refused", "semantic"), case
        assert ("field" in case) == (case["verdict"] != "valid"), f"{case['name']}: a refusal names its field"
    verdicts = {c["verdict"] for c in CASES["cases"]}
    assert verdicts == {"valid", "refused", "semantic"}


@pytest.mark.parametrize("case", CASES["cases"], ids=[c["name"] for c in CASES["cases"]])
def test_schema_gives_the_verdict_of_the_parser(case):
    config = merge(CASES["base"], case["patch"])
    found = errors(config)
    if case["verdict"] in ("valid", "semantic"):
        assert not found, f"jwt-guard {'accepts' if case['verdict'] == 'valid' else 'can only itself refuse'} " \
                          f"this, the schema refuses it:\n" + "\n".join(found)
    else:
        assert found, f"jwt-guard refuses this ({case['field']}), the schema accepts it"


# --------------------------------------------------------------------------- shipped examples


def jwt_guard_configurations(node: Any) -> Iterator[dict]:
    """The jwt-guard configurations (Wasm filters whose code is jwt_guard.wasm) in an Envoy config."""
    if isinstance(node, dict):
        config = node.get("config")
        if node.get("@type", "").endswith("filters.http.wasm.v3.Wasm") and isinstance(config, dict):
            code = json.dumps(config.get("vm_config", {}).get("code", {}))
            if "jwt_guard.wasm" in code:
                value = config["configuration"]["value"]
                yield json.loads(value)
        for child in node.values():
            yield from jwt_guard_configurations(child)
    elif isinstance(node, list):
        for child in node:
            yield from jwt_guard_configurations(child)


def shipped() -> list[tuple[str, Any]]:
    found = []
    for path in sorted((REPO_ROOT / "envoy").glob("*.yaml")):
        for i, config in enumerate(jwt_guard_configurations(yaml.safe_load(path.read_text()))):
            found.append((f"{path.name}#{i}", config))
    istio = REPO_ROOT / "envoy" / "istio"
    plugin = yaml.safe_load((istio / "wasmplugin.yaml").read_text())
    found.append(("istio/wasmplugin.yaml pluginConfig", plugin["spec"]["pluginConfig"]))
    ef = yaml.safe_load((istio / "envoyfilter.yaml").read_text())
    for patch in ef["spec"]["configPatches"]:
        if patch["applyTo"] == "EXTENSION_CONFIG":
            config = patch["patch"]["value"]["typed_config"]["value"]["config"]["configuration"]["value"]
            found.append(("istio/envoyfilter.yaml configuration", json.loads(config)))
    return found


SHIPPED = shipped()


def test_every_envoy_config_with_jwt_guard_is_found():
    names = {name.split("#")[0] for name, _ in SHIPPED}
    assert {"envoy.yaml", "remote-jwks.yaml", "istio/wasmplugin.yaml pluginConfig",
            "istio/envoyfilter.yaml configuration"} <= names, names


@pytest.mark.parametrize("name,config", SHIPPED, ids=[n for n, _ in SHIPPED])
def test_shipped_configuration_validates(name, config):
    assert not errors(config), "\n".join(errors(config))


def json_blocks(path: Path) -> list[tuple[str, str]]:
    """("file:line", text) of each ```json block of a Markdown file."""
    text = path.read_text()
    where = path.relative_to(REPO_ROOT)
    found = []
    for m in re.finditer(r"^```json\n(.*?)^```", text, re.M | re.S):
        line = text[:m.start()].count("\n") + 1
        found.append((f"{where}:{line}", m.group(1)))
    return found


def test_docs_json_examples_validate():
    """Each ```json block of README.md and docs/*.md is a whole configuration, or `"member": value`
    pairs of one (checked against the schema of those top-level members)."""
    blocks = [block for path in DOCS for block in json_blocks(path)]
    assert len(blocks) >= 2, "the documentation's configuration examples are gone"
    problems = []
    for where, text in blocks:
        try:
            config = json.loads(text)
            problems += [f"{where}: {e}" for e in errors(config)]
            continue
        except json.JSONDecodeError:
            pass
        members = json.loads("{" + text + "}")  # a fragment: members of the top level
        for name, value in members.items():
            assert name in SCHEMA["properties"], f"{where}: {name!r} is not a top-level member"
            sub = jsonschema.Draft202012Validator({**SCHEMA["properties"][name], "$defs": SCHEMA["$defs"]})
            problems += [f"{where}: {name}: {e.message}" for e in sub.iter_errors(value)]
    assert not problems, "\n".join(problems)


def test_readme_example_is_the_demo_configuration():
    """The landing page's example policy is the one envoy/envoy.yaml runs (make demo, make run and
    the README's curl session, which test_cli.py runs against it)."""
    examples = [json.loads(text) for _, text in json_blocks(README) if '"rules"' in text]
    demo = list(jwt_guard_configurations(yaml.safe_load((REPO_ROOT / "envoy" / "envoy.yaml").read_text())))
    assert len(examples) == 1 and len(demo) == 1
    assert examples[0] == demo[0], "README.md's example policy differs from envoy/envoy.yaml's"
