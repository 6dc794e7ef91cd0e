"""Property tests: whatever a dataset file, a spec value or a command line holds, the result is
a valid result or one clear error line, never another exception, and nothing stored is lost.

Example counts come from the hypothesis profile (tests/conftest.py): a few hundred by default,
HYPOTHESIS_PROFILE=ci or long for more."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from engine.cli import main
from engine.core.errors import DataError, SpecError
from engine.core.ids import MAX_ID
from engine.core.spec import KINDS, RunSpec
from engine.core.store import RunStore
from engine.core.text import visible
from engine.tasks import get_task

# Text as hostile input has it: any code point, lone surrogates and controls included.
ANY_TEXT = st.text(st.characters(codec=None, categories=None), max_size=30) | st.text(max_size=30)
NUMBER_TEXT = st.one_of(
    st.integers().map(str),
    st.integers(min_value=2**62, max_value=2**80).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1e-300", "1e400", "-1e400", "²", "٣", "2**70", "-0", "0x10", "1_000", " 5 ", "", "nan", "-inf", "1e9", "0.0"]),
)
VALUE_TEXT = NUMBER_TEXT | ANY_TEXT
JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT


def _one_line(message: str) -> None:
    assert message and "\n" not in message
    message.encode("utf-8")  # printable on any UTF-8 terminal


# -- dataset files -------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=3),
    max_leaves=12,
)
ROW_LIKE = st.lists(st.one_of(JSON_SCALARS, st.integers(1, 6000).map(lambda n: "9" * n)), min_size=1, max_size=4)


def _row_text(row) -> str:
    """JSON for a row; a run of 9s stands for an integer too long for json.dumps to write."""
    return "[" + ", ".join(v if isinstance(v, str) and v.startswith("9") and v.strip("9") == "" else json.dumps(v) for v in row) + "]"


DATASET_TEXT = st.one_of(
    JSON_VALUES.map(json.dumps),
    st.lists(ROW_LIKE | JSON_VALUES.map(lambda v: [v]), max_size=5).map(lambda rows: "[" + ", ".join(map(_row_text, rows)) + "]"),
    st.integers(0, 200_000).map(lambda n: "[" * n + "]" * n),
    ANY_TEXT.map(lambda t: t.encode("utf-8", "surrogatepass").decode("utf-8", "replace")),
)


@pytest.fixture(scope="module")
def dataset_file(tmp_path_factory):
    return tmp_path_factory.mktemp("property-data") / "rows.json"


@given(text=DATASET_TEXT | st.binary(max_size=40).map(lambda b: b.decode("latin-1")))
def test_any_dataset_file_loads_or_is_one_data_error(dataset_file, text):
    dataset_file.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        examples = get_task("unit_conversion").load(str(dataset_file))
    except DataError as exc:
        _one_line(str(exc))
        assert str(dataset_file) in str(exc)
        return
    assert examples
    for example in examples:
        assert example.question.strip() and math.isfinite(example.answer)
        example.question.encode("utf-8")
        if example.reasoning is not None:
            example.reasoning.encode("utf-8")


# -- spec values ---------------------------------------------------------------------------

FIELDS = [f for f in dataclasses.fields(RunSpec) if f.name != "kind" and "kinds" in f.metadata]  # the settings
SETTING_NAMES = st.sampled_from([f.name for f in FIELDS]) | ANY_TEXT
KIND_TEXT = st.sampled_from(KINDS) | ANY_TEXT


def _check_valid(spec: RunSpec) -> None:
    for f in FIELDS:
        value, meta = getattr(spec, f.name), f.metadata
        if value is None:  # a pipeline's setting left to each stage's default
            continue
        if meta["minimum"] is not None:
            assert value >= meta["minimum"]
        if meta["maximum"] is not None:
            assert value <= meta["maximum"] <= MAX_ID
        if isinstance(value, str):
            value.encode("utf-8")
    assert RunSpec.from_dict(json.loads(spec.to_json())) == spec


@given(kind=KIND_TEXT, values=st.dictionaries(SETTING_NAMES, VALUE_TEXT, max_size=4))
def test_spec_from_any_text_is_valid_or_one_spec_error(kind, values):
    try:
        spec = RunSpec.from_text(kind, values)
    except SpecError as exc:
        _one_line(str(exc))
        return
    _check_valid(spec)


@given(
    data=st.dictionaries(
        st.sampled_from(["kind", *(f.name for f in FIELDS)]) | ANY_TEXT,
        JSON_VALUES | st.integers(min_value=-(2**80), max_value=10**400) | st.sampled_from(list(KINDS)),
        max_size=5,
    )
)
def test_spec_from_any_saved_dict_is_valid_or_one_spec_error(data):
    try:
        spec = RunSpec.from_dict(data)
    except SpecError as exc:
        _one_line(str(exc))
        return
    _check_valid(spec)


# -- command lines -------------------------------------------------------------------------

# --processes and --machines are left out: valid values launch ranks through accelerate, and a run
# of several machines waits for the others to join (tests/test_distributed.py covers them).
LAUNCHING = ("processes", "machines")
FLAGS = sorted(
    {"--" + f.name.replace("_", "-") for f in FIELDS if f.name not in LAUNCHING}
    | {"--tag", "--json", "--limit", "--kind", "--status", "--bogus"}
)
COMMANDS = list(KINDS) + ["runs", "show", "start", "resume"]


def _safe(token: str) -> bool:
    """Left out: --db and its abbreviations (they would reach outside the test's database),
    -h/--help (help text and exit 0), and abbreviations of --processes and --machines (see FLAGS)."""
    return not (token in ("--d", "--db") or token.startswith(("--db", "-h", "--h", "--pro", "--mac")))


TOKENS = (st.sampled_from(FLAGS) | VALUE_TEXT).filter(_safe)


def _plausible(f: dataclasses.Field) -> st.SearchStrategy[str]:
    """Values a user would type for this setting, most of them valid."""
    meta = f.metadata
    if meta["choices"]:
        return st.sampled_from([str(c) for c in meta["choices"]])
    if f.type == "int":
        return st.integers(int(meta["minimum"] or 0), int(meta["minimum"] or 0) + 5).map(str)
    if f.type == "float":
        return st.floats(meta["minimum"] or 0.0, meta["maximum"]).map(str)
    return ANY_TEXT.filter(_safe)


@st.composite
def command_lines(draw) -> list[str]:
    """A command, then settings it has with mostly plausible values (so that many runs start),
    then any tokens at all."""
    command = draw(st.sampled_from(COMMANDS))
    if command in KINDS:
        tokens = []
        settings = [f for f in RunSpec.settings(command) if f.name not in LAUNCHING]
        for f in draw(st.lists(st.sampled_from(settings), max_size=3)):
            value = draw(_plausible(f) | VALUE_TEXT.filter(_safe))
            tokens += ["--" + f.name.replace("_", "-"), value]
    else:
        tokens = draw(st.lists(st.integers(0, 3).map(str) | NUMBER_TEXT, max_size=1))  # a run id
    return [command, *tokens, *draw(st.just([]) | st.lists(TOKENS, min_size=1, max_size=3))]


@pytest.fixture(scope="module")
def seeded_store(tmp_path_factory, tiny_model_dir):
    """A database holding one finished run with samples and metrics, which no command may lose."""
    db = tmp_path_factory.mktemp("property-cli") / "runs.db"
    store = RunStore(db)
    run = store.create_run(RunSpec(kind="eval", model=tiny_model_dir, name="[keep]"), tags=["kept"])
    store.add_samples(run.id, [{"step": 0, "idx": 0, "sample": 0, "question": "q", "target": 1.0, "output": "1",
                                "answer": 1.0, "correct": True}])
    store.log_metrics(run.id, [(0, "accuracy", 1.0, 0.0)])
    store.mark_finished(run.id, "completed")
    return db, _snapshot(store, run.id)


def _snapshot(store: RunStore, run_id: int):
    run = store.get_run(run_id)
    return (run.spec, run.status, run.name, run.tags, store.samples(run_id), store.metric_series(run_id, "accuracy"))


def _first_steps(kind: str):
    """A run's cheap first steps: its task, dataset, adapter or RFT data are looked up."""

    def handler(ctx) -> None:
        spec = ctx.spec
        task = get_task(spec.task)
        if spec.adapter:
            ctx.run_artifact(spec.adapter, "adapter", "adapter")
        if kind == "rft" and spec.data:
            ctx.run_artifact(spec.data, "rft_data", "data")
        if kind != "rft":
            task.load(spec.dataset)

    return handler


@pytest.fixture(scope="module")
def quick_runs():
    """Runs take only their first steps, not the model work: this property is about the command
    line and the errors it gives; other tests cover the work. Patched for this module only."""
    patch = pytest.MonkeyPatch()
    patch.setattr("engine.runner._handler", _first_steps)
    patch.setattr("engine.runner.environment", lambda: {})
    yield
    patch.undo()


@given(command_line=command_lines())
def test_any_command_line_succeeds_or_fails_with_one_line(seeded_store, quick_runs, command_line):
    db, before = seeded_store
    argv = [*command_line, "--db", str(db)]
    runs_before = len(RunStore(db).list_runs())
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # allowed by the property; argparse's own exits end here
            code = exc.code
    errors = [line for line in err.getvalue().splitlines() if line.startswith("error:")]
    event(f"exit code {code}")
    assert "Traceback" not in err.getvalue()
    if code == 0:
        assert errors == []
    else:
        assert len(errors) == 1, err.getvalue()
        if "--json" in argv:
            assert "error" in json.loads(out.getvalue().splitlines()[-1])
    store = RunStore(db)
    started = store.list_runs()[: len(store.list_runs()) - runs_before]  # newest first
    for run in started:  # a run that started and then met an error is failed with that line
        assert run.status == ("completed" if code == 0 else "failed")
        if code != 0:
            assert errors[0] == f"error: {visible(run.error)}"
            event("a started run failed")
    assert _snapshot(store, 1) == before
