"""The README is the contract: each of its promises not pinned elsewhere is pinned here."""

from __future__ import annotations

import re

from conftest import DESCRIPTIONS, REASONS_401, REASONS_403, TOKEN_403
from harness import REPO_ROOT


# --------------------------------------------------------------------------- one source for reason codes
# conftest.py reads the codes and descriptions from src/reason.rs; the README must list the same.

README = (REPO_ROOT / "README.md").read_text()


def _section(start: str, end: str) -> str:
    a = README.index(start)
    return README[a:README.index(end, a)]


def test_readme_401_reason_list_matches_the_code():
    text = _section("`reason` ∈", "Descriptions are fixed texts")
    assert re.findall(r"`([a-z_]+)`", text)[1:] == REASONS_401  # [0] is `reason` itself


def test_readme_403_table_matches_the_code():
    table = _section("| reason | error | `WWW-Authenticate` |", "A refused request never reaches")
    rows = [ln for ln in table.splitlines()[2:] if ln.startswith("|")]
    seen: dict[str, tuple[str, str]] = {}
    for row in rows:
        reasons, error, challenge = [cell.strip() for cell in row.strip("|").split("|")]
        for code in re.findall(r"`([a-z_]+)`", reasons):
            assert code not in seen, f"{code} is in two rows"
            seen[code] = (error.strip("`"), challenge)
    assert sorted(seen) == sorted(REASONS_403)
    for code, (error, challenge) in seen.items():
        about_token = code in TOKEN_403
        assert error == ("insufficient_scope" if about_token else "access_denied"), code
        assert challenge.startswith("none") != about_token, (code, challenge)


def test_readme_evaluation_order_names_every_reason():
    text = _section("## Evaluation order", "## Responses")
    named = set(re.findall(r"`([a-z_]+)`", text))
    missing = set(REASONS_401 + REASONS_403) - named
    assert not missing, f"README 'Evaluation order' never names: {sorted(missing)}"


def test_readme_example_description_matches_the_code():
    example = _section("Any other authentication failure:", "`reason` ∈")
    desc = re.search(r'error_description="([^"]*)"', example).group(1)
    reason = re.search(r'"reason":"([a-z_]+)"', example).group(1)
    assert DESCRIPTIONS[reason] == desc


def test_descriptions_are_fixed_quotable_texts():
    # RFC 6750 §3: error_description is %x20-21 / %x23-5B / %x5D-7E (no '"', no '\\').
    for code, text in DESCRIPTIONS.items():
        assert text and all(0x20 <= ord(ch) <= 0x7E and ch not in '"\\' for ch in text), code
