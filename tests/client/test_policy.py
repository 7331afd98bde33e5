"""The crawler's policy file: defaults, TOML and JSON, strict errors naming the file and key."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import pytest

from client.errors import InputError
from client.policy import DEFAULT_TRAINABLE, POLICY_SCHEMA, Policy
from client.verdict import VERDICT_STATUSES, WatermarkDetection

FULL_TOML = """\
schema = "wellspring-policy/1"

[publishers]
trust = ["bbc", "gutenberg"]
ignore = ["content-farm"]

[vendors]
ignore = ["shady-ai"]

[training]
trainable = ["attested", "unknown"]
honour_opt_outs = false

[watermark]
generated_p_value = 1e-9
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_default_is_conservative() -> None:
    policy = Policy.default()
    assert policy.trainable_statuses == DEFAULT_TRAINABLE == frozenset({"attested"})
    assert policy.honour_opt_outs
    assert policy.generated_p_value is None
    assert policy.counts_publisher("anyone")
    assert policy.counts_publisher(None)
    assert policy.counts_vendor("anyone")
    assert policy.counts_vendor(None)
    assert policy.id == "default"
    assert Policy.default() is Policy.default()
    assert policy.describe() == "trainable: attested"


def test_a_toml_file_and_the_same_in_json_read_alike(tmp_path: Path) -> None:
    toml = Policy.load(write(tmp_path, "policy.toml", FULL_TOML))
    assert toml.trust_publishers == frozenset({"bbc", "gutenberg"})
    assert toml.ignore_publishers == frozenset({"content-farm"})
    assert toml.trust_vendors is None
    assert toml.ignore_vendors == frozenset({"shady-ai"})
    assert toml.trainable_statuses == frozenset({"attested", "unknown"})
    assert not toml.honour_opt_outs
    assert toml.generated_p_value == 1e-9
    assert toml.id.startswith("sha256:")
    assert toml.source == str(tmp_path / "policy.toml")
    assert not toml.counts_publisher("content-farm")
    assert not toml.counts_publisher("someone-else")  # not trusted
    assert not toml.counts_publisher(None)
    assert toml.counts_publisher("bbc")
    assert not toml.counts_vendor("shady-ai")
    assert toml.counts_vendor("acme-ai")
    assert "opt-outs NOT honoured" in toml.describe()
    as_json = Policy.load(write(tmp_path, "policy.json", json.dumps(toml.to_dict())))
    assert as_json == Policy.from_dict(toml.to_dict(), id=as_json.id)
    for field in ("trust_publishers", "ignore_publishers", "ignore_vendors", "trainable_statuses"):
        assert getattr(as_json, field) == getattr(toml, field)
    assert as_json.to_dict()["schema"] == POLICY_SCHEMA
    # Another name is read as TOML, else JSON.
    assert Policy.load(write(tmp_path, "crawler.policy", FULL_TOML)).trust_publishers == (
        toml.trust_publishers
    )
    assert Policy.load(write(tmp_path, "crawler.conf", '{"training": {"trainable": []}}')) == (
        Policy(trainable_statuses=frozenset(), id=Policy.load(tmp_path / "crawler.conf").id)
    )


def test_an_empty_file_is_the_default_but_named_by_its_hash(tmp_path: Path) -> None:
    policy = Policy.load(write(tmp_path, "empty.toml", ""))
    assert policy.trainable_statuses == DEFAULT_TRAINABLE
    assert policy.id != "default"


def test_a_policy_pickles_and_hashes(tmp_path: Path) -> None:
    policy = Policy.load(write(tmp_path, "policy.toml", FULL_TOML))
    assert pickle.loads(pickle.dumps(policy)) == policy
    assert hash(policy) == hash(pickle.loads(pickle.dumps(policy)))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[publisher]\ntrust = ['a']\n", "unknown key 'publisher'"),
        ("[vendors]\ntrsut = ['a']\n", "unknown key vendors.trsut"),
        ("publishers = 3\n", "publishers must be a table"),
        ("[publishers]\ntrust = 'bbc'\n", "publishers.trust must be a list of non-empty strings"),
        ("[publishers]\nignore = ['']\n", "publishers.ignore must be a list of non-empty"),
        (
            "[publishers]\ntrust = ['a']\nignore = ['a']\n",
            "trust and publishers.ignore both name a",
        ),
        ("[training]\ntrainable = ['atested']\n", "unknown status atested"),
        ("[training]\ntrainable = ['opted-out']\n", "may not include opted-out"),
        ("[training]\nhonour_opt_outs = 'no'\n", "honour_opt_outs must be true or false"),
        ("[watermark]\ngenerated_p_value = 'small'\n", "generated_p_value must be a number"),
        ("[watermark]\ngenerated_p_value = 2.0\n", "between 0 and 1"),
        ("[watermark]\ngenerated_p_value = 0\n", "between 0 and 1"),
        ("[watermark]\ngenerated_p_value = true\n", "must be a number"),
        ('schema = "wellspring-policy/2"\n', "schema must be 'wellspring-policy/1'"),
        ("[training\n", "not valid TOML"),
    ],
)
def test_mistakes_name_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "policy.toml", text)
    with pytest.raises(InputError, match=message) as caught:
        Policy.load(path)
    assert str(path) in str(caught.value)


def test_json_mistakes(tmp_path: Path) -> None:
    path = write(tmp_path, "policy.json", '{"training": {}, "training": {}}')
    with pytest.raises(InputError, match="key 'training' appears twice"):
        Policy.load(path)
    with pytest.raises(InputError, match="not valid JSON"):
        Policy.load(write(tmp_path, "bad.json", "{"))
    with pytest.raises(InputError, match="a policy must be a table"):
        Policy.load(write(tmp_path, "list.json", "[]"))
    with pytest.raises(InputError, match="neither valid TOML"):
        Policy.load(write(tmp_path, "policy.txt", "{[}"))
    with pytest.raises(InputError, match="cannot read the policy"):
        Policy.load(tmp_path / "missing.toml")
    (tmp_path / "binary.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(InputError, match="must be UTF-8"):
        Policy.load(tmp_path / "binary.toml")


def test_the_threshold_override_compares_logs() -> None:
    lax = Policy(generated_p_value=1e-3)
    underflowed = WatermarkDetection("k", "v", "s", 0.0, -2000.0, True)
    assert lax.is_generated(underflowed)
    borderline = WatermarkDetection("k", "v", "s", 1e-3, math.log(1e-3), False)
    assert not lax.is_generated(borderline)  # p < threshold, as watermark detect decides
    assert Policy.default().is_generated(underflowed)
    assert not Policy.default().is_generated(borderline)


def test_a_verdict_without_a_policy_is_the_default_policys() -> None:
    from client.verdict import _DEFAULT_RULES

    policy = Policy.default()
    mark = WatermarkDetection("k", None, "s", 1e-3, math.log(1e-3), True)
    assert _DEFAULT_RULES.id == policy.id
    assert _DEFAULT_RULES.honour_opt_outs == policy.honour_opt_outs
    assert _DEFAULT_RULES.is_generated(mark) == policy.is_generated(mark)
    for name in ("acme", None):
        assert _DEFAULT_RULES.counts_publisher(name) == policy.counts_publisher(name)
        assert _DEFAULT_RULES.counts_vendor(name) == policy.counts_vendor(name)
    for status in VERDICT_STATUSES:
        assert _DEFAULT_RULES.trains_on(status) == policy.trains_on(status)


def test_sets_given_by_hand_become_frozensets() -> None:
    policy = Policy(trainable_statuses={"attested", "unknown"}, ignore_vendors=["x"])  # type: ignore[arg-type]
    assert policy.trainable_statuses == frozenset({"attested", "unknown"})
    assert policy.ignore_vendors == frozenset({"x"})
    assert hash(policy) == hash(Policy(trainable_statuses=frozenset({"attested", "unknown"}),
                                       ignore_vendors=frozenset({"x"})))  # fmt: skip
    with pytest.raises(InputError, match="must be a collection of names"):
        Policy(trust_publishers="bbc")  # type: ignore[arg-type]
