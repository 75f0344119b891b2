"""What Istio does to envoy/istio/*.yaml before Envoy sees it, for tests/integration/test_istio.py.

WasmPlugin (istiod, pilot/pkg/model/extensions.go, convertToWasmPluginWrapper): `pluginConfig` is
a google.protobuf.Struct; istiod marshals it with protomarshal.ToJSON, i.e. the legacy Go
`github.com/golang/protobuf/jsonpb` Marshaler (no indent), and puts the text in a
google.protobuf.StringValue as the Wasm filter's `configuration`. The filter gets `name`
"<namespace>.<name>", `root_id` = `pluginName`, runtime V8, no vm_id, and its code as a remote
data source that the istio-agent downloads (OCI image: the compat layer's plugin.wasm) and
rewrites to a local file before Envoy sees it (pkg/wasm/convert.go).

jsonpb writes a Struct as a JSON object with its keys sorted; a Value's number (a double) goes
through Go's encoding/json, which prints a whole double below 1e21 without a fraction (1000.0 →
`1000`), smaller than 1e-6 or from 1e21 on in exponent form (`1e+21`, `1e-7`); strings are
escaped as encoding/json does, HTML-safe (`<` → \\u003c). `go_jsonpb` below does the same to a
real protobuf Struct. Python's json_format, another marshaller users meet, prints every number
of a Struct as a float (`1000.0`).
"""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from google.protobuf import json_format, struct_pb2

from harness import WASM_TYPE

STRING_VALUE = "type.googleapis.com/google.protobuf.StringValue"
TYPED_STRUCT = "type.googleapis.com/udpa.type.v1.TypedStruct"


def to_struct(obj: dict) -> struct_pb2.Struct:
    """A JSON-like dict as the protobuf Struct Kubernetes and istiod hold (numbers: doubles)."""
    struct = struct_pb2.Struct()
    json_format.ParseDict(obj, struct)
    return struct


# ------------------------------------------------------------------ Go's encoding/json


def go_float(f: float) -> str:
    """strconv.AppendFloat(f, 'f' or 'e', -1, 64) as encoding/json's floatEncoder uses it."""
    if f != f or f in (float("inf"), float("-inf")):
        raise ValueError("jsonpb writes NaN and infinities as strings; a Struct from YAML has none")
    d = Decimal(repr(f)).normalize()
    if f == 0 or 1e-6 <= abs(f) < 1e21:
        text = format(d, "f")
        return "-0" if text == "-0" else text
    sign, digits, exponent = d.as_tuple()
    mantissa = str(digits[0]) + ("." + "".join(map(str, digits[1:])) if len(digits) > 1 else "")
    exp = exponent + len(digits) - 1
    # Go prints at least two exponent digits, then encoding/json trims "e-07" to "e-7".
    text = f"{'-' if sign else ''}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    return text.replace("e-0", "e-") if exp < 0 and abs(exp) < 10 else text


_GO_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f",
               "<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def go_string(s: str) -> str:
    out = []
    for ch in s:
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _go_value(value: struct_pb2.Value) -> str:
    kind = value.WhichOneof("kind")
    if kind == "null_value":
        return "null"
    if kind == "number_value":
        return go_float(value.number_value)
    if kind == "string_value":
        return go_string(value.string_value)
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "struct_value":
        return go_jsonpb(value.struct_value)
    if kind == "list_value":
        return "[" + ",".join(_go_value(v) for v in value.list_value.values) + "]"
    raise ValueError("a Value with no kind (jsonpb: 'nil Value')")


def go_jsonpb(struct: struct_pb2.Struct) -> str:
    """The Struct as istiod's protomarshal.ToJSON prints it: compact, keys sorted."""
    return "{" + ",".join(f"{go_string(k)}:{_go_value(struct.fields[k])}" for k in sorted(struct.fields)) + "}"


def python_json_format(struct: struct_pb2.Struct) -> str:
    return json_format.MessageToJson(struct, indent=None)


# ------------------------------------------------------------------ the Envoy filter


def wasm_plugin_filter(plugin: dict, wasm_path: Path | str, configuration: str, resource_version: str = "1") -> dict:
    """The HTTP filter istiod makes of a WasmPlugin, with the code rewritten to a local file as the
    istio-agent does (istiod delivers it through ECDS; here it is inline)."""
    meta, spec = plugin["metadata"], plugin["spec"]
    name = f"{meta['namespace']}.{meta['name']}"
    return {
        "name": name,
        "typed_config": {
            "@type": WASM_TYPE,
            "config": {
                "name": name,
                "root_id": spec.get("pluginName", ""),
                "configuration": {"@type": STRING_VALUE, "value": configuration},
                "fail_open": spec.get("failStrategy", "FAIL_CLOSE") == "FAIL_OPEN",
                "vm_config": {
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": str(wasm_path)}},
                    "environment_variables": {
                        "key_values": {"ISTIO_META_WASM_PLUGIN_RESOURCE_VERSION": resource_version}},
                },
            },
        },
    }


def envoy_filter_extension(envoy_filter: dict) -> dict:
    """The EnvoyFilter's EXTENSION_CONFIG patch value (a TypedExtensionConfig)."""
    patches = [p for p in envoy_filter["spec"]["configPatches"] if p["applyTo"] == "EXTENSION_CONFIG"]
    assert len(patches) == 1, patches
    return patches[0]["patch"]["value"]


def envoy_filter_http_filter(envoy_filter: dict, wasm_path: Path | str) -> dict:
    """The EXTENSION_CONFIG patch as an inline HTTP filter, its remote code rewritten to a local
    file as the istio-agent does (the TypedStruct kept: Envoy reads it as the Wasm message)."""
    extension = copy.deepcopy(envoy_filter_extension(envoy_filter))
    vm = extension["typed_config"]["value"]["config"]["vm_config"]
    assert "remote" in vm["code"], vm
    vm["code"] = {"local": {"filename": str(wasm_path)}}
    return {"name": extension["name"], "typed_config": extension["typed_config"]}


def envoy_filter_configuration(envoy_filter: dict) -> Any:
    config = envoy_filter_extension(envoy_filter)["typed_config"]["value"]["config"]["configuration"]
    assert config["@type"] == STRING_VALUE, config
    return json.loads(config["value"])
