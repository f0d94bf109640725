"""Regroup the flat package root into a few subpackages (issue 19), reproducibly.

Run at the repository root of any checkout of main, on a clean work tree::

    python tools/regroup.py            # moves, rewrites, prints what it did not map
    python tools/regroup.py --check    # changes nothing; exit 1 if a run would change something

then ``ruff check seedream_async tests benchmarks examples && mypy seedream_async &&
lint-imports`` and the tests, and commit. What it does:

1. ``git mv`` each root module in MAPPING to its new home (creating each subpackage with a
   short ``__init__.py``). ``_models.py`` is split by name (SPLIT): it moves to its default
   home and the definitions SPLIT names are carried into their own modules.
2. Rewrites every import and dotted reference in ``seedream_async/``, ``tests/``,
   ``benchmarks/``, ``examples/``, ``docs/``, ``README.md``, ``mkdocs.yml`` and
   ``pyproject.toml``: absolute and relative imports (resolved against where the file WAS,
   then made relative again for where it IS), ``from . import _mod``, lazy and
   TYPE_CHECKING imports, ``"seedream_async._x.y"`` strings (monkeypatch, mock.patch),
   mkdocstrings ``::: seedream_async._x`` identifiers, ``seedream_async/_x.py`` paths.
3. Replaces the root layers contract of import-linter with LAYERS (seven bands over the
   subpackages), adds one layers contract per subpackage (PACKAGE_CONTRACTS) and a forbidden
   contract keeping the simulator apart; other contracts (the engine's) only have their
   module names rewritten. The README's "How the code is laid out" list is replaced by
   README_LAYOUT. ``_pytest_plugin`` (the ``pytest11`` entry point) stays at the root.
4. Leaves every module not in MAPPING where it is, and prints the root modules it did not
   map (new modules merged later): add them to MAPPING and run again. It also prints the
   names of a split module it kept home, prose naming a renamed file ambiguously, and what
   ruff still finds in the files it changed (a string made too long): fix those by hand.
5. Runs ``ruff check --fix --select I,F401`` and ``ruff format`` on the Python files it
   changed (import order, imports a split part does not use).

A second run changes nothing (it only acts on old names, and no new name starts with an
old one), so it can be run again after a late branch merges with old import paths: it
rewrites them. Checks after a run: ruff, ``mypy seedream_async``, ``lint-imports``,
``mkdocs build --strict``, the tests. Standard library only, plus ``git`` and ``ruff``.
"""

from __future__ import annotations

import argparse
import ast
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

PKG = "seedream_async"

# old dotted module -> new dotted module. A split module maps to its default home.
MAPPING: dict[str, str] = {
    # _base: the vocabulary every layer shares; imports nothing of the package.
    "seedream_async._constants": "seedream_async._base._constants",
    "seedream_async._exceptions": "seedream_async._base._exceptions",
    "seedream_async._secret": "seedream_async._base._secret",
    "seedream_async._version": "seedream_async._base._version",
    "seedream_async._observe": "seedream_async._base._observe",
    # _policies: pure decisions and arithmetic, no I/O: when to retry, poll, pace.
    "seedream_async._backoff": "seedream_async._policies._backoff",
    "seedream_async._retry": "seedream_async._policies._retry",
    "seedream_async._polling": "seedream_async._policies._polling",
    "seedream_async._limits": "seedream_async._policies._limits",
    "seedream_async._frontier": "seedream_async._policies._frontier",
    "seedream_async._planner": "seedream_async._policies._planner",
    "seedream_async._durations": "seedream_async._policies._durations",
    # _wire: what crosses the wire: answers parsed, requests validated, prices.
    "seedream_async._models": "seedream_async._wire._parsing",
    "seedream_async._balance": "seedream_async._wire._balance",
    "seedream_async._raw": "seedream_async._wire._raw",
    "seedream_async._family": "seedream_async._wire._family",
    "seedream_async._request": "seedream_async._wire._requests",
    # _media: image bytes and files: the type from the bytes, whole or not, async streams.
    "seedream_async._sniff": "seedream_async._media._sniff",
    "seedream_async._verify": "seedream_async._media._verify",
    "seedream_async._files": "seedream_async._media._files",
    "seedream_async._header": "seedream_async._media._header",
    "seedream_async._inputs": "seedream_async._media._inputs",
    # _network: sending requests and moving bytes: the pools, the retry driver, the API's
    # endpoint, uploads and downloads, bounded reads, error answers.
    "seedream_async._transport": "seedream_async._network._pools",
    "seedream_async._http": "seedream_async._network._errors",
    "seedream_async._bounded": "seedream_async._network._bounded",
    "seedream_async._driver": "seedream_async._network._driver",
    "seedream_async._endpoint": "seedream_async._network._endpoint",
    "seedream_async._upload": "seedream_async._network._upload",
    "seedream_async._download": "seedream_async._network._download",
    # _webhook: webhook completion: signatures, tokens, deliveries, the receiver.
    "seedream_async._webhook_verify": "seedream_async._webhook._signature",
    "seedream_async._webhook_token": "seedream_async._webhook._token",
    "seedream_async._webhook_listen": "seedream_async._webhook._listen",
    "seedream_async._webhook_delivery": "seedream_async._webhook._delivery",
    "seedream_async._webhook_app": "seedream_async._webhook._receiver",
    "seedream_async._webhooks": "seedream_async._webhook._completion",
    # _clients: what users hold: AsyncSeedream, Seedream, per-call options.
    "seedream_async._client": "seedream_async._clients._async",
    "seedream_async._blocking": "seedream_async._clients._blocking",
    "seedream_async._options": "seedream_async._clients._options",
}

# Names a module only re-exports (imported from elsewhere): an importer is sent to the module
# that defines them. ``_models`` re-exports the request rules ``_request`` defines.
REEXPORTED: dict[str, dict[str, str]] = {
    "seedream_async._models": {
        name: "seedream_async._request"
        for name in ("EditRequest", "build_request", "check_params", "check_size", "is_url")
    },
}

# Root modules that stay at the root (entry points, the public face).
STAY = {"__init__", "__main__", "_pytest_plugin"}

# A split: old module -> {new module: top-level names it takes}; the rest go to MAPPING's home.
SPLIT: dict[str, dict[str, list[str]]] = {
    "seedream_async._models": {
        "seedream_async._wire._pricing": ["PriceModel"],
        "seedream_async._wire._envelope": ["unwrap", "_code", "envelope_error", "_open"],
    },
}

SPLIT_DOCSTRINGS = {
    "seedream_async._wire._parsing": """\
API answers about predictions and uploads, read in every shape the API is known to send.

Predictions are read leniently (see :class:`Prediction`): ids may be numbers, outputs may sit
in ``outputs`` or ``output`` as a string, a list, or objects with a ``url``; a timestamp that
cannot be read becomes None; an unknown status means "still running". Unknown fields are
kept (``extra="allow"``), so a new server field never crashes a batch. The envelope around an
answer is ``_envelope.py``'s; edit requests are validated in ``_requests.py``.
""",
    "seedream_async._wire._envelope": """\
The envelope around every API answer, opened in each shape the API is known to send.

Answers come bare, in ``{"data": {...}}`` or in ``{"code": 200, "message": ..., "data": {...}}``;
:func:`unwrap` opens all three, and :func:`envelope_error` turns a body whose ``code`` is
4xx/5xx into the exception that HTTP status would raise, even when the HTTP status was 200.
""",
    "seedream_async._wire._requests": (
        "Edit requests, validated strictly before any money is spent (:class:`EditRequest`).\n\n"
        "Two ways past the local checks: ``extra_body`` (fields merged last into the JSON body,\n"
        "as openai-python does) and ``check_limits=False`` (types are still checked, the\n"
        "contract's numeric limits are not).\n"
    ),
    "seedream_async._wire._pricing": (
        "What a prediction costs: :class:`PriceModel`, from the contract's prices.\n"
    ),
}

PACKAGE_DOCSTRINGS = {
    "_base": "The vocabulary every layer shares: constants, exceptions, the secret key, the\n"
    "version, the observer interface. Imports nothing else of the package.\n",
    "_policies": "Pure policies, no I/O: backoff, when to retry, how often to poll, rate and\n"
    "concurrency limits, where to place each poll.\n",
    "_wire": "What crosses the wire: API answers parsed leniently, edit requests validated\n"
    "strictly, prices, the balance, raw answers kept for debugging.\n",
    "_media": "Image bytes and files: the type from the first bytes, whether a download is a\n"
    "whole image, async file streams on asyncio and trio.\n",
    "_network": "Sending requests and moving bytes: the pooled transport, the one retry\n"
    "driver, the API's endpoint, uploads, downloads, bounded reads, error answers.\n",
    "_webhook": "Webhook completion: signature checks, per-attempt tokens, deliveries, the ASGI\n"
    "receiver and its small listener, and the client's waiter.\n",
    "_clients": "What users hold: :class:`AsyncSeedream`, the blocking :class:`Seedream`, and\n"
    "per-call options.\n",
}

# The root layers contract, highest first ("a | b": independent siblings).
LAYERS = [
    "seedream_async.__main__ | seedream_async._pytest_plugin | seedream_async.otel",
    "seedream_async.cli",
    "seedream_async._clients",
    "seedream_async._engine",
    "seedream_async._network | seedream_async._webhook",
    "seedream_async._wire | seedream_async._media | seedream_async._policies",
    "seedream_async._base",
]
LAYERS_NAME = (
    "seedream_async imports one way: cli > clients > engine > network, webhook > "
    "wire, media, policies > base"
)

# Each subpackage's own order (module names relative to the subpackage), highest first.
PACKAGE_CONTRACTS: dict[str, list[str]] = {
    "_clients": ["_blocking", "_async", "_options"],
    "_network": ["_endpoint", "_driver | _upload | _download", "_errors | _bounded | _pools"],
    "_webhook": ["_completion", "_receiver", "_delivery", "_token | _listen", "_signature"],
    "_wire": ["_parsing", "_requests | _pricing", "_family | _envelope | _balance | _raw"],
    "_media": ["_inputs", "_verify", "_sniff | _files | _header"],
    "_policies": ["_planner | _retry | _polling", "_frontier | _backoff | _limits", "_durations"],
    "_base": ["_constants | _exceptions | _secret | _version | _observe"],
}

# The README's "How the code is laid out" list, replaced whole (between its lead-in and the
# line about ``testing/``).
README_LAYOUT = """\
- `cli/`: the `seedream-async` command, one module per command, on top of the clients.
- `_clients/`: what users hold: `AsyncSeedream` (`_async.py`: the operations upload, submit,
  poll, download, and `edit_batch`, which hands the client to the engine), the blocking
  `Seedream` (`_blocking.py`), per-call options (`_options.py`).
- `_engine/`: the batch engine, written against `EngineAPI` (`_engine/_api.py`), the few
  calls it needs: items and results, uploads, submits under limits and budget, the poll
  scheduler, downloads, the journal and resuming from it, one job per module.
- `_network/`: sending requests and moving bytes: API requests with the key
  (`_endpoint.py`), the one retry loop every request goes through (`_driver.py`), multipart
  uploads, atomic downloads, bounded reads, error answers (`_errors.py`), the pooled
  transport (`_pools.py`).
- `_webhook/`: webhook completion: signatures (`_signature.py`), per-attempt tokens,
  deliveries, the ASGI receiver and its listener, the client's waiter (`_completion.py`).
- `_wire/`: what crosses the wire: answers parsed (`_parsing.py`) out of their envelope
  (`_envelope.py`), edit requests validated (`_requests.py`), prices (`_pricing.py`), the
  balance, raw answers.
- `_media/`: image bytes: the type from the first bytes (`_sniff.py`), whether a download is
  whole (`_verify.py`), async file streams (`_files.py`).
- `_policies/`: pure policies, no I/O: `_retry.py`, `_polling.py`, `_limits.py`,
  `_backoff.py`, `_frontier.py` (optimal poll schedules), `_planner.py` (which one each
  prediction gets, from learned durations).
- `_base/`: `_exceptions.py`, `_constants.py`, `_secret.py`, `_version.py`, `_observe.py`:
  the vocabulary every layer shares.
"""
README_LAYOUT_SPAN = re.compile(
    r"(## How the code is laid out\n\n.*?`pyproject.toml`:\n\n)(.*?)(\n`testing/`)", re.S
)

# What the simulator (seedream_async.testing) may not import: everything but the constants.
SIMULATOR_FORBIDDEN = [
    f"{PKG}.{name}"
    for name in [
        "cli",
        "otel",
        "_pytest_plugin",
        "_clients",
        "_engine",
        "_network",
        "_webhook",
        "_wire",
        "_media",
        "_policies",
        "_base._exceptions",
        "_base._secret",
        "_base._version",
        "_base._observe",
    ]
]

TEXT_ROOTS = ["seedream_async", "tests", "benchmarks", "examples", "docs"]
TEXT_FILES = ["README.md", "mkdocs.yml", "pyproject.toml"]
TEXT_SUFFIXES = {".py", ".md", ".toml", ".yml", ".yaml", ".txt", ".html", ".pyi"}

DOTTED = re.compile(r"\bseedream_async((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
PATHED = re.compile(r"\bseedream_async((?:/[A-Za-z_][A-Za-z0-9_]*)+)\.py\b")


def _check_tables() -> None:
    """No new name may start with an old one: that is what makes a second run a no-op."""
    new_names = set(MAPPING.values()) | {m for parts in SPLIT.values() for m in parts}
    for old in MAPPING:
        for new in new_names:
            if new == old or new.startswith(old + "."):
                sys.exit(f"regroup: new module {new} starts with old module {old}")


# --------------------------------------------------------------------------- names


class Names:
    """Where an old module (and, for a split one, each of its names) lives now."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.by_name: dict[str, dict[str, str]] = {}
        for old, parts in SPLIT.items():
            table: dict[str, str] = {}
            for new in [MAPPING[old], *parts]:
                path = root / (new.replace(".", "/") + ".py")
                if path.exists():
                    table.update(dict.fromkeys(_top_level_names(path.read_text()), new))
            for new, names in parts.items():
                table.update(dict.fromkeys(names, new))
            self.by_name[old] = table
        self.unknown: set[str] = set()

    def module(self, old: str, attr: str | None = None) -> str | None:
        """The new home of ``old`` (or of ``old.attr`` for a split module); None if unmapped."""
        if old not in MAPPING:
            return None
        if old in SPLIT and attr is not None:
            found = self.by_name[old].get(attr)
            if found is None:
                self.unknown.add(f"{old}.{attr}")
            return found or MAPPING[old]
        return MAPPING[old]

    def dotted(self, text: str) -> str:
        """Rewrite ``seedream_async.a.b.c`` (module, then perhaps attributes)."""
        parts = text.split(".")
        for cut in range(len(parts), 1, -1):
            old = ".".join(parts[:cut])
            if old in MAPPING:
                attr = parts[cut] if cut < len(parts) else None
                return ".".join([self.module(old, attr) or old, *parts[cut:]])
        return text


def _top_level_names(source: str) -> list[str]:
    names: list[str] = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


def _module_of(path: Path) -> str:
    """The dotted module a file under the root is (a package's ``__init__`` is the package)."""
    parts = list(path.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package_of(path: Path) -> str:
    module = _module_of(path)
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


# --------------------------------------------------------------------------- moves


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, stdout=subprocess.DEVNULL)


def _file_of(module: str) -> Path:
    return Path(module.replace(".", "/") + ".py")


def move_modules(root: Path, dry: bool) -> dict[Path, str]:
    """``git mv`` each mapped root module; returns {new file: the package it was in}."""
    moved: dict[Path, str] = {}
    for old, new in MAPPING.items():
        source, target = _file_of(old), _file_of(new)
        if not (root / source).exists():
            continue
        moved[target] = old.rpartition(".")[0]
        if dry:
            continue
        init = root / target.parent / "__init__.py"
        if not init.exists():
            init.parent.mkdir(parents=True, exist_ok=True)
            doc = PACKAGE_DOCSTRINGS.get(target.parent.name, "")
            init.write_text(f'"""{doc}"""\n' if doc else "")
            _git(root, "add", str(init.relative_to(root)))
        _git(root, "mv", str(source), str(target))
    return moved


def split_modules(root: Path, moved: dict[Path, str], dry: bool) -> list[Path]:
    """Carry SPLIT's names out of each split module (already moved to its default home)."""
    created: list[Path] = []
    for old, parts in SPLIT.items():
        home = _file_of(MAPPING[old])
        if home not in moved or dry:
            continue
        source = (root / home).read_text()
        texts = _split_source(source, old, MAPPING[old], parts)
        for new, text in texts.items():
            (root / _file_of(new)).write_text(text)
            if new != MAPPING[old]:
                created.append(_file_of(new))
                moved[_file_of(new)] = moved[home]
                _git(root, "add", str(_file_of(new)))
    return created


def _split_source(source: str, old: str, home: str, parts: dict[str, list[str]]) -> dict[str, str]:
    """One source per part: the shared header (imports), its own statements, its __all__."""
    old_leaf = old.rpartition(".")[2]
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    owner = {name: new for new, names in parts.items() for name in names}
    chunks: dict[str, list[str]] = {new: [] for new in [home, *parts]}
    header: list[str] = []
    exported: list[str] = []
    start, last = 0, home
    for index, node in enumerate(tree.body):
        text = "".join(lines[start : node.end_lineno])
        start = node.end_lineno or start
        if index == 0 and isinstance(node, ast.Expr):  # the module docstring stays home
            chunks[home].append(text)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom | ast.If):
            header.append(text)
            continue
        names = _top_level_names(ast.unparse(node)) if not isinstance(node, ast.Expr) else []
        if names == ["__all__"]:
            exported = [ast.literal_eval(e) for e in node.value.elts]  # type: ignore[union-attr]
            continue
        last = owner.get(names[0], home) if names else last  # a bare string follows its name
        chunks[last].append(text)
    defined = {new: set(_top_level_names("".join(chunks[new]))) for new in chunks}
    unnamed = sorted(defined[home] - set(owner))
    print(f"split {home}: kept here, as SPLIT names them nowhere else: {', '.join(unnamed)}")
    out: dict[str, str] = {}
    for new, body in chunks.items():
        used = {n.id for n in ast.walk(ast.parse("".join(body))) if isinstance(n, ast.Name)}
        # Written as an import from the old module: the rewrite below sends each name home.
        cross = [
            f"from .{old_leaf} import {', '.join(sorted(used & names))}\n"
            for other, names in defined.items()
            if other != new and used & names
        ]
        if cross:
            print(f"split {new} imports its sibling parts (check no cycle): {''.join(cross)}")
        own = [name for name in exported if name in defined[new]]
        doc = f'"""{SPLIT_DOCSTRINGS.get(new, "")}"""\n'
        if new == home and body:  # the original docstring, unless SPLIT_DOCSTRINGS has one
            first, rest = (doc if new in SPLIT_DOCSTRINGS else body[0]), body[1:]
        else:
            first, rest = doc, body
        all_line = "\n__all__ = [" + ", ".join(f'"{n}"' for n in own) + "]\n"
        out[new] = first + "".join(header) + "".join(cross) + all_line + "".join(rest)
    return out


# --------------------------------------------------------------------------- rewrites


def _relative(from_package: str, target: str) -> str:
    """``target`` as a relative module name seen from inside ``from_package``."""
    here, there = from_package.split("."), target.split(".")
    common = 0
    while common < min(len(here), len(there)) and here[common] == there[common]:
        common += 1
    return "." * (len(here) - common + 1) + ".".join(there[common:])


def _resolve(package: str, level: int, module: str | None) -> str:
    base = package.split(".")
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def rewrite_python(source: str, old_package: str, new_package: str, names: Names) -> str:
    """Rewrite the import statements of one Python file (every one: lazy, TYPE_CHECKING)."""
    tree = ast.parse(source)
    offsets = [0]
    for line in source.splitlines(keepends=True):
        offsets.append(offsets[-1] + len(line))
    edits: list[tuple[int, int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            new = _rewrite_from(node, old_package, new_package, names)
        elif isinstance(node, ast.Import):
            new = _rewrite_import(node, names)
        else:
            continue
        if new is None:
            continue
        begin = offsets[node.lineno - 1] + node.col_offset
        end = offsets[(node.end_lineno or node.lineno) - 1] + (node.end_col_offset or 0)
        indent = " " * node.col_offset
        edits.append((begin, end, ("\n" + indent).join(new)))
    for begin, end, text in sorted(edits, reverse=True):
        source = source[:begin] + text + source[end:]
    return source


def _alias(alias: ast.alias, name: str | None = None) -> str:
    name = name or alias.name
    return name if alias.asname is None else f"{name} as {alias.asname}"


def _rewrite_from(
    node: ast.ImportFrom, old_package: str, new_package: str, names: Names
) -> list[str] | None:
    relative = node.level > 0
    base = _resolve(old_package, node.level, node.module) if relative else node.module or ""
    if not base.startswith(PKG):
        return None
    groups: dict[str, list[str]] = {}  # new module -> imported names, in order
    changed = relative and old_package != new_package
    for alias in node.names:
        as_module = f"{base}.{alias.name}"
        if as_module in MAPPING:  # ``from pkg import _mod``: the module object itself
            target = MAPPING[as_module]
            parent, _, leaf = target.rpartition(".")
            groups.setdefault(parent, []).append(
                f"{leaf} as {alias.asname or alias.name}" if leaf != alias.name else _alias(alias)
            )
            changed = True
            continue
        source = REEXPORTED.get(base, {}).get(alias.name)
        if source is not None:
            groups.setdefault(MAPPING.get(source, source), []).append(_alias(alias))
            changed = True
            continue
        target = names.module(base, alias.name) or base
        changed |= target != base
        groups.setdefault(target, []).append(_alias(alias))
    if not changed:
        return None
    lines = []
    for target, imported in groups.items():
        where = _relative(new_package, target) if relative else target
        lines.append(f"from {where} import {', '.join(imported)}")
    return lines


def _rewrite_import(node: ast.Import, names: Names) -> list[str] | None:
    parts = []
    changed = False
    for alias in node.names:
        new = names.dotted(alias.name) if alias.name.startswith(PKG + ".") else alias.name
        changed |= new != alias.name
        parts.append(_alias(alias, new))
    return [f"import {', '.join(parts)}"] if changed else None


def rewrite_text(text: str, names: Names) -> str:
    """Dotted names and file paths anywhere in a text (strings, docs, TOML)."""
    text = DOTTED.sub(lambda m: names.dotted(m.group(0)), text)

    def path(match: re.Match[str]) -> str:
        new = names.dotted(PKG + match.group(1).replace("/", "."))
        return new.replace(".", "/") + ".py"

    return PATHED.sub(path, text)


def rewrite_basenames(text: str, rel: Path, stale: list[str], root: Path) -> str:
    """A backticked ``_old.py`` whose module was renamed reads ``_new_package/_new.py``,
    unless another file of the package has that name (then it is listed, not guessed)."""
    for old, new in MAPPING.items():
        before, after = old.rpartition(".")[2], new.rpartition(".")[2]
        if before == after:
            continue
        pattern = re.compile(rf"(`+){re.escape(before)}\.py(`+)")
        if not pattern.search(text):
            continue
        # The simulator (testing/) is a party apart: its files are what its own prose means.
        inside = rel.parts[:2] == (PKG, "testing")
        others = [
            p
            for p in (root / PKG).rglob(f"{before}.py")
            if "__pycache__" not in p.parts and ("testing" in p.parts) == inside
        ]
        if others:
            for number, line in enumerate(text.splitlines(), 1):
                if pattern.search(line):
                    stale.append(f"{rel}:{number}: {before}.py")
            continue
        short = "/".join(new.split(".")[1:]) + ".py"
        if rel.parent == _file_of(new).parent:  # a neighbour: its file name is enough
            short = Path(short).name
        text = pattern.sub(rf"\g<1>{short}\g<2>", text)
    return text


# --------------------------------------------------------------------------- pyproject


def contracts_text() -> str:
    def quoted(items: list[str], indent: str = "    ") -> str:
        return "\n".join(f'{indent}"{item}",' for item in items)

    blocks = [
        "[[tool.importlinter.contracts]]\n"
        'id = "layers"\n'
        f'name = "{LAYERS_NAME}"\n'
        'type = "layers"\n'
        f"layers = [\n{quoted(LAYERS)}\n]\n"
        "# Not in a layer: the simulator, seedream_async.testing, stands beside the package (the\n"
        "# CLI may start it); it imports only _base._constants.\n"
    ]
    blocks.append(
        "[[tool.importlinter.contracts]]\n"
        'id = "simulator-apart"\n'
        'name = "the simulator is a party apart: it imports only the contract\'s constants"\n'
        'type = "forbidden"\n'
        f'source_modules = ["{PKG}.testing"]\n'
        f"forbidden_modules = [\n{quoted(SIMULATOR_FORBIDDEN)}\n]\n"
    )
    for package, layers in PACKAGE_CONTRACTS.items():
        blocks.append(
            "[[tool.importlinter.contracts]]\n"
            f'id = "layers{package}"\n'
            f'name = "{PKG}.{package}: its modules import one way"\n'
            'type = "layers"\n'
            f'containers = ["{PKG}.{package}"]\n'
            f"layers = [\n{quoted(layers)}\n]\n"
        )
    return "\n".join(blocks) + "\n"


def rewrite_pyproject(text: str) -> str:
    """Replace the root layers contract (and our per-package ones) with the generated ones."""
    ours = {"layers", "simulator-apart"} | {f"layers{package}" for package in PACKAGE_CONTRACTS}
    sections = re.split(r"(?m)^(?=\[)", text)
    kept: list[str] = []
    placed = False
    for section in sections:
        found = re.search(r'(?m)^id = "([^"]+)"', section)
        is_ours = section.startswith("[[tool.importlinter.contracts]]") and (
            found is not None and found.group(1) in ours
        )
        if not is_ours:
            kept.append(section)
        elif not placed:
            kept.append(contracts_text())
            placed = True
    return "".join(kept)


# --------------------------------------------------------------------------- driver


def _text_files(root: Path) -> list[Path]:
    files = [Path(name) for name in TEXT_FILES if (root / name).exists()]
    for top in TEXT_ROOTS:
        for path in sorted((root / top).rglob("*")):
            if path.is_file() and path.suffix in TEXT_SUFFIXES and "__pycache__" not in path.parts:
                files.append(path.relative_to(root))
    return files


def unmapped_root_modules(root: Path) -> list[str]:
    found = []
    for path in sorted((root / PKG).iterdir()):
        name = path.stem if path.suffix == ".py" else path.name
        dotted = f"{PKG}.{name}"
        if path.suffix == ".py" and name not in STAY and dotted not in MAPPING:
            found.append(dotted)
    return found


def run(root: Path, dry: bool) -> list[Path]:
    _check_tables()
    moved = move_modules(root, dry)
    created = split_modules(root, moved, dry)
    names = Names(root)
    changed: list[Path] = []
    stale: list[str] = []
    for rel in _text_files(root):
        path = root / rel
        text = path.read_text()
        new = text
        if rel.suffix == ".py":
            old_package = moved.get(rel, _package_of(rel))
            new = rewrite_python(new, old_package, _package_of(rel), names)
        new = rewrite_text(new, names)
        if rel.name == "pyproject.toml":
            new = rewrite_pyproject(new)
        if rel == Path("README.md"):
            new = README_LAYOUT_SPAN.sub(lambda m: m[1] + README_LAYOUT + m[3], new)
        new = rewrite_basenames(new, rel, stale, root)
        if new != text or rel in moved:
            changed.append(rel)
            if not dry:
                path.write_text(new)
    if stale:
        print("prose names a module whose file name changed, and that name is ambiguous")
        print("(another file has it): reword by hand:")
        print("  " + "\n  ".join(stale))
    if names.unknown:
        print("names not found in any part of a split module (sent to its default home):")
        print("  " + "\n  ".join(sorted(names.unknown)))
    return changed + created


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if needed")
    args = parser.parse_args()
    root = Path.cwd()
    if not (root / PKG / "__init__.py").exists():
        sys.exit("regroup: run me at the repository root")
    began = time.monotonic()
    changed = run(root, dry=args.check)
    python = sorted({str(p) for p in changed if p.suffix == ".py" and (root / p).exists()})
    if python and not args.check and shutil.which("ruff"):
        subprocess.run(["ruff", "check", "--fix", "-q", "--select", "I,F401", *python], cwd=root)
        subprocess.run(["ruff", "format", "-q", *python], cwd=root)
        left = subprocess.run(
            ["ruff", "check", "-q", "--output-format", "concise", *python],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
        if left:  # e.g. a string made longer than the line limit by a longer module name
            print("ruff still finds, in files this run changed (fix by hand):\n" + left)
    print(f"{'would change' if args.check else 'changed'} {len(changed)} files", end="")
    print(f" in {time.monotonic() - began:.1f}s")
    left = unmapped_root_modules(root)
    if left:
        print("root modules NOT in MAPPING (add them and run again):")
        print("  " + "\n  ".join(left))
    if args.check and changed:
        sys.exit(1)


if __name__ == "__main__":
    main()
