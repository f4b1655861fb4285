"""Export fleets as Kubernetes manifests or a Docker Compose file (SPEC §7).

Every document is built as Python data and written with a YAML library, never by
string formatting, so no fleet name, agent ID, mold source or task can change the
structure of the output: they only ever appear as scalar values. See
``docs/export.md`` for what each format contains and how names are derived.

* ``k8s``, workload ``job`` (the default, as the reference does): one ``batch/v1``
  ``Job`` per member, container ``agent``, ``restartPolicy: Never``.
* ``k8s``, workload ``statefulset``: per fleet a ``ConfigMap`` of member IDs by
  ordinal, a headless ``Service`` and an ``apps/v1`` ``StatefulSet`` with one
  replica per member; pod *N* reads member *N*'s agent ID from the file
  ``$DAL_AGENT_ID_FILE``.
* ``k8s``, workload ``worker``: per fleet an ``apps/v1`` ``Deployment`` running
  ``dalfleet worker FLEET --handler MODULE:FUNCTION`` against the shared database,
  whose URL comes from a Secret (``DALFLEET_URL`` via ``secretKeyRef``; see
  ``docs/many-hosts.md``).
* ``docker-compose`` (alias ``compose``): one compose document, one service per
  member, no top-level ``version``.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import yaml

from dalfleet.defaults import DEFAULT_IMAGE, DEFAULT_WORKLOAD
from dalfleet.errors import FleetError, InvalidArgumentError, MoldError, quote
from dalfleet.models import ExportFormat, Fleet
from dalfleet.mold.model import memory_limit_bytes

__all__ = [
    "DEFAULT_IMAGE",
    "DEFAULT_URL_SECRET",
    "MANAGED_LABELS",
    "MEMBERS_DIR",
    "WORKLOADS",
    "compose_memory",
    "export_documents",
    "export_yaml",
    "memory_limit_quantity",
    "parse_format",
]

#: Values accepted for ``workload``.
WORKLOADS: tuple[str, ...] = ("job", "statefulset", "worker")

#: In worker mode, the Secret (and its key) holding the database URL.
DEFAULT_URL_SECRET = "dalfleet-database"
URL_SECRET_KEY = "url"
_HANDLER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")

#: In StatefulSet mode, the directory holding every member's agent ID, one file per
#: ordinal (``0``, ``1`` …); pod N's own ID is in ``MEMBERS_DIR/N``.
MEMBERS_DIR = "/etc/dalfleet/members"

_NAME_LABEL = "app.kubernetes.io/name"
_INSTANCE_LABEL = "app.kubernetes.io/instance"
_COMPONENT_LABEL = "app.kubernetes.io/component"
_MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
_INDEX_LABEL = "dalfleet.dev/member-index"
_FLEET_ANNOTATION = "dalfleet.dev/fleet"
_AGENT_ANNOTATION = "dalfleet.dev/agent-id"
_POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"

#: Label keys dalfleet sets itself; ``labels=`` may not override them.
MANAGED_LABELS: frozenset[str] = frozenset(
    {_NAME_LABEL, _INSTANCE_LABEL, _COMPONENT_LABEL, _MANAGED_BY_LABEL}
)
_RESERVED_LABEL_PREFIX = "dalfleet.dev/"

_K8S_NAME_MAX = 63
# A StatefulSet's pods carry the label controller-revision-hash = NAME-<10 chars>,
# and a label value is at most 63 characters, so the StatefulSet name must be <= 52.
_STATEFULSET_NAME_MAX = 52
# Job names get room for a 4-digit member index whatever the fleet's size, so a
# member's Job keeps its name when the fleet grows (up to 10000 members).
_INDEX_DIGITS_RESERVED = 4
_HASH_LENGTHS = (8, 16, 32)

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", re.ASCII)
_DNS_SUBDOMAIN = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", re.ASCII
)
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?", re.ASCII)

# The image reference grammar of distribution/reference (what docker and the kubelet
# accept): [host[:port]/]path[:tag][@digest], path components lowercase.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_IMAGE_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_IMAGE_REFERENCE = re.compile(
    rf"(?P<name>{_IMAGE_NAME})(?::[\w][\w.-]{{0,127}})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?",
    re.ASCII,
)
_IMAGE_NAME_MAX = 255

_FORMATS: dict[str, ExportFormat] = {
    "k8s": ExportFormat.K8S,
    "kubernetes": ExportFormat.K8S,
    "docker-compose": ExportFormat.DOCKER_COMPOSE,
    "compose": ExportFormat.DOCKER_COMPOSE,
}

_BINARY_UNITS = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
_COMPOSE_UNITS = ("", "K", "M", "G", "T", "P")


# -- argument parsing ------------------------------------------------------------------


def parse_format(value: ExportFormat | str) -> ExportFormat:
    """Return the :class:`ExportFormat` named by ``value``.

    Accepts the enum itself or, case-insensitively and ignoring surrounding
    whitespace, ``"k8s"`` / ``"kubernetes"`` and ``"docker-compose"`` / ``"compose"``.

    Raises:
        InvalidArgumentError: ``unknown export format 'X': expected k8s,
            docker-compose or compose``.
    """
    if isinstance(value, ExportFormat):
        return value
    found = _FORMATS.get(value.strip().lower()) if isinstance(value, str) else None
    if found is None:
        raise InvalidArgumentError(
            f"unknown export format {quote(value)}: expected k8s, docker-compose or compose"
        )
    return found


def _parse_workload(value: object) -> str:
    workload = value.strip().lower() if isinstance(value, str) else None
    if workload not in WORKLOADS:
        raise InvalidArgumentError(
            f"unknown workload {quote(value)}: expected {' or '.join(WORKLOADS)}"
        )
    return workload


def _memory_bytes(value: str) -> int:
    try:
        return memory_limit_bytes(value)
    except MoldError as exc:
        raise InvalidArgumentError(exc.message) from None


def _in_units(value: str, units: Sequence[str]) -> str:
    size = _memory_bytes(value)
    power = 0
    while power + 1 < len(units) and size % 1024 == 0:
        size //= 1024
        power += 1
    return f"{size}{units[power]}"


def memory_limit_quantity(value: str) -> str:
    """Convert a mold ``memory_limit`` to a Kubernetes quantity.

    Units are binary, as in molds: ``"256MB"`` → ``"256Mi"``, ``"2GB"`` → ``"2Gi"``,
    ``"512KB"`` → ``"512Ki"``. The value is written in the largest unit that holds
    it exactly (``"1024MB"`` → ``"1Gi"``); a plain number of bytes stays a number.

    Raises:
        InvalidArgumentError: the value is not a whole number with an optional unit
            KB, MB or GB (see :func:`dalfleet.mold.memory_limit_bytes`), or is zero.
    """
    return _in_units(value, _BINARY_UNITS)


def compose_memory(value: str) -> str:
    """Convert a mold ``memory_limit`` to a Compose memory size (``"256MB"`` → ``"256M"``).

    Compose sizes are binary too (``1M`` = 1024 KiB), so the amount is the same as
    :func:`memory_limit_quantity` gives.

    Raises:
        InvalidArgumentError: as :func:`memory_limit_quantity`.
    """
    return _in_units(value, _COMPOSE_UNITS)


def _check_image(image: object) -> str:
    if not isinstance(image, str) or not image:
        raise InvalidArgumentError(f"image must be a non-empty string, not {quote(image)}")
    match = _IMAGE_REFERENCE.fullmatch(image)
    if match is None or len(match.group("name")) > _IMAGE_NAME_MAX:
        raise InvalidArgumentError(
            f"invalid image {quote(image)}: expected an image reference such as "
            f"'{DEFAULT_IMAGE}' or 'registry.example.com:5000/team/agent:1.2' "
            "(lowercase repository path, no whitespace)"
        )
    return image


def _check_namespace(namespace: object) -> str | None:
    if namespace is None:
        return None
    if not (
        isinstance(namespace, str)
        and len(namespace) <= _K8S_NAME_MAX
        and _DNS_LABEL.fullmatch(namespace)
    ):
        raise InvalidArgumentError(
            f"invalid namespace {quote(namespace)}: expected a DNS-1123 label (at most 63 "
            "lowercase letters, digits or '-', starting and ending with a letter or digit)"
        )
    return namespace


def _label_key_ok(key: str) -> bool:
    prefix, slash, name = key.rpartition("/")
    if slash and not (len(prefix) <= 253 and _DNS_SUBDOMAIN.fullmatch(prefix)):
        return False
    return len(name) <= _K8S_NAME_MAX and _LABEL_NAME.fullmatch(name) is not None


def _label_value_ok(value: str) -> bool:
    return value == "" or (len(value) <= _K8S_NAME_MAX and _LABEL_NAME.fullmatch(value) is not None)


def _check_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise InvalidArgumentError(f"labels must be a mapping, not {type(labels).__name__}")
    checked: dict[str, str] = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not _label_key_ok(key):
            raise InvalidArgumentError(
                f"invalid label key {quote(key)}: expected [PREFIX/]NAME, NAME at most 63 "
                "letters, digits, '-', '_' or '.' starting and ending with a letter or digit, "
                "PREFIX a DNS subdomain"
            )
        if key in MANAGED_LABELS or key.startswith(_RESERVED_LABEL_PREFIX):
            raise InvalidArgumentError(
                f"label {quote(key)} is set by dalfleet and cannot be given in labels"
            )
        if not isinstance(value, str) or not _label_value_ok(value):
            raise InvalidArgumentError(
                f"invalid value {quote(value)} for label {quote(key)}: expected at most 63 "
                "letters, digits, '-', '_' or '.' starting and ending with a letter or digit "
                "(or empty)"
            )
        checked[key] = value
    return checked


def _check_fleets(fleets: Sequence[Fleet]) -> list[Fleet]:
    seen: set[str] = set()
    for fleet in fleets:
        if not isinstance(fleet, Fleet):
            raise InvalidArgumentError(f"expected Fleet objects, not {type(fleet).__name__}")
        if fleet.name in seen:
            raise InvalidArgumentError(f"fleet {quote(fleet.name)} is given more than once")
        seen.add(fleet.name)
    return list(fleets)


def _check_memory(
    fleets: Sequence[Fleet], limits: Mapping[str, str | None] | None
) -> dict[str, str]:
    """Memory limit per fleet name, as bytes-validated mold strings (absent: no limit)."""
    out: dict[str, str] = {}
    for fleet in fleets:
        value = (limits or {}).get(fleet.name)
        if value is None:
            continue
        try:
            _memory_bytes(value)
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"fleet {quote(fleet.name)}: {exc.message}") from None
        out[fleet.name] = value
    return out


# -- names -----------------------------------------------------------------------------


def _ascii_fold(text: str) -> str:
    """``"Café"`` → ``"Cafe"``: keep what can be kept of non-ASCII names readable."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def _dns_readable(name: str) -> str:
    """A DNS-1123 label spelling of ``name``, not yet length-limited."""
    text = re.sub(r"[^a-z0-9-]+", "-", _ascii_fold(name).lower()).strip("-")
    return text or "fleet"


def _dns1035_readable(name: str) -> str:
    """As :func:`_dns_readable`, starting with a letter (Service names need one)."""
    text = _dns_readable(name)
    return text if text[0].isalpha() else f"f-{text}"


def _label_readable(name: str) -> str:
    """A label-value spelling of ``name``, not yet length-limited."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", _ascii_fold(name)).strip("-._")
    return text or "fleet"


def _unique_names(
    names: Sequence[str], readable: Callable[[str], str], max_len: Mapping[str, int]
) -> dict[str, str]:
    """Map each name to a distinct identifier built by ``readable``, at most ``max_len``.

    A name that ``readable`` keeps as it is, and that fits, is used unchanged; any
    other gets ``-`` and the first 8 hex digits of the SHA-256 of the original name
    appended to its (shortened) readable form, so ``My_Fleet`` and ``my-fleet`` stay
    apart. The result for a name depends on that name alone unless two results
    clash (only possible with crafted names or a hash collision); then the clashing
    ones get longer hashes. ``names`` must be distinct.
    """
    level = {n: -1 if readable(n) == n and len(n) <= max_len[n] else 0 for n in names}
    while True:
        result = {n: _hashed(n, readable(n), max_len[n], level[n]) for n in names}
        owners: dict[str, list[str]] = {}
        for n, value in result.items():
            owners.setdefault(value, []).append(n)
        clashes = [group for group in owners.values() if len(group) > 1]
        if not clashes:
            return result
        for group in clashes:
            for n in group:
                level[n] += 1
                if level[n] >= len(_HASH_LENGTHS):  # pragma: no cover - needs a SHA-256 clash
                    raise FleetError(f"cannot derive a unique name for fleet {quote(n)}")


def _hashed(name: str, readable: str, max_len: int, level: int) -> str:
    if level < 0:
        return readable
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
    digest = digest[: _HASH_LENGTHS[level]]
    # readable starts with a letter or digit, so at least one character survives.
    head = readable[: max_len - len(digest) - 1].rstrip("-._")
    return f"{head}-{digest}"


def _job_base_limit(fleet: Fleet) -> int:
    digits = max(_INDEX_DIGITS_RESERVED, len(str(max(len(fleet.member_ids) - 1, 0))))
    return _K8S_NAME_MAX - 1 - digits


def _job_bases(fleets: Sequence[Fleet]) -> dict[str, str]:
    """Per fleet name, the prefix of its members' Job / compose service names.

    Member ``i`` is ``BASE-i``. The suffix is all digits, so distinct bases give
    distinct member names.
    """
    limits = {f.name: _job_base_limit(f) for f in fleets}
    return _unique_names([f.name for f in fleets], _dns_readable, limits)


def _instances(fleets: Sequence[Fleet]) -> dict[str, str]:
    """Per fleet name, its ``app.kubernetes.io/instance`` label value."""
    names = [f.name for f in fleets]
    return _unique_names(names, _label_readable, dict.fromkeys(names, _K8S_NAME_MAX))


# -- values ----------------------------------------------------------------------------


def _k8s_env_value(value: str) -> str:
    """Escape ``value`` so Kubernetes' ``$(VAR)`` expansion leaves it as it is.

    Kubernetes turns ``$$`` into ``$`` and ``$(NAME)`` into NAME's value in env
    values; with every ``$`` doubled the container sees the text unchanged. Values
    without ``$$`` or ``$(`` pass through expansion untouched and are kept as they are.
    """
    return value.replace("$", "$$") if ("$$" in value or "$(" in value) else value


def _compose_value(value: str) -> str:
    """Escape ``value`` from Compose interpolation (``$VAR``, ``${VAR}``; ``$$`` is ``$``)."""
    return value.replace("$", "$$")


def _fleet_env(fleet: Fleet) -> list[tuple[str, str]]:
    env = [("DAL_FLEET", fleet.name)]
    if fleet.mold_source is not None:
        env.append(("DAL_MOLD", fleet.mold_source))
    if fleet.last_deployed_task is not None:
        env.append(("DAL_TASK", fleet.last_deployed_task))
    return env


# -- Kubernetes ------------------------------------------------------------------------


def _metadata(
    name: str, namespace: str | None, labels: dict[str, str], annotations: dict[str, str]
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = labels
    meta["annotations"] = annotations
    return meta


def _container(image: str, env: list[dict[str, Any]], memory: str | None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "agent", "image": image, "env": env}
    if memory is not None:
        container["resources"] = {"limits": {"memory": memory_limit_quantity(memory)}}
    return container


def _k8s_jobs(
    fleet: Fleet,
    base: str,
    fleet_labels: dict[str, str],
    namespace: str | None,
    image: str,
    memory: str | None,
) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    shared_env = [{"name": k, "value": _k8s_env_value(v)} for k, v in _fleet_env(fleet)]
    for index, agent_id in enumerate(fleet.member_ids):
        labels = {**fleet_labels, _INDEX_LABEL: str(index)}
        annotations = {_FLEET_ANNOTATION: fleet.name, _AGENT_ANNOTATION: agent_id}
        env = [{"name": "DAL_AGENT_ID", "value": _k8s_env_value(agent_id)}, *shared_env]
        docs.append(
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": _metadata(f"{base}-{index}", namespace, labels, annotations),
                "spec": {
                    "template": {
                        "metadata": {"labels": dict(labels), "annotations": dict(annotations)},
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [_container(image, env, memory)],
                        },
                    }
                },
            }
        )
    return docs


def _k8s_statefulset(
    fleet: Fleet,
    name: str,
    fleet_labels: dict[str, str],
    namespace: str | None,
    image: str,
    memory: str | None,
) -> list[dict[str, Any]]:
    annotations = {_FLEET_ANNOTATION: fleet.name}
    selector = {k: fleet_labels[k] for k in (_NAME_LABEL, _INSTANCE_LABEL)}
    members = f"{name}-members"
    env: list[dict[str, Any]] = [
        {"name": k, "value": _k8s_env_value(v)} for k, v in _fleet_env(fleet)
    ]
    env += [
        {
            "name": "DAL_MEMBER_INDEX",
            "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{_POD_INDEX_LABEL}']"}},
        },
        {"name": "DAL_MEMBERS_DIR", "value": MEMBERS_DIR},
        # Kubernetes expands $(DAL_MEMBER_INDEX) here: pod N gets MEMBERS_DIR/N.
        {"name": "DAL_AGENT_ID_FILE", "value": f"{MEMBERS_DIR}/$(DAL_MEMBER_INDEX)"},
    ]
    container = _container(image, env, memory)
    container["volumeMounts"] = [{"name": "members", "mountPath": MEMBERS_DIR, "readOnly": True}]
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(members, namespace, dict(fleet_labels), dict(annotations)),
        "data": {str(i): agent_id for i, agent_id in enumerate(fleet.member_ids)},
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(name, namespace, dict(fleet_labels), dict(annotations)),
        "spec": {"clusterIP": "None", "selector": dict(selector)},
    }
    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _metadata(name, namespace, dict(fleet_labels), dict(annotations)),
        "spec": {
            "serviceName": name,
            "replicas": len(fleet.member_ids),
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": dict(selector)},
            "template": {
                "metadata": {"labels": dict(fleet_labels), "annotations": dict(annotations)},
                "spec": {
                    "containers": [container],
                    "volumes": [{"name": "members", "configMap": {"name": members}}],
                },
            },
        },
    }
    return [config_map, service, statefulset]


def _check_worker(handler: object, url_secret: object, replicas: object) -> tuple[str, str, int]:
    """The worker workload's options, checked (see :func:`export_documents`)."""
    if handler is None:
        raise InvalidArgumentError(
            "workload 'worker' needs a handler: the MODULE:FUNCTION the workers run"
        )
    if not isinstance(handler, str) or not _HANDLER.fullmatch(handler):
        raise InvalidArgumentError(
            f"invalid handler {quote(handler)}: expected MODULE:FUNCTION (e.g. myapp.tasks:handle)"
        )
    if (
        not isinstance(url_secret, str)
        or len(url_secret) > 253
        or not _DNS_SUBDOMAIN.fullmatch(url_secret)
    ):
        raise InvalidArgumentError(
            f"invalid secret name {quote(url_secret)}: use a DNS-1123 subdomain "
            "(lowercase letters, digits, '-' and '.')"
        )
    if isinstance(replicas, bool) or not isinstance(replicas, int) or not 0 <= replicas <= 10000:
        raise InvalidArgumentError(
            f"replicas must be a whole number 0-10000, not {quote(replicas)}"
        )
    return handler, url_secret, replicas


def _k8s_worker(
    fleet: Fleet,
    name: str,
    fleet_labels: dict[str, str],
    namespace: str | None,
    image: str,
    memory: str | None,
    worker: tuple[str, str, int],
) -> list[dict[str, Any]]:
    handler, secret, replicas = worker
    labels = {**fleet_labels, _COMPONENT_LABEL: "worker"}
    annotations = {_FLEET_ANNOTATION: fleet.name}
    selector = {k: labels[k] for k in (_NAME_LABEL, _INSTANCE_LABEL, _COMPONENT_LABEL)}
    env: list[dict[str, Any]] = [
        {
            "name": "DALFLEET_URL",
            "valueFrom": {"secretKeyRef": {"name": secret, "key": URL_SECRET_KEY}},
        },
        *({"name": k, "value": _k8s_env_value(v)} for k, v in _fleet_env(fleet)),
    ]
    container = _container(image, env, memory)
    container["name"] = "worker"
    # No shell: the fleet name is one argument whatever it holds ($ escaped for $(VAR)).
    container["command"] = ["dalfleet"]
    container["args"] = ["worker", _k8s_env_value(fleet.name), "--handler", handler]
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(name, namespace, labels, annotations),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": dict(labels), "annotations": dict(annotations)},
                "spec": {
                    # Workers stop cleanly on SIGTERM (claimed tasks are released).
                    "terminationGracePeriodSeconds": 60,
                    "containers": [container],
                },
            },
        },
    }
    return [deployment]


def _k8s_documents(
    fleets: Sequence[Fleet],
    workload: str,
    memory: Mapping[str, str],
    image: str,
    namespace: str | None,
    labels: dict[str, str],
    worker: tuple[str, str, int] | None = None,
) -> list[dict[str, Any]]:
    instances = _instances(fleets)
    if workload == "worker":
        names = [f.name for f in fleets]
        limits = dict.fromkeys(names, _K8S_NAME_MAX - len("-worker"))
        bases = {n: f"{b}-worker" for n, b in _unique_names(names, _dns_readable, limits).items()}
    elif workload == "statefulset":
        names = [f.name for f in fleets]
        bases = _unique_names(names, _dns1035_readable, dict.fromkeys(names, _STATEFULSET_NAME_MAX))
    else:
        bases = _job_bases(fleets)
    docs: list[dict[str, Any]] = []
    for fleet in fleets:
        fleet_labels = {
            **labels,
            _NAME_LABEL: "dal-agent",
            _INSTANCE_LABEL: instances[fleet.name],
            _COMPONENT_LABEL: "agent",
            _MANAGED_BY_LABEL: "dalfleet",
        }
        if workload == "worker":
            assert worker is not None  # checked by export_documents
            docs += _k8s_worker(
                fleet,
                bases[fleet.name],
                fleet_labels,
                namespace,
                image,
                memory.get(fleet.name),
                worker,
            )
            continue
        build = _k8s_statefulset if workload == "statefulset" else _k8s_jobs
        docs += build(
            fleet, bases[fleet.name], fleet_labels, namespace, image, memory.get(fleet.name)
        )
    return docs


# -- Docker Compose --------------------------------------------------------------------


def _compose_document(
    fleets: Sequence[Fleet], memory: Mapping[str, str], image: str, labels: dict[str, str]
) -> dict[str, Any]:
    bases = _job_bases(fleets)
    instances = _instances(fleets)
    services: dict[str, Any] = {}
    for fleet in fleets:
        limit = memory.get(fleet.name)
        for index, agent_id in enumerate(fleet.member_ids):
            environment = {"DAL_AGENT_ID": agent_id, **dict(_fleet_env(fleet))}
            service_labels = {
                **labels,
                _NAME_LABEL: "dal-agent",
                _INSTANCE_LABEL: instances[fleet.name],
                _COMPONENT_LABEL: "agent",
                _MANAGED_BY_LABEL: "dalfleet",
                _INDEX_LABEL: str(index),
                # Docker labels hold any string, so the exact names go here.
                _FLEET_ANNOTATION: fleet.name,
                _AGENT_ANNOTATION: agent_id,
            }
            service: dict[str, Any] = {
                "image": image,
                "environment": {k: _compose_value(v) for k, v in environment.items()},
                "labels": {k: _compose_value(v) for k, v in service_labels.items()},
            }
            if limit is not None:
                service["deploy"] = {"resources": {"limits": {"memory": compose_memory(limit)}}}
            services[f"{bases[fleet.name]}-{index}"] = service
    return {"services": services}


# -- entry points ----------------------------------------------------------------------


def export_documents(
    fleets: Sequence[Fleet],
    format: ExportFormat | str,
    *,
    memory_limits: Mapping[str, str | None] | None = None,
    image: str = DEFAULT_IMAGE,
    namespace: str | None = None,
    labels: Mapping[str, str] | None = None,
    workload: str = DEFAULT_WORKLOAD,
    handler: str | None = None,
    url_secret: str = DEFAULT_URL_SECRET,
    replicas: int = 1,
) -> list[dict[str, Any]]:
    """Build the export documents for ``fleets`` as plain data.

    Args:
        fleets: the fleets to export, in output order; names must be distinct.
        format: ``k8s`` (``kubernetes``) or ``docker-compose`` (``compose``).
        memory_limits: fleet name → the mold's ``memory_limit`` (e.g. ``"256MB"``) or
            None; fleets not in it get no memory limit.
        image: container image for every member.
        namespace: Kubernetes namespace for every object (ignored by compose).
        labels: extra labels for every object (compose: every service).
        workload: ``"job"`` (one Job per member) or ``"statefulset"`` (per fleet a
            ConfigMap, a headless Service and a StatefulSet; a fleet without members
            gets ``replicas: 0``) or ``"worker"`` (per fleet a Deployment of
            ``replicas`` pods running ``dalfleet worker FLEET --handler HANDLER``, with
            ``DALFLEET_URL`` from key ``url`` of the Secret ``url_secret``). Compose
            ignores it.
        handler: ``MODULE:FUNCTION`` the workers run (required for ``worker``).
        url_secret: the Secret holding the database URL (``worker`` only).
        replicas: worker pods per fleet (``worker`` only).

    Returns:
        k8s: one document per object (a fleet without members has no Job); compose: a
        single document ``{"services": …}``. No fleets: an empty list.

    Raises:
        InvalidArgumentError: unknown format or workload; an image that is not an
            image reference; a namespace that is not a DNS-1123 label; a label key or
            value Kubernetes would reject, or one dalfleet sets itself; an invalid
            memory limit; a fleet given twice; for ``worker``: no or a malformed
            handler, a bad secret name or replica count.
    """
    fmt = parse_format(format)
    mode = _parse_workload(workload)
    worker = (
        _check_worker(handler, url_secret, replicas)
        if mode == "worker" and fmt is ExportFormat.K8S
        else None
    )
    checked_image = _check_image(image)
    checked_namespace = _check_namespace(namespace)
    checked_labels = _check_labels(labels)
    targets = _check_fleets(fleets)
    memory = _check_memory(targets, memory_limits)
    if not targets:
        return []
    if fmt is ExportFormat.K8S:
        return _k8s_documents(
            targets, mode, memory, checked_image, checked_namespace, checked_labels, worker
        )
    return [_compose_document(targets, memory, checked_image, checked_labels)]


class _Dumper(yaml.SafeDumper):
    """A SafeDumper that also quotes strings other YAML readers take for non-strings.

    PyYAML quotes what YAML 1.1 would read as a number, bool or null. Compose reads
    YAML 1.2 (``1e3``, ``0o17`` are numbers there) and kubectl's reader takes ``y``
    and ``n`` for booleans, so strings that start like a number or are one of those
    words are quoted as well. Nothing is ever written as an anchor and alias.
    """

    def ignore_aliases(self, data: Any) -> bool:
        return True


_YAML_WORDS = frozenset({"y", "n", "yes", "no", "true", "false", "on", "off", "null", "~"})
_NUMBER_START = frozenset("0123456789+-.")


# Line breaks (YAML 1.1 counts NEL, LS and PS; YAML 1.2 does not) and the BOM are
# written as escapes in a double-quoted scalar: folded or raw, readers disagree on them.
_ESCAPE_ONLY = re.compile("[\n\r\x85\u2028\u2029\ufeff]")


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if _ESCAPE_ONLY.search(data):
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"')
    if data[:1] in _NUMBER_START or data.lower() in _YAML_WORDS:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="'")
    return dumper.represent_str(data)


_Dumper.add_representer(str, _represent_str)


def export_yaml(
    fleets: Sequence[Fleet],
    format: ExportFormat | str,
    *,
    memory_limits: Mapping[str, str | None] | None = None,
    image: str = DEFAULT_IMAGE,
    namespace: str | None = None,
    labels: Mapping[str, str] | None = None,
    workload: str = DEFAULT_WORKLOAD,
    handler: str | None = None,
    url_secret: str = DEFAULT_URL_SECRET,
    replicas: int = 1,
) -> str:
    """The documents of :func:`export_documents` as YAML text.

    k8s: a multi-document stream (``---`` between documents); compose: one
    document. Written by PyYAML's safe dumper (no tags, no anchors), keys in
    a fixed order, unicode kept as is. No fleets (or, for k8s, no documents): ``""``.

    Raises:
        InvalidArgumentError: as :func:`export_documents`.
    """
    docs = export_documents(
        fleets,
        format,
        memory_limits=memory_limits,
        image=image,
        namespace=namespace,
        labels=labels,
        workload=workload,
        handler=handler,
        url_secret=url_secret,
        replicas=replicas,
    )
    if not docs:
        return ""
    return yaml.dump_all(
        docs,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        # One line per value: no folding that another YAML reader might undo differently.
        width=1 << 30,
    )
