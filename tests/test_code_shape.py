"""Code shape: short modules, short functions, imports at the top (issue #10, item 4).

Walks every module of ``tfcmvp`` and ``beam_jobs`` with ``ast`` and fails,
naming the module or function, when

* a module is over ``MAX_MODULE_LINES`` lines,
* a function (or method; nested ones count in their parent too) is over
  ``MAX_FUNCTION_LINES`` lines, its docstring not counted (documenting
  arguments is never what makes a function too long),
* a function imports something that is not an optional dependency
  (``OPTIONAL``) and is not a deliberate deferral (``DEFERRED``).

What the refactor has not reached yet is listed in ``EXCEPTIONS``; an entry
that no longer applies also fails, so the list can only shrink.
"""

import ast
import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("tfcmvp", "beam_jobs")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

# Top-level packages imported where they are used because a plain install lacks them
# (setup.py extras); importing them at the top would break every other command.
OPTIONAL = {
    "sklearn": "extra 'eval': the linear probe's solver",
    "threadpoolctl": "comes with scikit-learn (extra 'eval'): the probe's thread limit",
    "dask": "extra 'dask': --runner DaskRunner",
    "distributed": "extra 'dask': --runner DaskRunner",
    "ai_edge_litert": "extra 'export': LiteRT conversion and its parity check",
    "tf2onnx": "extra 'export': ONNX conversion",
    "onnx": "extra 'export': ONNX conversion",
    "onnxruntime": "extra 'export': the ONNX parity check",
}

# Places ("module" or "module:function" prefixes) that import inside functions on
# purpose, and why. Mostly TensorFlow kept out until it is needed: the command line and
# the embedding job set up TensorFlow's logging (tfcmvp.cli.tf_startup,
# TF_CPP_MIN_LOG_LEVEL) before the first module that imports TensorFlow loads.
DEFERRED = {
    "tfcmvp/cli/": "a subcommand's library (and TensorFlow) is imported in run(), after "
    "tf_startup; `tfcmvp --help` loads none",
    "beam_jobs/embed.py:main": "tf_startup after TF_CPP_MIN_LOG_LEVEL is set",
    "beam_jobs/embed_stages.py": "TensorFlow-importing tfcmvp modules after main's log set-up",
    "beam_jobs/embed_finalize.py": "TensorFlow-importing tfcmvp modules after main's log set-up",
    "beam_jobs/embed_options.py": "TensorFlow-importing tfcmvp modules after main's log set-up",
    "tfcmvp/schema.py": "the schema imports without TensorFlow: extraction workers never load it",
    "beam_jobs/worker_process.py": "a worker binds its life to the launcher's before the "
    "seconds-long Beam / Dask imports",
    "tfcmvp/embedding/": "imports without TensorFlow (the Beam embedding launcher loads it "
    "before main's log set-up): TensorFlow-importing modules load in the functions",
    "tfcmvp/quickstart.py": "the CLI imports it at start-up: a stage's library (TensorFlow) "
    "loads when the stage runs, after tf_startup",
    "tfcmvp/evaluation/report_table.py:plot_report": "pyplot and matplotlib.use('Agg') change "
    "global state: only when a figure is drawn",
    "tfcmvp/quickstart_report.py:format_results": "the CLI imports it at start-up (through "
    "tfcmvp.quickstart); the report card imports tfcmvp.export, which loads TensorFlow",
    "tfcmvp/retrieval/report.py": "the retrieval package is NumPy only (the CLI imports it at "
    "start-up): the export description (TensorFlow) and matplotlib load when a model's source "
    "line or a figure is asked for",
    "tfcmvp/search/query.py:_check_export": "searching by an indexed, unchanged video loads no "
    "TensorFlow: the export's fingerprint (tfcmvp.retrieval.features) only for a new query",
    "tfcmvp/search/query.py:embed_query": "searching by an indexed, unchanged video loads no "
    "TensorFlow: the embedding run only for a new query",
    "tfcmvp/training/history.py:plot_history": "matplotlib (about 0.3 s to import) only "
    "when a run draws its history figure: the export loaders import this module for "
    "read_history and draw nothing",
    "tfcmvp/training/loop.py:tensorboard_callback": "tensorboard is not installed with "
    "TensorFlow 2.21: the import is the check whether it is, and the run goes on without",
}

# Not reached yet: ("module", size) / ("module:function", length) / ("module:function",
# imported module). Remove an entry when its code is fixed (a stale entry fails).
EXCEPTIONS: set = set()


def _modules():
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            yield path.relative_to(REPO).as_posix(), path


def _functions(tree):
    """(qualified name, node) of every function and method, nested ones included."""
    found = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + child.name
                found.append((name, child))
                visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def _length(node) -> int:
    """Lines of a function from ``def`` to its end, less its docstring's."""
    length = node.end_lineno - node.lineno + 1
    first = node.body[0]
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        length -= first.end_lineno - first.lineno + 1
    return length


def _imported(node):
    """The modules an import statement imports (a relative one with its leading dot)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:  # relative: inside the package
        return [f".{node.module or ''}"]
    return [node.module]


def _is_deferred(where: str) -> bool:
    return any(where.startswith(prefix) for prefix in DEFERRED)


def find_problems():
    """{(where, kind)} of every shape rule broken, in the keys EXCEPTIONS uses."""
    problems = {}
    for module, path in _modules():
        source = path.read_text(encoding="utf-8")
        lines = len(source.splitlines())
        if lines > MAX_MODULE_LINES:
            problems[(module, "size")] = f"{module}: {lines} lines > {MAX_MODULE_LINES}"
        for name, node in _functions(ast.parse(source, filename=module)):
            length = _length(node)
            where = f"{module}:{name}"
            if length > MAX_FUNCTION_LINES:
                problems[(where, "length")] = (
                    f"{where} (line {node.lineno}): {length} lines > {MAX_FUNCTION_LINES}"
                )
            if _is_deferred(where):
                continue
            for statement in ast.walk(node):
                if not isinstance(statement, (ast.Import, ast.ImportFrom)):
                    continue
                for imported in _imported(statement):
                    if imported.split(".")[0] in OPTIONAL:
                        continue
                    problems[(where, imported)] = (
                        f"{where} (line {statement.lineno}) imports {imported} inside the "
                        f"function: import it at the top (or list it in OPTIONAL with why)"
                    )
    return problems


@pytest.fixture(scope="module")
def problems():
    return find_problems()


def test_modules_functions_and_imports_have_their_shape(problems):
    new = sorted(message for key, message in problems.items() if key not in EXCEPTIONS)
    assert not new, "code shape rules broken:\n" + "\n".join(new)


def test_every_exception_is_still_needed(problems):
    # A fixed entry must leave EXCEPTIONS, so that the list only shrinks.
    stale = sorted(f"{where} {kind}" for where, kind in EXCEPTIONS if (where, kind) not in problems)
    assert not stale, "remove these from EXCEPTIONS, they hold no longer:\n" + "\n".join(stale)


def test_the_rules_catch_what_they_name(tmp_path, monkeypatch):
    # The walk itself: a long module, a long function, an in-function import and an
    # optional one (allowed).
    package = tmp_path / "tfcmvp"
    package.mkdir()
    (package / "big.py").write_text("x = 1\n" * (MAX_MODULE_LINES + 1))
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (package / "bad.py").write_text(
        f"def long():\n{body}\n\n\ndef lazy():\n    import json\n    import sklearn\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGES", ("tfcmvp",))
    assert set(find_problems()) == {
        ("tfcmvp/big.py", "size"),
        ("tfcmvp/bad.py:long", "length"),
        ("tfcmvp/bad.py:lazy", "json"),
    }
