"""The house rules, checked on the source: which room may import what, how large a module or a
function may grow, and that the declared dependencies are exactly the ones the code imports."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("twin", "storage", "flows", "api", "simulators", "migrations")
FIRST_PARTY = {*PRODUCT, "tests"}

MODULE_LINES = 400
FUNCTION_LINES = 60
DECLARATIVE = {
    # tables of data, not logic: a reader scans them, never holds them whole
    "storage/schema.py": "the SQLAlchemy tables, one declaration per table",
    "flows/cli/commands.py": "the command tables of twin, one entry per command and flag",
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. flows.connectors.sinks
    target: str  # what it imports, absolute, e.g. storage.pg_writer


def _sources(*roots: str) -> list[Path]:
    return sorted(p for r in roots for p in (ROOT / r).rglob("*.py") if ".venv" not in p.parts)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[Import]:
    name = _module_name(path)
    out: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [Import(name, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append(Import(name, node.module))
            # `from flows.jobs import notifier` imports the module flows.jobs.notifier
            out += [Import(name, f"{node.module}.{a.name}") for a in node.names]
    return out


ALL_IMPORTS = [i for p in _sources(*PRODUCT) for i in _imports(p)]

IO_LIBRARIES = ("bytewax", "paho", "psycopg", "redis", "sqlalchemy", "prometheus_client", "mqtt5")
RECORDS = ("twin.records", "twin.alerts.records", "twin.anomaly.records", "twin.errors")


def _starts(target: str, *prefixes: str) -> bool:
    return any(target == p or target.startswith(p + ".") for p in prefixes)


# (room, what it must never import, why)
FORBIDDEN = [
    (
        "twin",
        ("storage", "flows", "api", "simulators", "migrations", *IO_LIBRARIES),
        "the domain runs without servers: in the dataflow, replays and evaluations",
    ),
    (
        "storage",
        ("flows", "api", "simulators", "bytewax", "paho", "prometheus_client"),
        "storage does I/O for whoever composes it",
    ),
    (
        "api",
        ("flows", "simulators", "migrations", "bytewax", "paho", "mqtt5", "prometheus_client"),
        "the API reads through storage; the engine composes it, never the reverse",
    ),
    ("simulators", ("flows", "bytewax"), "the simulators drive the engine from outside"),
    (
        "flows.runtime",
        ("flows.cli", "flows.jobs", "flows.connectors", "flows.engine", "flows.dataflow"),
        "every room leans on runtime, so it leans on none",
    ),
    (
        "flows.connectors",
        ("flows.cli", "flows.jobs", "flows.engine", "flows.dataflow"),
        "connectors are parts the dataflow is built from",
    ),
    (
        "flows.jobs",
        ("flows.cli", "flows.connectors", "flows.engine", "flows.dataflow"),
        "jobs run beside the dataflow, not inside it",
    ),
    (
        "flows.dataflow",
        ("flows.cli", "flows.jobs", "flows.engine"),
        "the dataflow is wiring of connectors and the twin step",
    ),
    ("flows.engine", ("flows.cli",), "the engine is started by the CLI, never the reverse"),
]


@pytest.mark.parametrize(("room", "forbidden", "why"), FORBIDDEN, ids=[f[0] for f in FORBIDDEN])
def test_each_room_imports_only_inward(room: str, forbidden: tuple[str, ...], why: str) -> None:
    bad = sorted(
        f"{i.module} imports {i.target}"
        for i in ALL_IMPORTS
        if _starts(i.module, room) and _starts(i.target, *forbidden)
    )
    assert not bad, f"{why}:\n" + "\n".join(bad)


def test_the_base_records_import_only_records() -> None:
    """Every layer holds the records; they must not drag the domain's logic in with them."""
    bad = sorted(
        f"{i.module} imports {i.target}"
        for i in ALL_IMPORTS
        if i.module in RECORDS and _starts(i.target, *PRODUCT) and not _starts(i.target, *RECORDS)
    )
    assert not bad, "\n".join(bad)


def test_flows_holds_the_engine_the_dataflow_and_four_rooms() -> None:
    flows = ROOT / "flows"
    modules = sorted(p.name for p in flows.glob("*.py"))
    rooms = sorted(p.name for p in flows.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert modules == ["__init__.py", "dataflow.py", "engine.py"]
    assert rooms == ["cli", "connectors", "jobs", "runtime"]


def test_only_the_settings_module_reads_the_environment() -> None:
    readers = sorted(
        str(p.relative_to(ROOT))
        for p in _sources(*PRODUCT)
        if re.search(r"\bos\.environ\b|\bgetenv\(", p.read_text())
    )
    assert readers == ["flows/runtime/settings.py"]


def _sizes() -> tuple[list[str], list[str]]:
    long_modules, long_functions = [], []
    for path in _sources("twin", "storage", "flows", "api"):
        rel = str(path.relative_to(ROOT))
        if rel in DECLARATIVE:
            continue
        text = path.read_text()
        if text.count("\n") > MODULE_LINES:
            long_modules.append(f"{rel}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > FUNCTION_LINES:
                    long_functions.append(f"{rel}:{node.lineno} {node.name}: {length} lines")
    return long_modules, long_functions


def test_no_module_a_reader_cannot_hold() -> None:
    long_modules, _ = _sizes()
    assert not long_modules, "\n".join(long_modules)


def test_no_function_a_reader_cannot_hold() -> None:
    _, long_functions = _sizes()
    assert not long_functions, "\n".join(long_functions)


# ---- dependencies: declared == imported ----------------------------------------------------

TOOLS = {
    # declared for what they do, not for what imports them
    "ruff": "the linter, run by make lint",
    "mypy": "the type checker, run by make lint",
    "pytest-timeout": "a pytest plugin, configured by `timeout` in pyproject.toml",
    "httptools": 'uvicorn\'s HTTP parser, named by api/server.py (http="httptools")',
    "uvloop": 'uvicorn\'s event loop, named by api/server.py (loop="uvloop")',
}


def _requirement_name(spec: str) -> str:
    return re.split(r"[\s\[<>=!~;]", spec, maxsplit=1)[0].lower().replace("_", "-")


def _declared() -> dict[str, set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"core": {_requirement_name(d) for d in project["dependencies"]}}
    for extra, deps in project["optional-dependencies"].items():
        groups[extra] = {_requirement_name(d) for d in deps}
    return groups


def _third_party(*roots: str) -> set[str]:
    """The distributions the code under ``roots`` imports (first-party and stdlib left out)."""
    dists = metadata.packages_distributions()
    found: set[str] = set()
    for path in _sources(*roots):
        for imp in _imports(path):
            top = imp.target.split(".")[0]
            if top in FIRST_PARTY or top in sys.stdlib_module_names or top == "__future__":
                continue
            names = dists.get(top)
            assert names, f"{path.relative_to(ROOT)} imports {top}: no installed package has it"
            found |= {n.lower().replace("_", "-") for n in names}
    return found


def test_every_import_is_declared_and_every_declaration_is_imported() -> None:
    declared = _declared()
    everything = set().union(*declared.values())
    product = _third_party(*PRODUCT)
    tests = _third_party("tests")
    # psycopg[binary] is imported as psycopg; the binary build is psycopg's own choice
    used = product | tests | {"psycopg-binary"} | set(TOOLS)
    assert product <= declared["core"] | declared["embedded"] | declared["plots"], (
        product - everything
    )
    assert tests <= everything, tests - everything
    assert not (everything - used), f"declared but never imported: {sorted(everything - used)}"


# ---- defaults: written once, in twin/defaults.py ---------------------------------------------

SETTING_NAMES = {
    "batch_size", "linger_ms", "session_expiry_s", "mqtt_session_expiry_s", "ttl_s",
    "twin_ttl_s", "snapshot_interval_s", "retention_days", "partitions_ahead_days",
    "hourly_retention_days", "daily_retention_days", "window_minutes", "max_payload_bytes",
    "max_future_skew_s", "max_future_skew_ms",
}  # fmt: skip


def _literal_defaults() -> list[str]:
    """Parameters and fields named like a setting whose default is a number written in place."""
    found = []
    for path in _sources(*PRODUCT):
        if path.name == "defaults.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            pairs: list[tuple[str, ast.expr | None]] = []
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                a = node.args
                positional = a.posonlyargs + a.args
                pairs += zip(
                    [p.arg for p in positional[len(positional) - len(a.defaults) :]],
                    a.defaults,
                    strict=True,
                )
                pairs += [(p.arg, d) for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                pairs.append((node.target.id, node.value))
            for name, default in pairs:
                if name in SETTING_NAMES and default is not None:
                    numbers = [n for n in ast.walk(default) if isinstance(n, ast.Constant)]
                    if any(
                        isinstance(n.value, int | float) and n.value not in (0, 1000)
                        for n in numbers
                    ):  # 0: "off"; 1000: ms per second
                        found.append(f"{path.relative_to(ROOT)}:{default.lineno} {name}")
    return found


def test_every_default_is_written_once() -> None:
    """A default repeated in the class that takes it drifts from the setting's default."""
    assert not _literal_defaults(), "\n".join(_literal_defaults())


SQL = re.compile(r"^\s*(SELECT|INSERT INTO|UPDATE|DELETE FROM|CREATE|DROP|ALTER|COPY) ")


def test_storage_work_lives_in_storage() -> None:
    """No SQL and no Redis command is written outside storage/ (and the migrations)."""
    found = []
    for path in _sources("twin", "flows", "api", "simulators"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if SQL.match(node.value):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value[:40]!r}")
            elif isinstance(node, ast.Attribute) and node.attr in {"execute", "executemany"}:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} .{node.attr}(")
    assert not found, "\n".join(found)
