"""Export (SPEC §7): Kubernetes and Compose documents that the published schemas accept.

Every document produced here is checked with the real validators: the
``kubernetes_validate`` API in strict mode (and its CLI once per workload), and the
compose-spec schema through ``check-jsonschema --builtin-schema vendor.compose-spec``.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from dalfleet.errors import FleetError, InvalidArgumentError
from dalfleet.export import (
    MEMBERS_DIR,
    compose_memory,
    export_documents,
    export_yaml,
    memory_limit_quantity,
    parse_format,
)
from dalfleet.models import ExportFormat, Fleet

# -- what the checks below hold every document to ---------------------------------------


VALIDATORS_MISSING = "the validators extra is not installed: pip install '.[validators]'"


def validator(module: str) -> Any:
    """The validator module, or skip the test (with the reason) when it is not installed."""
    return pytest.importorskip(module, reason=VALIDATORS_MISSING)


@cache
def k8s_versions() -> tuple[str, ...]:
    """The oldest bundled schema version from 1.28 on (the StatefulSet pod-index label is
    on by default since 1.28) and the newest one."""
    bundled = validator("kubernetes_validate").utils.all_versions()
    supported = [v for v in bundled if tuple(map(int, v.split(".")[:2])) >= (1, 28)]
    return tuple(dict.fromkeys([supported[0], supported[-1]]))


DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS_1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
LABEL_KEY = re.compile(
    r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
)
COMPOSE_SERVICE = re.compile(r"[a-zA-Z0-9._-]+")

HOSTILE = [
    "say \"hello\" and 'bye'",
    "line one\nline two\n",
    "key: value",
    "a: b\nc: d\nservices: {x: 1}",
    "# not a comment",
    "{}",
    "{a: 1, b: [2, 3]}",
    "[1, 2]",
    "---\napiVersion: v1\nkind: Secret",
    "...",
    "&a [*a, *a]",
    "*alias",
    "!!python/object/apply:os.system ['echo pwned']",
    "!!binary aGVsbG8=",
    "%YAML 1.1",
    "- item",
    "? complex key",
    "| block",
    "> folded",
    "@at `backtick`",
    "tab\there",
    "  leading and trailing spaces  ",
    "unicode: żółć 😀 舰队 \u2028 \u0085 \ufeff",
    "null",
    "~",
    "yes",
    "y",
    "0o17",
    "1e3",
    "0x1F",
    "1_000",
    "12:30:00",
    "=",
    "<<",
    "cost $5 and $HOME",
    "$(DAL_AGENT_ID) $$ ${VAR:?boom}",
    "\\ backslash \\n",
    "a" * 5000,
]

AWKWARD_NAMES = [
    "workers",
    "My_Fleet",
    "my-fleet",
    "my_fleet",
    "MY.FLEET",
    "my.fleet",
    "MY-FLEET",
    "My-Fleet",
    "a..b",
    "a.-b",
    "a--b",
    "weird name!",
    "x" * 63,
    "X" * 63,
    "x" * 62 + "_",
    "x" * 62 + "y",
    "0abc",
    "9",
    "-leading",
    "trailing-",
    "",
    " ",
    "flotte-é",
    "舰队",
    "a/b",
    'quo"te',
    "new\nline",
    "co:lon",
    "hash#tag",
    "{brace}",
    "$(HOME)",
    "y",
    "no",
    "0o17",
    "1e3",
    "null",
    # Crafted to equal the hashed name of "My_Fleet": still no clash.
    "my-fleet-" + hashlib.sha256(b"My_Fleet").hexdigest()[:8],
]


def awkward_fleets(task: str | None = "Process daily logs") -> list[Fleet]:
    return [
        Fleet(
            name=name,
            member_ids=[f"agent_{i}_{n}" for n in range(3 if i % 3 else 1)],
            mold_source="mold/worker.mold.dal" if i % 2 else None,
            last_deployed_task=task,
        )
        for i, name in enumerate(AWKWARD_NAMES)
    ]


def k8s_validate(docs: list[dict[str, Any]]) -> None:
    """Strict schema validation of every document, on every version we support."""
    assert docs
    kubernetes_validate = validator("kubernetes_validate")
    for doc in docs:
        for version in k8s_versions():
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} {version}: {path}: {exc}")


@cache
def compose_schema() -> Any:
    validator("check_jsonschema")
    ref = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads((ref / "compose-spec.json").read_text(encoding="utf-8"))


def compose_validate_api(doc: Mapping[str, Any]) -> None:
    """The compose-spec schema that check-jsonschema bundles, via the jsonschema API (fast)."""
    validator("jsonschema").Draft202012Validator(compose_schema()).validate(doc)


def run_validator(module: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a validator's command line (``python -m MODULE``) with this interpreter."""
    validator(module)
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def kubernetes_validate_cli(path: Path) -> None:
    args = ["--strict", "--quiet"]
    for version in k8s_versions():
        args += ["-k", version]
    result = run_validator("kubernetes_validate", [*args, str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    # A document whose kind has no schema is only a WARN with exit status 0.
    assert "WARN" not in result.stdout and "ERROR" not in result.stdout, result.stdout


def check_jsonschema_cli(*paths: Path) -> None:
    result = run_validator(
        "check_jsonschema", ["--builtin-schema", "vendor.compose-spec", *map(str, paths)]
    )
    assert result.returncode == 0, result.stdout + result.stderr


def leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from leaves(sub, (*path, key))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            yield from leaves(sub, (*path, i))
    else:
        yield path, value


def shape(value: Any) -> set[tuple[Any, ...]]:
    """Every key path of a document (values ignored)."""
    return {path for path, _ in leaves(value)}


def jobs(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == "Job"]


def env_of(container: Mapping[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def k8s_expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion of env values (third_party/forked/golang/expansion)."""
    out: list[str] = []
    i = 0
    while i < len(value):
        if value[i] == "$" and i + 1 < len(value):
            nxt = value[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = value.find(")", i + 2)
                if end != -1:
                    name = value[i + 2 : end]
                    out.append(env.get(name, f"$({name})"))
                    i = end + 1
                    continue
            out.append(value[i : i + 2])
            i += 2
            continue
        out.append(value[i])
        i += 1
    return "".join(out)


class EveryVar(dict[str, str]):
    """An environment where every variable is defined: the worst case for expansion."""

    def get(self, key: str, default: Any = None) -> str:
        return "EXPANDED"


def compose_unescape(value: str) -> str:
    """What Compose makes of a value whose ``$`` are all doubled: a literal."""
    assert re.fullmatch(r"(?:[^$]|\$\$)*", value, re.DOTALL), value
    return value.replace("$$", "$")


def check_k8s_names(docs: list[dict[str, Any]]) -> None:
    """Names valid for their kind and unique per kind; every label key and value valid."""
    names: dict[str, list[str]] = {}
    for doc in docs:
        name = doc["metadata"]["name"]
        names.setdefault(doc["kind"], []).append(name)
        assert len(name) <= 63 and DNS_LABEL.fullmatch(name), name
        if doc["kind"] == "Service":
            assert DNS_1035_LABEL.fullmatch(name), name
        if doc["kind"] == "StatefulSet":
            assert len(name) <= 52, name
        metas = [doc["metadata"]]
        if "template" in doc.get("spec", {}):
            metas.append(doc["spec"]["template"]["metadata"])
        for meta in metas:
            for key, value in meta["labels"].items():
                assert LABEL_KEY.fullmatch(key), key
                assert len(value) <= 63 and LABEL_VALUE.fullmatch(value), value
            assert all(isinstance(v, str) for v in meta["annotations"].values())
    for kind, kind_names in names.items():
        assert len(set(kind_names)) == len(kind_names), (kind, Counter(kind_names).most_common(3))


# -- format and memory --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("k8s", ExportFormat.K8S),
        ("K8S", ExportFormat.K8S),
        ("kubernetes", ExportFormat.K8S),
        (" k8s ", ExportFormat.K8S),
        ("docker-compose", ExportFormat.DOCKER_COMPOSE),
        ("compose", ExportFormat.DOCKER_COMPOSE),
        ("Docker-Compose", ExportFormat.DOCKER_COMPOSE),
        (ExportFormat.K8S, ExportFormat.K8S),
        (ExportFormat.DOCKER_COMPOSE, ExportFormat.DOCKER_COMPOSE),
    ],
)
def test_parse_format_accepts_k8s_and_compose_spellings(value: Any, expected: ExportFormat) -> None:
    assert parse_format(value) is expected


@pytest.mark.parametrize("value", ["helm", "", "docker", "k8s\n--", None, 3])
def test_parse_format_rejects_unknown_formats(value: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="expected k8s, docker-compose or compose"):
        parse_format(value)


def test_unknown_format_message_names_the_value() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        parse_format("helm")
    assert (
        str(info.value) == "unknown export format 'helm': expected k8s, docker-compose or compose"
    )
    with pytest.raises(InvalidArgumentError, match="'helm'"):
        export_yaml([Fleet(name="w", member_ids=["a"])], "helm")


@pytest.mark.parametrize(
    ("mold", "k8s", "compose"),
    [
        ("256MB", "256Mi", "256M"),
        ("2GB", "2Gi", "2G"),
        ("512KB", "512Ki", "512K"),
        ("512kb", "512Ki", "512K"),
        ("1 GiB", "1Gi", "1G"),
        ("64M", "64Mi", "64M"),
        ("1024MB", "1Gi", "1G"),
        ("1500MB", "1500Mi", "1500M"),
        ("1000", "1000", "1000"),
        ("1048576B", "1Mi", "1M"),
    ],
)
def test_memory_limit_converts_to_binary_units(mold: str, k8s: str, compose: str) -> None:
    assert memory_limit_quantity(mold) == k8s
    assert compose_memory(mold) == compose


@pytest.mark.parametrize("value", ["", "lots", "0MB", "-1MB", "1.5GB", "256XB", "MB", "1e3MB"])
def test_memory_limit_rejects_bad_values(value: str) -> None:
    with pytest.raises(InvalidArgumentError, match="memory_limit"):
        memory_limit_quantity(value)


# -- Kubernetes Jobs (reference shape) ----------------------------------------------------


def test_k8s_emits_one_reference_shaped_job_per_member() -> None:
    fleet = Fleet(name="workers", member_ids=["agent_a", "agent_b"])
    docs = export_documents([fleet], "k8s")
    k8s_validate(docs)
    assert [d["kind"] for d in docs] == ["Job", "Job"]
    for doc, agent_id in zip(docs, fleet.member_ids, strict=True):
        assert doc["apiVersion"] == "batch/v1"
        pod = doc["spec"]["template"]["spec"]
        assert pod["restartPolicy"] == "Never"
        [container] = pod["containers"]
        assert container["name"] == "agent"
        assert container["image"] == "dal-agent:latest"
        assert env_of(container) == {"DAL_AGENT_ID": agent_id, "DAL_FLEET": "workers"}
        assert "resources" not in container
    assert [d["metadata"]["name"] for d in docs] == ["workers-0", "workers-1"]


def test_k8s_jobs_carry_recommended_labels_and_exact_names_in_annotations() -> None:
    docs = export_documents([Fleet(name="My_Fleet", member_ids=["agent:1"])], "k8s")
    [job] = docs
    for meta in (job["metadata"], job["spec"]["template"]["metadata"]):
        assert meta["labels"] == {
            "app.kubernetes.io/name": "dal-agent",
            "app.kubernetes.io/instance": "My_Fleet",
            "app.kubernetes.io/component": "agent",
            "app.kubernetes.io/managed-by": "dalfleet",
            "dalfleet.dev/member-index": "0",
        }
        assert meta["annotations"] == {
            "dalfleet.dev/fleet": "My_Fleet",
            "dalfleet.dev/agent-id": "agent:1",
        }


def test_k8s_env_has_fleet_mold_and_task_when_set() -> None:
    fleet = Fleet(
        name="w",
        member_ids=["a1"],
        mold_source="mold/worker.mold.dal",
        last_deployed_task="Process daily logs",
    )
    [job] = export_documents([fleet], "k8s")
    assert env_of(job["spec"]["template"]["spec"]["containers"][0]) == {
        "DAL_AGENT_ID": "a1",
        "DAL_FLEET": "w",
        "DAL_MOLD": "mold/worker.mold.dal",
        "DAL_TASK": "Process daily logs",
    }


def test_k8s_memory_limit_comes_from_the_mold() -> None:
    fleets = [Fleet(name="big", member_ids=["a"]), Fleet(name="small", member_ids=["b"])]
    docs = export_documents(fleets, "k8s", memory_limits={"big": "2GB", "small": None})
    k8s_validate(docs)
    big, small = (d["spec"]["template"]["spec"]["containers"][0] for d in docs)
    assert big["resources"] == {"limits": {"memory": "2Gi"}}
    assert "resources" not in small


def test_invalid_memory_limit_names_the_fleet() -> None:
    with pytest.raises(InvalidArgumentError, match=r"fleet 'w'.*memory_limit"):
        export_documents([Fleet(name="w", member_ids=["a"])], "k8s", memory_limits={"w": "lots"})


def test_fleet_without_members_has_no_job() -> None:
    fleets = [Fleet(name="empty"), Fleet(name="one", member_ids=["a"])]
    docs = export_documents(fleets, "k8s")
    assert [d["metadata"]["name"] for d in docs] == ["one-0"]
    assert export_yaml([Fleet(name="empty")], "k8s") == ""


def test_no_fleets_gives_nothing() -> None:
    assert export_documents([], "k8s") == []
    assert export_documents([], "compose") == []
    assert export_yaml([], "k8s") == ""
    assert export_yaml([], "docker-compose") == ""


def test_same_fleet_twice_is_an_error() -> None:
    with pytest.raises(InvalidArgumentError, match="more than once"):
        export_documents([Fleet(name="w"), Fleet(name="w")], "k8s")


# -- names --------------------------------------------------------------------------------


@pytest.mark.slow  # strict validation of many documents on two schema versions
@pytest.mark.parametrize("workload", ["job", "statefulset"])
def test_awkward_fleet_names_give_valid_unique_names(workload: str) -> None:
    docs = export_documents(awkward_fleets(), "k8s", workload=workload)
    check_k8s_names(docs)
    k8s_validate(docs)
    instances = {
        d["metadata"]["annotations"]["dalfleet.dev/fleet"]: d["metadata"]["labels"][
            "app.kubernetes.io/instance"
        ]
        for d in docs
    }
    assert len(set(instances.values())) == len(instances) == len(AWKWARD_NAMES)


def test_clean_names_are_kept_and_changed_names_get_a_hash() -> None:
    docs = export_documents(
        [Fleet(name="my-fleet", member_ids=["a"]), Fleet(name="My_Fleet", member_ids=["b"])],
        "k8s",
    )
    digest = hashlib.sha256(b"My_Fleet").hexdigest()[:8]
    assert [d["metadata"]["name"] for d in docs] == ["my-fleet-0", f"my-fleet-{digest}-0"]


def test_names_differing_by_case_or_separator_stay_apart() -> None:
    names = ["my-fleet", "My-Fleet", "MY-FLEET", "my_fleet", "my.fleet", "My_Fleet"]
    fleets = [Fleet(name=n, member_ids=["a", "b"]) for n in names]
    for fmt in ("k8s", "compose"):
        docs = export_documents(fleets, fmt)
        if fmt == "k8s":
            job_names = [d["metadata"]["name"] for d in docs]
        else:
            job_names = list(docs[0]["services"])
        assert len(set(job_names)) == len(job_names) == 2 * len(names)


def test_names_are_deterministic_and_independent_of_the_other_fleets() -> None:
    fleets = awkward_fleets()

    def names_by_fleet(subset: list[Fleet]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for doc in export_documents(subset, "k8s"):
            fleet = doc["metadata"]["annotations"]["dalfleet.dev/fleet"]
            out.setdefault(fleet, []).append(doc["metadata"]["name"])
        return out

    together = names_by_fleet(fleets)
    assert names_by_fleet(list(reversed(fleets))) == together
    crafted = AWKWARD_NAMES[-1]
    for fleet in fleets:
        if fleet.name not in ("My_Fleet", crafted):  # the crafted pair resolve their clash
            assert names_by_fleet([fleet]) == {fleet.name: together[fleet.name]}


def test_crafted_name_equal_to_a_hashed_name_does_not_clash() -> None:
    crafted = "my-fleet-" + hashlib.sha256(b"My_Fleet").hexdigest()[:8]
    fleets = [Fleet(name="My_Fleet", member_ids=["a"]), Fleet(name=crafted, member_ids=["b"])]
    alone = export_documents([fleets[0]], "k8s")[0]["metadata"]["name"]
    assert alone == f"{crafted}-0"
    names = [d["metadata"]["name"] for d in export_documents(fleets, "k8s")]
    assert len(set(names)) == 2
    check_k8s_names(export_documents(fleets, "k8s", workload="statefulset"))


@pytest.mark.parametrize("name", ["x" * 63, "A" * 63, "a" * 62 + "_", "a" * 58, "a" * 59])
def test_long_fleet_names_fit_in_63_characters(name: str) -> None:
    fleet = Fleet(name=name, member_ids=[f"agent_{i}" for i in range(1001)])
    docs = export_documents([fleet], "k8s")
    check_k8s_names(docs)
    assert max(len(d["metadata"]["name"]) for d in docs) <= 63
    assert docs[-1]["metadata"]["name"].endswith("-1000")
    sts = export_documents([fleet], "k8s", workload="statefulset")
    check_k8s_names(sts)
    k8s_validate(sts)


def test_a_job_name_does_not_change_when_the_fleet_grows() -> None:
    small = export_documents([Fleet(name="a" * 58, member_ids=["x"])], "k8s")
    big = export_documents([Fleet(name="a" * 58, member_ids=[str(i) for i in range(200)])], "k8s")
    assert small[0]["metadata"]["name"] == big[0]["metadata"]["name"]


def test_huge_fleets_still_get_short_names() -> None:
    fleet = Fleet(name="x" * 63, member_ids=[f"a{i}" for i in range(10_001)])
    names = [d["metadata"]["name"] for d in export_documents([fleet], "k8s")]
    assert max(map(len, names)) <= 63
    assert len(set(names)) == len(names)


def test_two_63_character_names_differing_at_the_end_stay_apart() -> None:
    fleets = [Fleet(name="a" * 62 + c, member_ids=["m"]) for c in "bcB_"]
    docs = export_documents(fleets, "k8s")
    check_k8s_names(docs)
    assert len({d["metadata"]["name"] for d in docs}) == 4


# -- hostile values -----------------------------------------------------------------------


def test_every_member_appears_exactly_once() -> None:
    fleets = awkward_fleets()
    expected = Counter((f.name, m) for f in fleets for m in f.member_ids)
    docs = export_documents(fleets, "k8s")
    envs = [env_of(d["spec"]["template"]["spec"]["containers"][0]) for d in docs]
    seen = Counter(
        (k8s_expand(env["DAL_FLEET"], EveryVar()), k8s_expand(env["DAL_AGENT_ID"], EveryVar()))
        for env in envs
    )
    assert seen == expected
    annotated = Counter(
        (
            d["metadata"]["annotations"]["dalfleet.dev/fleet"],
            d["metadata"]["annotations"]["dalfleet.dev/agent-id"],
        )
        for d in docs
    )
    assert annotated == expected
    [compose] = export_documents(fleets, "compose")
    seen_compose = Counter(
        (
            compose_unescape(s["environment"]["DAL_FLEET"]),
            compose_unescape(s["environment"]["DAL_AGENT_ID"]),
        )
        for s in compose["services"].values()
    )
    assert seen_compose == expected
    sts = export_documents(fleets, "k8s", workload="statefulset")
    seen_sts = Counter(
        (d["metadata"]["annotations"]["dalfleet.dev/fleet"], agent_id)
        for d in sts
        if d["kind"] == "ConfigMap"
        for agent_id in d["data"].values()
    )
    assert seen_sts == expected


@pytest.mark.parametrize("task", HOSTILE)
def test_hostile_task_round_trips_and_adds_no_keys(task: str) -> None:
    hostile = [
        Fleet(name="w", member_ids=["a1", "a2"], mold_source=task, last_deployed_task=task),
        Fleet(name=task, member_ids=[task]),
    ]
    benign = [
        Fleet(name="w", member_ids=["a1", "a2"], mold_source="m", last_deployed_task="t"),
        Fleet(name="v", member_ids=["b"]),
    ]
    for fmt in ("k8s", "compose"):
        for workload in ("job", "statefulset"):
            kwargs: dict[str, Any] = {"workload": workload, "memory_limits": {"w": "1GB"}}
            text = export_yaml(hostile, fmt, **kwargs)
            loaded = list(yaml.safe_load_all(text))
            assert loaded == export_documents(hostile, fmt, **kwargs)
            expected = export_documents(benign, fmt, **kwargs)
            assert len(loaded) == len(expected)
            if fmt == "compose":
                # Service names differ; compare the services' shapes in order.
                loaded_services = list(loaded[0]["services"].values())
                expected_services = list(expected[0]["services"].values())
                assert list(loaded[0]) == ["services"]
                assert [shape(s) for s in loaded_services] == [shape(s) for s in expected_services]
                env = loaded_services[0]["environment"]
                assert compose_unescape(env["DAL_TASK"]) == task
                assert compose_unescape(env["DAL_MOLD"]) == task
            else:
                assert [shape(d) for d in loaded] == [shape(d) for d in expected]
                container = loaded[0 if workload == "job" else 2]["spec"]["template"]["spec"]
                env = env_of(container["containers"][0])
                assert k8s_expand(env["DAL_TASK"], EveryVar()) == task
                assert k8s_expand(env["DAL_MOLD"], EveryVar()) == task


@pytest.mark.slow  # runs the validators' command lines
def test_hostile_documents_pass_both_validators(tmp_path: Path) -> None:
    fleets = [
        Fleet(
            name=task[:80],
            member_ids=[task, f"{task}-2"],
            mold_source=task,
            last_deployed_task=task,
        )
        for task in HOSTILE
    ]
    memory = {f.name: "256MB" for f in fleets}
    for workload in ("job", "statefulset"):
        check_k8s_names(export_documents(fleets, "k8s", workload=workload, memory_limits=memory))
        path = tmp_path / f"{workload}.yaml"
        path.write_text(
            export_yaml(fleets, "k8s", workload=workload, memory_limits=memory), encoding="utf-8"
        )
        kubernetes_validate_cli(path)
    compose = tmp_path / "compose.yaml"
    compose.write_text(export_yaml(fleets, "compose", memory_limits=memory), encoding="utf-8")
    check_jsonschema_cli(compose)


def test_task_is_kept_exactly_when_kubernetes_would_not_expand_it() -> None:
    for task, expected in [
        ("cost $5 and $HOME", "cost $5 and $HOME"),
        ("run $(rm -rf /)", "run $$(rm -rf /)"),
        ("a $$ b $c", "a $$$$ b $$c"),
    ]:
        [job] = export_documents(
            [Fleet(name="w", member_ids=["a"], last_deployed_task=task)], "k8s"
        )
        assert env_of(job["spec"]["template"]["spec"]["containers"][0])["DAL_TASK"] == expected


def test_compose_escapes_every_dollar_from_interpolation() -> None:
    fleet = Fleet(name="w", member_ids=["a$1"], last_deployed_task="echo ${HOME:?x} $$ $")
    [doc] = export_documents([fleet], "compose")
    service = doc["services"]["w-0"]
    assert service["environment"]["DAL_TASK"] == "echo $${HOME:?x} $$$$ $$"
    assert service["environment"]["DAL_AGENT_ID"] == "a$$1"
    assert service["labels"]["dalfleet.dev/agent-id"] == "a$$1"


@pytest.mark.parametrize("value", ["0o17", "1e3", "0x1F", "y", "n", "NO", "on", "Null", "~", ".5"])
def test_strings_other_yaml_readers_would_retype_are_quoted(value: str) -> None:
    fleet = Fleet(name=value, member_ids=[value], last_deployed_task=value)
    for fmt in ("k8s", "compose"):
        text = export_yaml([fleet], fmt)
        for node in yaml.compose_all(text):
            for scalar in _scalars(node):
                if scalar.value == value:
                    assert scalar.style in ("'", '"'), (fmt, value, text)


def _scalars(node: yaml.Node) -> Iterator[yaml.ScalarNode]:
    if isinstance(node, yaml.ScalarNode):
        yield node
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _scalars(item)
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield from _scalars(key)
            yield from _scalars(value)


def test_output_has_no_tags_anchors_or_aliases() -> None:
    fleets = [Fleet(name=t[:60], member_ids=[t], last_deployed_task=t) for t in HOSTILE]
    for fmt in ("k8s", "compose"):
        for workload in ("job", "statefulset"):
            for event in yaml.parse(export_yaml(fleets, fmt, workload=workload)):
                assert not isinstance(event, yaml.AliasEvent)
                assert getattr(event, "anchor", None) is None
                if isinstance(event, yaml.ScalarEvent):
                    assert event.implicit != (False, False), event
                elif isinstance(event, yaml.CollectionStartEvent):
                    assert event.implicit, event


# -- options ------------------------------------------------------------------------------


def test_image_namespace_and_labels_options() -> None:
    fleets = [Fleet(name="w", member_ids=["a", "b"])]
    for workload in ("job", "statefulset"):
        docs = export_documents(
            fleets,
            "k8s",
            image="registry.example.com:5000/team/agent:1.2",
            namespace="agents",
            labels={"team": "blue", "example.com/tier": "", "app.kubernetes.io/part-of": "x"},
            workload=workload,
        )
        k8s_validate(docs)
        for doc in docs:
            assert doc["metadata"]["namespace"] == "agents"
            assert doc["metadata"]["labels"]["team"] == "blue"
            assert doc["metadata"]["labels"]["example.com/tier"] == ""
            if "template" in doc.get("spec", {}):
                pod = doc["spec"]["template"]
                assert pod["metadata"]["labels"]["team"] == "blue"
                assert pod["spec"]["containers"][0]["image"] == (
                    "registry.example.com:5000/team/agent:1.2"
                )
    [compose] = export_documents(
        fleets, "compose", image="agent@sha256:" + "a" * 64, labels={"t": "v"}
    )
    assert compose["services"]["w-0"]["image"] == "agent@sha256:" + "a" * 64
    assert compose["services"]["w-0"]["labels"]["t"] == "v"


@pytest.mark.parametrize(
    "image", ["", " ", "dal agent", "dal-agent:latest\n", "Dal-Agent", "a:b:c", "x:${TAG}", "-x"]
)
def test_invalid_image_is_rejected(image: str) -> None:
    with pytest.raises(InvalidArgumentError, match="image"):
        export_documents([Fleet(name="w", member_ids=["a"])], "k8s", image=image)


@pytest.mark.parametrize("namespace", ["", "Agents", "a_b", "-a", "a-", "a.b", "a" * 64, "a\n"])
def test_invalid_namespace_is_rejected(namespace: str) -> None:
    with pytest.raises(InvalidArgumentError, match="namespace"):
        export_documents([Fleet(name="w", member_ids=["a"])], "k8s", namespace=namespace)


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        ({"": "v"}, "label key ''"),
        ({"bad key": "v"}, "label key 'bad key'"),
        ({"a/b/c": "v"}, "label key"),
        ({"Example.com/x": "v"}, "label key"),
        ({"x" * 64: "v"}, "label key"),
        ({"k": "bad value"}, "value 'bad value' for label 'k'"),
        ({"k": "v" * 64}, "for label 'k'"),
        ({"k": "-v"}, "for label 'k'"),
        ({"k": "v\n"}, "for label 'k'"),
        ({"app.kubernetes.io/name": "other"}, "set by dalfleet"),
        ({"dalfleet.dev/fleet": "x"}, "set by dalfleet"),
    ],
)
def test_invalid_labels_are_rejected(labels: dict[str, str], match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=re.escape(match)):
        export_documents([Fleet(name="w", member_ids=["a"])], "k8s", labels=labels)
    with pytest.raises(InvalidArgumentError):
        export_documents([Fleet(name="w", member_ids=["a"])], "compose", labels=labels)


@pytest.mark.parametrize("workload", ["deployment", "", "jobs", None])
def test_unknown_workload_is_rejected(workload: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="expected job or statefulset"):
        export_documents([Fleet(name="w", member_ids=["a"])], "k8s", workload=workload)


def test_errors_are_fleet_errors_and_value_errors() -> None:
    with pytest.raises(FleetError):
        parse_format("nope")
    with pytest.raises(ValueError):
        export_documents([Fleet(name="w")], "k8s", namespace="NOPE")


# -- StatefulSet --------------------------------------------------------------------------


def test_statefulset_maps_pods_to_members_by_ordinal() -> None:
    fleet = Fleet(
        name="My_Fleet",
        member_ids=["agent_a", "agent_b", "agent_c"],
        mold_source="worker",
        last_deployed_task="serve",
    )
    docs = export_documents(
        [fleet], "k8s", workload="statefulset", memory_limits={"My_Fleet": "512KB"}
    )
    k8s_validate(docs)
    check_k8s_names(docs)
    config_map, service, sts = docs
    assert [d["kind"] for d in docs] == ["ConfigMap", "Service", "StatefulSet"]
    assert config_map["data"] == {"0": "agent_a", "1": "agent_b", "2": "agent_c"}
    assert service["spec"]["clusterIP"] == "None"
    spec = sts["spec"]
    assert spec["replicas"] == 3
    assert spec["serviceName"] == service["metadata"]["name"] == sts["metadata"]["name"]
    selector = spec["selector"]["matchLabels"]
    assert service["spec"]["selector"] == selector
    assert selector.items() <= spec["template"]["metadata"]["labels"].items()
    pod = spec["template"]["spec"]
    [container] = pod["containers"]
    assert container["name"] == "agent"
    assert container["resources"] == {"limits": {"memory": "512Ki"}}
    env = env_of(container)
    assert env["DAL_FLEET"] == "My_Fleet"
    assert env["DAL_MOLD"] == "worker"
    assert env["DAL_TASK"] == "serve"
    assert env["DAL_MEMBER_INDEX"] == {
        "fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}
    }
    [volume] = pod["volumes"]
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    assert container["volumeMounts"] == [
        {"name": volume["name"], "mountPath": MEMBERS_DIR, "readOnly": True}
    ]
    # Pod N (the StatefulSet controller labels it with its ordinal) reads member N's ID.
    for ordinal, agent_id in enumerate(fleet.member_ids):
        path = k8s_expand(env["DAL_AGENT_ID_FILE"], {"DAL_MEMBER_INDEX": str(ordinal)})
        assert path == f"{MEMBERS_DIR}/{ordinal}"
        assert config_map["data"][path.rsplit("/", 1)[1]] == agent_id
    # The restart policy is the StatefulSet default (Always): agents are services here.
    assert "restartPolicy" not in pod


def test_statefulset_for_a_fleet_without_members_has_zero_replicas() -> None:
    docs = export_documents([Fleet(name="idle")], "k8s", workload="statefulset")
    k8s_validate(docs)
    config_map, _, sts = docs
    assert config_map["data"] == {}
    assert sts["spec"]["replicas"] == 0


def test_statefulset_names_start_with_a_letter() -> None:
    docs = export_documents([Fleet(name="0abc", member_ids=["a"])], "k8s", workload="statefulset")
    check_k8s_names(docs)
    assert docs[1]["metadata"]["name"].startswith("f-0abc-")


# -- Compose ------------------------------------------------------------------------------


@pytest.mark.slow  # runs the validators' command lines
def test_compose_has_one_service_per_member_and_no_version(tmp_path: Path) -> None:
    fleets = awkward_fleets(task='say "hi"\nkey: value # {x}')
    memory = {"My_Fleet": "256MB", "workers": "2GB"}
    text = export_yaml(fleets, "compose", memory_limits=memory, labels={"team": "a"})
    [doc] = yaml.safe_load_all(text)
    assert doc == export_documents(fleets, "compose", memory_limits=memory, labels={"team": "a"})[0]
    assert list(doc) == ["services"]
    services = doc["services"]
    assert len(services) == sum(len(f.member_ids) for f in fleets)
    for name, service in services.items():
        assert COMPOSE_SERVICE.fullmatch(name) and DNS_LABEL.fullmatch(name), name
        assert len(name) <= 63
        assert service["image"] == "dal-agent:latest"
        assert set(service["environment"]) <= {"DAL_AGENT_ID", "DAL_FLEET", "DAL_MOLD", "DAL_TASK"}
        assert service["labels"]["app.kubernetes.io/managed-by"] == "dalfleet"
        assert service["labels"]["team"] == "a"
    assert services["workers-0"]["deploy"] == {"resources": {"limits": {"memory": "2G"}}}
    assert "deploy" not in services["my-fleet-0"]
    compose_validate_api(doc)
    path = tmp_path / "compose.yaml"
    path.write_text(text, encoding="utf-8")
    check_jsonschema_cli(path)


def test_compose_service_names_match_the_job_names() -> None:
    fleets = awkward_fleets()
    job_names = [d["metadata"]["name"] for d in export_documents(fleets, "k8s")]
    assert list(export_documents(fleets, "compose")[0]["services"]) == job_names


def test_compose_ignores_workload_and_namespace() -> None:
    fleets = [Fleet(name="w", member_ids=["a"])]
    plain = export_documents(fleets, "compose")
    assert export_documents(fleets, "compose", workload="statefulset", namespace="ns") == plain


def test_compose_with_only_empty_fleets_has_no_services(tmp_path: Path) -> None:
    [doc] = export_documents([Fleet(name="empty")], "compose")
    assert doc == {"services": {}}
    compose_validate_api(doc)


def test_k8s_yaml_is_a_multi_document_stream() -> None:
    fleets = [Fleet(name="w", member_ids=["a", "b", "c"])]
    text = export_yaml(fleets, "k8s")
    assert text.count("\n---\n") == 2
    assert list(yaml.safe_load_all(text)) == export_documents(fleets, "k8s")
    text = export_yaml(fleets, "compose")
    assert "---" not in text
    assert [yaml.safe_load(text)] == export_documents(fleets, "compose")
