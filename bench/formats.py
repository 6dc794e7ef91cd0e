"""Which reasoning format to train: today's reference chain against the units-labelled chain, the
scratchpad and partial products (issue 11), and, apart from the pure reasoning formats, the calculator.

Each arm fine-tunes a fresh LoRA adapter on the base model with `rft` on rows without
reasoning, so the targets are the task's reference chains in the arm's format (what the
pipeline's rft0 stage trains on), with the same number of questions, epochs and settings:

    a  reference   on train  (today's format and data)
    b  reference   on broad  (today's format, values and phrasings that cannot be memorised)
    c  scratchpad  on broad
    d  calculator  on broad  (the engine computes the product: not pure reasoning, a bound on
                              what getting the arithmetic right would give)
    e  units       on broad  (the reference chain with each number's unit beside it; the default)
    f  units       on train  (the default format on the default data, against arm a)
    g  units       on train+broad  (the two interleaved, half of the questions from each: does
                              the generator's data buy valid back without costing shifted?)
    k  partials    on broad  (the units chain with its product worked digit by digit and the
                              decimal point placed by an estimate; the README's arm k)

then scores each adapter with greedy cot on the first --limit questions of valid and of shifted,
as `python -m engine eval --mode cot --adapter RUN --dataset shifted --limit N --reasoning R`
does. The format is chosen by shifted accuracy, never by valid alone. It prints one row per arm:
training samples and wall time, mean tokens per reference chain (the real tokenizer) and per
generated chain, valid and shifted accuracy, the share of chains that state the right factor and
the accuracy of those (recall against arithmetic), then shifted accuracy by value range.

On this CPU, one arm per core side by side (31 min of training for a reference arm, 68 for the
scratchpad, about 5 min of scoring each; the README's table):
    taskset -c 0 env OMP_NUM_THREADS=1 .venv/bin/python bench/formats.py --arms c --questions 1000 --epochs 2 --limit 200
At full scale, on a GPU:
    .venv/bin/python bench/formats.py --questions 5000 --epochs 3 --limit 200 --device cuda
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from engine.core.dataset_files import dataset_parts
from engine.core.errors import ReasonlabError
from engine.core.spec import RunSpec
from engine.core.store import RunStore
from engine.datasets import save_examples
from engine.runner import execute
from engine.tasks.unit_conversion import parse_question

ARMS = {
    "a": ("reference", "train"), "b": ("reference", "broad"), "c": ("scratchpad", "broad"), "d": ("calculator", "broad"),
    "e": ("units", "broad"), "f": ("units", "train"), "g": ("units", "train+broad"), "k": ("partials", "broad"),
}
VALUE_RANGES = ("1-10", "11-99", "100-9999", "10000+", "decimal", "below-0.1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--arms", default="cab", help=f"arms to run, in this order (letters {''.join(ARMS)})")
    parser.add_argument("--questions", type=int, default=240, help="training questions per arm (the first N)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--limit", type=int, default=60, help="valid and shifted questions scored, each")
    parser.add_argument("--batch-size", type=int, default=8, help="training micro-batch")
    parser.add_argument("--eval-batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=RunSpec.default_for("rft", "learning_rate"))
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--db", type=Path, default=None, help="run database (default: a temporary folder)")
    args = parser.parse_args()
    if set(args.arms) - set(ARMS) or not args.arms:
        parser.error(f"--arms: letters from {''.join(ARMS)}, got {args.arms!r}")
    db = args.db or Path(tempfile.mkdtemp(prefix="reasonlab-formats-")) / "runs.db"
    console = Console(stderr=True)
    try:
        store = RunStore(db)
    except ReasonlabError as error:
        console.print(f"error: {error}", highlight=False, markup=False)
        raise SystemExit(1) from None
    console.print(f"runs in {db}", highlight=False)

    table = Table(
        title=f"reasoning formats: rft from the base model, {args.questions} questions x {args.epochs} epochs, "
        f"lr {args.learning_rate:g}, batch {args.batch_size}; cot eval on the first {args.limit} of valid and shifted",
        title_justify="left",
    )
    columns = ("arm", "format", "data", "runs", "train samples", "train s", "tokens/chain", "generated",
               "valid", "shifted", "factor right", "correct | factor right",
               *(f"shifted {r}" for r in VALUE_RANGES))
    for column in columns:
        table.add_column(column, justify="left" if column in ("arm", "format", "data", "runs") else "right")
    for letter in args.arms:
        reasoning, data = ARMS[letter]
        try:
            table.add_row(letter, reasoning, data, *_arm(store, console, args, reasoning, data))
        except ReasonlabError as error:
            console.print(f"arm {letter} failed: {error}", highlight=False, markup=False)
        out = Console()
        # Piped to a file: wide enough for every column (a terminal keeps its own width).
        (out if out.is_terminal else Console(width=220)).print(table)  # the table so far


def _arm(store: RunStore, console: Console, args, reasoning: str, data: str) -> tuple[str, ...]:
    from engine.tasks import get_task

    task = get_task("unit_conversion", reasoning)
    common = {"model": args.model, "device": args.device, "reasoning": reasoning}
    questions = _training_file(task, data, args.questions, store.runs_root)
    train = RunSpec(
        kind="rft", data=str(questions), limit=args.questions, epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.learning_rate, eval_interval=0, eval_limit=1,
        checkpoint_interval=0, name=f"formats {reasoning} on {data}", **common,
    )
    began = time.perf_counter()
    trained = _completed(execute(store, store.create_run(train).id, console=console))
    train_seconds = time.perf_counter() - began
    scores = {}
    for split in ("valid", "shifted"):
        spec = RunSpec(
            kind="eval", mode="cot", adapter=str(trained.id), dataset=split, limit=args.limit,
            batch_size=args.eval_batch_size, **common,
        )
        scores[split] = _completed(execute(store, store.create_run(spec).id, console=console))
    samples = trained.summary["train_examples"] * args.epochs
    shifted = scores["shifted"].summary
    return (
        f"{trained.id},{scores['valid'].id},{scores['shifted'].id}", f"{samples:.0f}", f"{train_seconds:.0f}",
        f"{_chain_tokens(args.model, task, str(questions), args.questions):.1f}",
        f"{_generated_tokens(store, args.model, scores['shifted'].id):.1f}",
        _score(scores["valid"].summary.get("accuracy")), _score(shifted.get("accuracy")),
        *("/".join(_score(factor_scores(store.samples(scores[split].id))[i]) for split in ("valid", "shifted"))
          for i in (0, 1)),
        *(_score(shifted.get(f"accuracy/values={r}")) for r in VALUE_RANGES),
    )


def _training_file(task, data: str, questions: int, folder: Path) -> Path:
    """The questions an arm trains on: a named split's file, or for a joined dataset
    ('train+broad', interleaved) a file of its first questions in `folder`, the database's own
    runs folder (nothing is written outside it)."""
    if len(dataset_parts(data)) == 1:
        return task.dataset_path(data)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"formats-{data}-{questions}.json"
    save_examples(path, task.load(data)[:questions])
    return path


def _completed(run):
    if run.status != "completed":
        raise ReasonlabError(f"run {run.id} ended {run.status}")
    return run


def _chain_tokens(model: str, task, data: str, questions: int) -> float:
    """Mean tokens of the training targets (reference chains with their answer tags)."""
    from engine.model import load_tokenizer

    tokenizer = load_tokenizer(model)
    chains = [task.completion(e, "cot") for e in task.load(data)[:questions]]
    return sum(len(ids) for ids in tokenizer(chains, add_special_tokens=False)["input_ids"]) / len(chains)


def _generated_tokens(store: RunStore, model: str, run_id: int) -> float:
    """Mean tokens of the chains an eval run generated."""
    from engine.model import load_tokenizer

    outputs = [s["output"] for s in store.samples(run_id)]
    ids = load_tokenizer(model)(outputs, add_special_tokens=False)["input_ids"]
    return sum(map(len, ids)) / max(1, len(ids))


_NUMBER = r"(-?[\d.]+(?:e-?\d+)?)"
# '1 qt = 946.353 mL. 9 * 946.353', or with units '1 qt = 946.353 mL. 9 qt = 9 * 946.353 mL'
_REFERENCE_FACTOR = re.compile(rf"^1 .+? = {_NUMBER} .+?\. \S+ (?:[^=]+? = \S+ )?([*/]) ")
_SCRATCHPAD_FACTOR = re.compile(r"^1 .+? [~=] (\d+)e\(?(-?\d+)\)? ")  # '1 yd ~ 914e0 mm.'


def stated_multiplier(output: str) -> float | None:
    """What a chain multiplies the value by, from the factor it states first (any format)."""
    if match := _SCRATCHPAD_FACTOR.match(output):
        return int(match.group(1)) * 10.0 ** int(match.group(2))
    if match := _REFERENCE_FACTOR.match(output):
        factor = float(match.group(1))
        return factor if match.group(2) == "*" else 1 / factor if factor else None
    return None


def factor_scores(samples: list[dict]) -> tuple[float | None, float | None]:
    """Where the chains fail: the share that state the right conversion factor (within 2%, the
    scratchpad rounds it to 3 digits), and the accuracy of those. A low first number is factors
    not recalled; a low second one is arithmetic (or the power-of-ten shift) gone wrong."""
    right = correct = 0
    for sample in samples:
        conversion = parse_question(sample["question"])
        multiplier = stated_multiplier(sample["output"])
        if conversion is None or multiplier is None:
            continue
        if abs(multiplier * conversion.target.size / conversion.source.size - 1) < 0.02:
            right += 1
            correct += bool(sample["correct"])
    return (right / len(samples) if samples else None), (correct / right if right else None)


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    main()
