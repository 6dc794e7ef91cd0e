"""The run spec: one dataclass that describes every kind of run.

The CLI builds its options from it, the store saves it as JSON, the engine runs it and the
TUI's launch form edits it. Each setting is declared once, here, with its help text, the kinds
it applies to, its allowed values and its per-kind defaults.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from typing import Any

from engine.core.errors import SpecError
from engine.core.ids import run_id_or_none

KINDS = ("eval", "sft", "rollout", "rft", "pipeline", "grpo")
TRAINING_KINDS = ("sft", "rft", "pipeline", "grpo")
GENERATING_KINDS = ("eval", "rollout", "pipeline", "grpo")
# The reasoning format whose chains train and prompt unless a run names another: partial
# products scored higher than the units chain on shifted and on valid, trained alike, at twice
# the tokens per chain (README, "Partial products").
DEFAULT_REASONING = "partials"
# The reasoning formats whose every step the task can check (engine.tasks.scratchpad.steps_exact),
# so the 'steps' reward can use them.
STEP_CHECKED_REASONING = ("partials",)
DEFAULT_MODEL = "smollm2-135m"
# What rft0 trains on when --dataset is train: train's questions interleaved with broad's.
DEFAULT_REFERENCE = "train+broad"


STAGE_DEFAULT = None
"""A pipeline setting left unset takes, in each stage, that stage's kind's default."""


def setting(
    default: Any,
    help: str,
    kinds: tuple[str, ...] = KINDS,
    *,
    choices: tuple[Any, ...] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    by_kind: dict[str, Any] | None = None,
    parent: str | None = None,
) -> Any:
    """Declare one setting. Its default is `by_kind[kind]` where given, else `default`; either
    may be a function of the spec (for defaults that follow another setting, such as the
    generation length following the prompt mode). `parent` marks a setting that may name
    another run: the run kind or artifact it must provide ('rollout' or 'adapter')."""
    meta = {
        "help": help,
        "kinds": kinds,
        "choices": choices,
        "minimum": minimum,
        "maximum": maximum,
        "fallback": default,
        "by_kind": by_kind or {},
        "parent": parent,
    }
    return field(default=None, metadata=meta)


@dataclass(frozen=True)
class RunSpec:
    kind: str = setting("eval", "What the run does.", choices=KINDS)
    name: str = setting("", "A short label shown in run lists (optional).")
    model: str = setting(
        DEFAULT_MODEL,
        "Model: 'smollm2-135m' (embedded), a Hugging Face id or a local directory.",
    )
    adapter: str = setting(
        "",
        "LoRA adapter to start from: a run id or a peft directory (empty: none).",
        ("eval", "rollout", "sft", "rft", "grpo"),
        parent="adapter",
    )
    task: str = setting("unit_conversion", "Task: dataset, prompts, parser and checker.")
    dataset: str = setting(
        "train",
        "Questions: 'train', 'broad', 'valid', 'shifted', 'selection', named splits joined by '+' (interleaved, "
        "e.g. 'train+broad') or a JSON file path.",
        ("eval", "sft", "rollout", "pipeline", "grpo"),
        by_kind={"eval": "valid"},
    )
    data: str = setting(
        "", "RFT data: a rollout run id or a JSON file of [question, answer, reasoning].", ("rft",),
        parent="rollout",
    )
    mode: str = setting(
        "cot",
        "Prompt format: 'cot' (chat template, reasoning) or 'direct' (question then <answer>).",
        ("eval", "rollout"),
        choices=("cot", "direct"),
    )
    limit: int = setting(
        0, "Use only the first N questions or training rows (0: all).", minimum=0, maximum=10_000_000
    )
    offset: int = setting(
        0,
        "Skip the first N questions or training rows; --limit then counts from there (e.g. new "
        "questions for a run that goes on from another's adapter).",
        ("eval", "sft", "rollout", "rft", "grpo"), minimum=0, maximum=10_000_000,
    )
    batch_size: int = setting(
        32, "Sequences per forward pass.", minimum=1, maximum=4096,
        by_kind={"rollout": 64, "pipeline": STAGE_DEFAULT},
    )
    max_new_tokens: int = setting(
        lambda spec: default_max_new_tokens(spec.mode, spec.reasoning),
        "Generation length cap (default: 24 for direct, 160 for cot, 224 for cot with partials).", GENERATING_KINDS, minimum=1,
        maximum=4096, by_kind={"pipeline": STAGE_DEFAULT},
    )
    temperature: float = setting(
        0.0,
        "Sampling temperature (0: greedy).",
        GENERATING_KINDS,
        minimum=0.0,
        maximum=10.0,
        by_kind={"rollout": 0.8, "pipeline": STAGE_DEFAULT, "grpo": 1.0},
    )
    top_p: float = setting(
        1.0, "Nucleus sampling mass.", GENERATING_KINDS, minimum=0.01, maximum=1.0,
        by_kind={"rollout": 0.95, "pipeline": STAGE_DEFAULT},
    )
    num_samples: int = setting(
        10, "Samples per question (k) in rollouts.", ("rollout", "pipeline"), minimum=1,
        maximum=1000,
    )
    seed: int = setting(0, "Random seed for sampling, shuffling and initialisation.", minimum=0,
        maximum=1_000_000_000,
    )
    device: str = setting("auto", "Device: auto, cpu or cuda.", choices=("auto", "cpu", "cuda"))
    dtype: str = setting(
        "auto",
        "Weights dtype: auto (bf16 on a GPU or CPU with native bf16, e.g. AVX-512 BF16; else fp32), float32 or bfloat16.",
        choices=("auto", "float32", "bfloat16"),
    )
    lora_rank: int = setting(8, "LoRA rank.", TRAINING_KINDS, minimum=1, maximum=1024)
    lora_alpha: int = setting(
        lambda spec: 4 * spec.lora_rank, "LoRA alpha (default: 4 x rank).", TRAINING_KINDS, minimum=1,
        maximum=100_000,
    )
    learning_rate: float = setting(
        2e-3, "Peak learning rate.", TRAINING_KINDS, minimum=0.0, maximum=1.0, by_kind={"grpo": 1e-4}
    )
    lr_schedule: str = setting(
        "cosine", "Learning-rate schedule after warm-up.", TRAINING_KINDS,
        choices=("cosine", "linear", "constant"),
    )
    warmup_ratio: float = setting(
        0.05, "Share of steps spent warming up.", TRAINING_KINDS, minimum=0.0, maximum=1.0
    )
    # Direct answers need more passes than reasoning chains: on 5000 questions SFT scored 0.535
    # on valid after 3 epochs and 0.80 after 6, while RFT reached 0.89 after 3 (README).
    epochs: int = setting(
        3, "Passes over the training data.", ("sft", "rft", "pipeline"), minimum=1, maximum=100,
        by_kind={"sft": 6, "pipeline": STAGE_DEFAULT},
    )
    grad_accum: int = setting(
        1, "Micro-batches accumulated per optimiser step.", ("sft", "rft", "pipeline"), minimum=1,
        maximum=1024,
    )
    eval_interval: int = setting(
        50, "Score the valid and shifted subsets every N steps (0: only at the end).",
        TRAINING_KINDS, minimum=0, maximum=10_000_000,
    )
    eval_limit: int = setting(
        50, "Questions of valid and of shifted scored while training (and of selection at the end), the first N of each (0: all).",
        TRAINING_KINDS, minimum=0, maximum=10_000_000,
    )
    log_interval: int = setting(5, "Write training metrics every N steps.", TRAINING_KINDS, minimum=1,
        maximum=10_000_000,
    )
    checkpoint_interval: int = setting(
        100, "Save a resumable checkpoint every N steps (0: only on stop).",
        TRAINING_KINDS, minimum=0, maximum=10_000_000,
    )
    rounds: int = setting(
        1, "Expert-iteration rounds (rollout then RFT) after SFT and rft0 (0: none, the pipeline ends there).",
        ("pipeline",), minimum=0, maximum=100,
    )
    # A round goes on from a trained adapter, often on a few hundred rows; at the full rate a
    # fresh AdamW state undoes what rft0 learnt (README, "Valid and shifted").
    round_learning_rate: float = setting(
        lambda spec: spec.learning_rate / 4,
        "Pipeline: peak learning rate of each round's RFT, which goes on from a trained adapter "
        "(default: a quarter of --learning-rate).",
        ("pipeline",), minimum=0.0, maximum=1.0,
    )
    rollout_limit: int = setting(
        1000,
        "Pipeline: questions rolled out each round, the next block of that many each round (0: "
        "all); rollouts are the slowest stage on a CPU.",
        ("pipeline",), minimum=0, maximum=10_000_000,
    )
    # Per-sequence seeds make a rollout's samples the same at any batch size, so its batch trades
    # only memory for speed, and a GPU runs 1024 rows a step for little more than 64. The
    # pipeline's --batch-size also sets the training stages' batch, whose rates were tuned at 32.
    rollout_batch_size: int = setting(
        STAGE_DEFAULT,
        "Pipeline: sequences per forward pass in the rollouts (default: --batch-size if given, else "
        "the rollout's own); raise it on a GPU.",
        ("pipeline",), minimum=1, maximum=4096,
    )
    rollout_model: str = setting("", "Pipeline: model that samples the rollouts, a teacher (empty: the trained model).", ("pipeline",))
    # The rounds sample the questions after the last one rft0 trained on: on rft0's own questions
    # the chains a round earns mostly repeat the reference chains it learnt from. broad.json, whose
    # values and phrasings the generator never makes, holds the questions rft0 leaves by default.
    rollout_dataset: str = setting(
        lambda spec: "broad" if spec.dataset == "train" else spec.dataset,
        "Pipeline: questions the rollouts and GRPO sample, from the one after the last rft0 trains on "
        "(default: broad when --dataset is train, else --dataset; empty: --dataset).",
        ("pipeline",),
    )
    # rft0 on the generator's questions alone learnt its values, not the arithmetic: trained
    # alike, train+broad scored nearly three times as well on shifted (README, "More broad
    # questions"). A dataset of the user's own is theirs to mix.
    reference_dataset: str = setting(
        lambda spec: DEFAULT_REFERENCE if spec.dataset == "train" else spec.dataset,
        "Pipeline: questions whose reference reasoning rft0 trains on (default: train+broad when "
        "--dataset is train, else --dataset; empty: --dataset).",
        ("pipeline",),
    )
    # train+broad interleaves train's 5000 questions with broad's 8000: its first 10000 rows hold
    # train's and broad's first 5000, which leaves broad's last 3000 new to the rounds.
    reference_limit: int = setting(
        lambda spec: spec.limit or (10_000 if spec.reference_dataset == DEFAULT_REFERENCE else 0),
        "Pipeline: rft0 trains on the first N questions of --reference-dataset (default: --limit, else "
        "10000 of train+broad, leaving broad's last 3000 for the rounds; 0: all).",
        ("pipeline",), minimum=0, maximum=10_000_000,
    )
    bootstrap: str = setting(
        "reference",
        "Pipeline: 'reference' first trains on the task's reference reasoning for "
        "--reference-dataset's questions, then rolls out; 'rollout' rolls out straight from the SFT model.",
        ("pipeline",), choices=("reference", "rollout"),
    )
    reasoning: str = setting(
        DEFAULT_REASONING,
        "Format of the task's reasoning in cot prompts and training targets: 'partials' (the factor, "
        "the calculation with each number's unit beside it, the product worked digit by digit and "
        "the decimal point placed by an estimate), 'units' (the factor, then one calculation with "
        "each number's unit beside it; half the tokens), 'reference' (the same without "
        "the units), 'scratchpad' (the factor and value to 3 digits, "
        "digit-by-digit partial products, sums, then the power of ten) or 'calculator' (the "
        "calculation written for a calculator the engine runs; not pure reasoning, so report it apart).",
        ("eval", "rollout", "rft", "pipeline", "grpo"), choices=("partials", "units", "reference", "scratchpad", "calculator"),
    )
    # -- grpo: online RL on the task's reward (engine/grpo.py) --
    grpo_steps: int = setting(
        0,
        "Pipeline: GRPO steps after the last RFT round, at GRPO's own learning rate and "
        "temperature (0: no GRPO stage).",
        ("pipeline",), minimum=0, maximum=100_000,
    )
    steps: int = setting(
        100, "GRPO: optimiser steps, each on a fresh batch of sampled groups.", ("grpo",), minimum=1, maximum=100_000
    )
    questions_per_step: int = setting(8, "GRPO: train questions per step (B).", ("grpo",), minimum=1, maximum=1024)
    group_size: int = setting(
        8, "GRPO: completions sampled per question (G); advantages compare them.", ("grpo",), minimum=2, maximum=256
    )
    mu: int = setting(1, "GRPO: policy updates on each sampled batch (mu).", ("grpo",), minimum=1, maximum=16)
    clip_eps: float = setting(
        0.2, "GRPO: PPO clip range below and, unless clip_eps_high is set, above 1.", ("grpo",), minimum=0.0, maximum=1.0
    )
    clip_eps_high: float = setting(
        0.0, "GRPO: upper clip range (0: clip_eps; DAPO uses 0.28).", ("grpo",), minimum=0.0, maximum=10.0
    )
    beta: float = setting(
        0.0,
        "GRPO: weight of the KL penalty to the reference, the starting policy: the base model, or "
        "the starting adapter with --adapter (0: none; the KL is logged either way).",
        ("grpo",), minimum=0.0, maximum=100.0,
    )
    scale_rewards: str = setting(
        "none", "GRPO: 'none' (Dr.GRPO: reward minus group mean) or 'group' (also divide by the group std).",
        ("grpo",), choices=("none", "group"),
    )
    format_reward: float = setting(
        0.0, "GRPO: reward added to a completion whose answer parses (0: the checker alone).", ("grpo",), minimum=0.0,
        maximum=1.0,
    )
    # The checker allows 5%, so a wrong low digit in a partial product still passes it: half of a
    # trained model's right answers on shifted rested on one, and expert iteration and GRPO on
    # such chains both lost shifted accuracy (README, "Online RL").
    reward: str = setting(
        "answer",
        "Rollouts and GRPO: what earns a chain its place in the RFT data or GRPO's reward: 'answer' "
        "(the checker) or 'steps' (the checker, and every worked step exact; partials reasoning only).",
        ("rollout", "grpo", "pipeline"), choices=("answer", "steps"),
    )
    mask_truncated: str = setting(
        "off", "GRPO: 'on' leaves completions cut by max_new_tokens out of the loss.", ("grpo",), choices=("on", "off")
    )
    dynamic_filter: str = setting(
        "on", "GRPO: 'on' leaves groups whose rewards are all equal (no signal) out of the loss.",
        ("grpo",), choices=("on", "off"),
    )

    processes: int = setting(
        1, "Processes per machine (ranks). Above 1 the run is launched through `accelerate "
        "launch`: one GPU per rank when GPUs are present, otherwise CPU ranks with gloo.",
        minimum=1, maximum=1024,
    )
    machines: int = setting(
        1, "Machines taking part; the others join with `python -m engine join` (docs/scaling.md).",
        minimum=1, maximum=1024,
    )
    join_timeout: int = setting(
        600, "Runs on several machines: seconds to wait for every machine to join before the run fails.",
        minimum=1, maximum=86_400,
    )

    explicit: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    """The settings given when the spec was made; every other one holds its kind's default."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SpecError("kind", f"unknown kind {self.kind!r}; choose one of {', '.join(KINDS)}")
        settings = [f for f in dataclasses.fields(self) if "kinds" in f.metadata and f.name != "kind"]
        given = frozenset(f.name for f in settings if getattr(self, f.name) is not None)
        object.__setattr__(self, "explicit", given)
        for f in settings:
            if f.name in given:
                object.__setattr__(self, f.name, _check(f, getattr(self, f.name)))
        # Constant defaults first, then those computed from other settings.
        unset = [f for f in settings if f.name not in given]
        for f in sorted(unset, key=lambda f: callable(default_rule(f, self.kind))):
            rule = default_rule(f, self.kind)
            object.__setattr__(self, f.name, rule(self) if callable(rule) else rule)
        if self.reasoning == "calculator" and (self.kind == "grpo" or (self.kind == "pipeline" and self.grpo_steps)):
            raise SpecError(
                "reasoning",
                "GRPO trains on the tokens the model wrote, and the calculator's results are not "
                "the model's; use --reasoning units, reference, partials or scratchpad for GRPO.",
            )
        if self.reward == "steps" and self.reasoning not in STEP_CHECKED_REASONING:
            raise SpecError(
                "reward",
                f"'steps' checks the steps of {', '.join(STEP_CHECKED_REASONING)} chains, not {self.reasoning} "
                f"ones; use --reasoning {STEP_CHECKED_REASONING[0]} or --reward answer.",
            )

    # -- views used by the CLI, the store and the app -------------------------------------

    @classmethod
    def settings(cls, kind: str) -> list[dataclasses.Field]:
        """The settings that apply to `kind`, in declaration order (kind itself excluded)."""
        return [
            f for f in dataclasses.fields(cls)
            if f.name != "kind" and kind in f.metadata.get("kinds", ())
        ]

    @classmethod
    def default_for(cls, kind: str, name: str) -> Any:
        """The value `name` takes in a `kind` run that leaves it unset (None: each stage's own)."""
        return getattr(_defaults(kind), name)

    @classmethod
    def from_text(cls, kind: str, values: dict[str, str]) -> "RunSpec":
        """Build a spec from text values (a form's inputs); empty text leaves a setting unset."""
        by_name = {f.name: f for f in dataclasses.fields(cls)}
        parsed = {}
        for name, text in values.items():
            if name not in by_name or "kinds" not in by_name[name].metadata:
                raise SpecError(name, "no such setting")
            if text.strip() != "":
                parsed[name] = parse_text(by_name[name], text)
        return cls(kind=kind, **parsed)

    def to_dict(self) -> dict[str, Any]:
        """Every setting with its effective value."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "explicit"}

    def explicit_values(self) -> dict[str, Any]:
        """The settings given when the spec was made, without the kind."""
        return {name: getattr(self, name) for name in sorted(self.explicit)}

    def to_json(self) -> str:
        """What the store keeps: the kind and the settings given. Defaults are not frozen in,
        so a pipeline's stages and every display resolve them for their own kind."""
        return json.dumps({"kind": self.kind} | self.explicit_values(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunSpec":
        """Load a saved spec. Settings unknown to this version are dropped; the 0 that older
        versions saved for 'the default' in some settings means unset."""
        known = {f.name for f in dataclasses.fields(cls) if "kinds" in f.metadata}
        values = {
            k: v for k, v in data.items()
            if k in known and not (k in LEGACY_DEFAULT_ZERO and v == 0)
        }
        return cls(**values)

    def replace(self, **changes: Any) -> "RunSpec":
        """A spec with `changes` on top of the settings given. A new kind keeps only the given
        settings that apply to it and brings its own defaults for the rest."""
        kind = changes.get("kind", self.kind)
        applying = {f.name for f in self.settings(kind)}
        kept = {name: value for name, value in self.explicit_values().items() if name in applying}
        return RunSpec(**{"kind": kind} | kept | changes)

    def relevant(self) -> dict[str, Any]:
        """The settings that matter for this spec's kind, with their effective values."""
        return {"kind": self.kind} | {f.name: getattr(self, f.name) for f in self.settings(self.kind)}

    def parent_run_id(self) -> int | None:
        """The run this one builds on: the first parent setting that names a run id."""
        for f in dataclasses.fields(self):
            if f.metadata.get("parent") and self.kind in f.metadata["kinds"]:
                run_id = run_id_or_none(getattr(self, f.name))
                if run_id is not None:
                    return run_id
        return None


def setting_text(value: Any) -> str:
    """A setting's effective value as shown to people (`None`: a pipeline's per-stage default)."""
    return "each stage's default" if value is None else str(value)


PARENT_SETTINGS: dict[str, str] = {
    f.name: f.metadata["parent"] for f in dataclasses.fields(RunSpec) if f.metadata.get("parent")
}
"""Settings that may name another run, with what that run must provide (the store's
`parent_candidates` lists the runs that do; the first one set becomes the parent run)."""

LEGACY_DEFAULT_ZERO = ("epochs", "max_new_tokens", "lora_alpha")


def default_rule(f: dataclasses.Field, kind: str) -> Any:
    """A setting's default for a kind: a value, or a function of the spec for a default that
    follows other settings (lora_alpha follows lora_rank)."""
    meta = f.metadata
    return meta["by_kind"][kind] if kind in meta["by_kind"] else meta["fallback"]


@functools.cache
def _defaults(kind: str) -> RunSpec:
    return RunSpec(kind=kind)


def default_max_new_tokens(mode: str, reasoning: str = DEFAULT_REASONING) -> int:
    """Room for a direct answer, or for a reasoning chain and its answer. Partial products
    write about twice the tokens of the other formats (186 at most on broad.json, against 79)."""
    if mode == "direct":
        return 24
    return 224 if reasoning == "partials" else 160


def parse_text(f: dataclasses.Field, text: str) -> Any:
    """Convert a text value to the field's type, with a one-line error naming the field."""
    kind = f.type if isinstance(f.type, str) else f.type.__name__
    text = text.strip()
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        raise SpecError(f.name, f"expected {'an integer' if kind == 'int' else 'a number'}, got {text!r}") from None
    return text


def _check(f: dataclasses.Field, value: Any) -> Any:
    kind = f.type if isinstance(f.type, str) else f.type.__name__
    meta = f.metadata
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise SpecError(f.name, f"expected an integer, got {value!r}")
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f.name, f"expected a number, got {value!r}")
        if isinstance(value, int) and value.bit_length() > 1024:
            raise SpecError(f.name, f"must be at most {meta['maximum']:g} (got {_shown(value)})")
        value = float(value)
        if value != value:
            raise SpecError(f.name, "expected a number, got NaN")
    elif not isinstance(value, str):
        raise SpecError(f.name, f"expected text, got {value!r}")
    elif not _is_text(value):
        raise SpecError(f.name, f"{value!r} holds a character that is not text (a lone surrogate); retype it")
    if meta["choices"] and value not in meta["choices"]:
        raise SpecError(f.name, f"{value!r} is not one of {', '.join(map(str, meta['choices']))}")
    if meta["minimum"] is not None and value < meta["minimum"]:
        raise SpecError(f.name, f"must be at least {meta['minimum']:g} (got {_shown(value)})")
    if meta["maximum"] is not None and value > meta["maximum"]:
        raise SpecError(f.name, f"must be at most {meta['maximum']:g} (got {_shown(value)})")
    return value


def _shown(value: float) -> str:
    """A number for an error message; an int too large for a float cannot be formatted with :g."""
    return "a number past 64 bits" if isinstance(value, int) and value.bit_length() > 64 else f"{value:g}"


def _is_text(value: str) -> bool:
    """Encodable Unicode: a command line's undecodable bytes arrive as lone surrogates, which
    SQLite (and any terminal) cannot take."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
