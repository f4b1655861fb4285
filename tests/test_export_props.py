"""Property tests for export: no fleet name, member ID, mold or task changes a document.

Whatever the strings, the YAML parses back to the documents that were built, each
document has exactly the keys of the same export with plain values, names are
valid and unique, and the published schemas accept every document.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dalfleet.export import export_documents, export_yaml
from dalfleet.models import Fleet
from tests.test_export import (
    COMPOSE_SERVICE,
    DNS_LABEL,
    EveryVar,
    check_k8s_names,
    compose_unescape,
    compose_validate_api,
    env_of,
    k8s_expand,
    k8s_validate,
    shape,
)

PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

texts = st.text(max_size=60)
fleet_specs = st.lists(
    st.tuples(
        texts,  # name
        st.lists(st.text(min_size=1, max_size=20), unique=True, max_size=3),  # members
        st.none() | texts,  # mold source
        st.none() | st.text(max_size=300),  # task
    ),
    min_size=1,
    max_size=4,
    unique_by=lambda spec: spec[0],
)


def fleets_from(specs: list[tuple[str, list[str], str | None, str | None]]) -> list[Fleet]:
    return [
        Fleet(name=name, member_ids=members, mold_source=mold, last_deployed_task=task)
        for name, members, mold, task in specs
    ]


def plain_twins(fleets: list[Fleet]) -> list[Fleet]:
    """The same fleets with harmless names and values in the same places."""
    return [
        Fleet(
            name=f"fleet{i}",
            member_ids=[f"agent{i}x{j}" for j in range(len(f.member_ids))],
            mold_source=None if f.mold_source is None else "mold",
            last_deployed_task=None if f.last_deployed_task is None else "task",
        )
        for i, f in enumerate(fleets)
    ]


@pytest.mark.slow  # strict validation of every generated document
@PROPS
@given(fleet_specs, st.sampled_from(["job", "statefulset"]))
def test_k8s_documents_keep_their_shape_and_validate(
    specs: list[tuple[str, list[str], str | None, str | None]], workload: str
) -> None:
    fleets = fleets_from(specs)
    memory = {fleets[0].name: "256MB"}
    docs = export_documents(fleets, "k8s", workload=workload, memory_limits=memory)
    text = export_yaml(fleets, "k8s", workload=workload, memory_limits=memory)
    assert (list(yaml.safe_load_all(text)) if text else []) == docs
    twins = plain_twins(fleets)
    expected = export_documents(twins, "k8s", workload=workload, memory_limits={"fleet0": "1MB"})
    assert [shape(d) for d in docs] == [shape(d) for d in expected]
    if docs:
        check_k8s_names(docs)
        k8s_validate(docs)
    for doc in docs:
        if doc["kind"] not in ("Job", "StatefulSet"):
            continue
        meta = doc["metadata"]["annotations"]
        fleet = next(f for f in fleets if f.name == meta["dalfleet.dev/fleet"])
        env = env_of(doc["spec"]["template"]["spec"]["containers"][0])
        assert k8s_expand(env["DAL_FLEET"], EveryVar()) == fleet.name
        if fleet.last_deployed_task is not None:
            assert k8s_expand(env["DAL_TASK"], EveryVar()) == fleet.last_deployed_task
        if doc["kind"] == "Job":
            assert k8s_expand(env["DAL_AGENT_ID"], EveryVar()) == meta["dalfleet.dev/agent-id"]


@PROPS
@given(fleet_specs)
def test_compose_document_keeps_its_shape_and_validates(
    specs: list[tuple[str, list[str], str | None, str | None]],
) -> None:
    fleets = fleets_from(specs)
    [doc] = export_documents(fleets, "compose", memory_limits={fleets[0].name: "2GB"})
    assert (
        yaml.safe_load(export_yaml(fleets, "compose", memory_limits={fleets[0].name: "2GB"})) == doc
    )
    [twin] = export_documents(plain_twins(fleets), "compose", memory_limits={"fleet0": "1GB"})
    assert list(doc) == ["services"]
    assert [shape(s) for s in doc["services"].values()] == [
        shape(s) for s in twin["services"].values()
    ]
    compose_validate_api(doc)
    members = []
    for name, service in doc["services"].items():
        assert COMPOSE_SERVICE.fullmatch(name) and DNS_LABEL.fullmatch(name) and len(name) <= 63
        env = {k: compose_unescape(v) for k, v in service["environment"].items()}
        members.append((env["DAL_FLEET"], env["DAL_AGENT_ID"]))
        fleet = next(f for f in fleets if f.name == env["DAL_FLEET"])
        assert env.get("DAL_TASK") == fleet.last_deployed_task
        assert env.get("DAL_MOLD") == fleet.mold_source
    assert members == [(f.name, m) for f in fleets for m in f.member_ids]


# Names built from the characters that sanitizing folds together collide as often as possible.
near_names = st.lists(
    st.text(alphabet="aA_-. 0é", max_size=5), unique=True, min_size=1, max_size=25
)


@PROPS
@given(near_names, st.integers(min_value=1, max_value=3))
def test_names_stay_unique_when_fleet_names_nearly_collide(names: list[str], size: int) -> None:
    fleets = [Fleet(name=n, member_ids=[f"{n}/{j}" for j in range(size)]) for n in names]
    for workload in ("job", "statefulset"):
        check_k8s_names(export_documents(fleets, "k8s", workload=workload))
    [doc] = export_documents(fleets, "compose")
    assert len(doc["services"]) == len(names) * size


@PROPS
@given(texts)
def test_a_fleet_name_maps_to_the_same_names_alone_or_with_others(name: str) -> None:
    others = [Fleet(name=n, member_ids=["x"]) for n in ("my-fleet", "My_Fleet", "a", "0")]
    fleet = Fleet(name=name, member_ids=["x", "y"])
    alone = export_documents([fleet], "k8s")

    def own(docs: list[dict[str, Any]]) -> list[str]:
        return [
            d["metadata"]["name"]
            for d in docs
            if d["metadata"]["annotations"]["dalfleet.dev/fleet"] == name
        ]

    if name not in {f.name for f in others}:
        assert own(export_documents([*others, fleet], "k8s")) == own(alone)
