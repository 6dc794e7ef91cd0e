"""Unit conversion: "Convert 5 mile to meter." -> 8046.72.

Questions come from a deterministic generator over six families of units. Each family has one
table of unit sizes in a base unit, so every answer is value * size(from) / size(to). The
generator's templates double as parsers: that is how `reference_reasoning` recovers a
question's conversion without storing anything beside [question, answer] in the data files.
"""

from __future__ import annotations

import math
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import engine
from engine import datasets, scoring
from engine.core.errors import DataError, SpecError
from engine.tasks.base import ChatTokenizer, Example

MODES = ("direct", "cot")
DATA_DIR_ENV = "REASONLAB_DATA_DIR"
# 5000 train questions: a 135M model answering directly (SFT) needs that many to learn the
# factors; with 1000 it scored 0.10-0.36 on valid for 3 to 20 epochs (see README).
TRAIN_SIZE, VALID_SIZE = 5000, 200
# Valid is questions 1000-1199 of the generated stream and train all the others, so the
# valid split stayed the same when the train split grew from 1000 questions.
VALID_START = 1000
# Answers outside this range are skipped: the checker rounds to 3 decimals, so a target near 0
# could never be matched, and huge numbers only test digit copying.
MIN_ANSWER, MAX_ANSWER = 0.01, 1e9


@dataclass(frozen=True)
class Unit:
    key: str
    size: float  # in the family's base unit
    names: tuple[tuple[str, str], ...]  # (singular, plural) spellings, the first one canonical
    abbrevs: tuple[str, ...] = ()  # the first one is used in reasoning

    def label(self, plural: bool) -> str:
        """The short form used in reasoning: the main abbreviation, else the canonical name."""
        return self.abbrevs[0] if self.abbrevs else self.names[0][plural]

    def spellings(self) -> tuple[str, ...]:
        return tuple(s for pair in self.names for s in pair) + self.abbrevs


def _names(*words: str) -> tuple[tuple[str, str], ...]:
    """'foot/feet' -> (('foot', 'feet'),); a word without '/' takes an 's' plural."""
    return tuple(tuple(w.split("/")) if "/" in w else (w, w + "s") for w in words)


_DAY = 86400.0
_YEAR = 365.2422 * _DAY

FAMILIES: dict[str, tuple[Unit, ...]] = {
    "length": (  # metre
        Unit("millimeter", 0.001, _names("millimeter", "millimetre"), ("mm",)),
        Unit("centimeter", 0.01, _names("centimeter", "centimetre"), ("cm",)),
        Unit("meter", 1.0, _names("meter", "metre"), ("m",)),
        Unit("kilometer", 1000.0, _names("kilometer", "kilometre"), ("km",)),
        # No 'in' abbreviation: "What is 5 in in cm?" reads badly and parses ambiguously.
        Unit("inch", 0.0254, _names("inch/inches")),
        Unit("foot", 0.3048, _names("foot/feet"), ("ft",)),
        Unit("yard", 0.9144, _names("yard"), ("yd",)),
        Unit("mile", 1609.344, _names("mile"), ("mi",)),
    ),
    "mass": (  # gram
        Unit("milligram", 0.001, _names("milligram"), ("mg",)),
        Unit("gram", 1.0, _names("gram"), ("g",)),
        Unit("kilogram", 1000.0, _names("kilogram"), ("kg",)),
        Unit("metric ton", 1e6, _names("metric ton", "tonne")),
        Unit("ounce", 28.349523125, _names("ounce"), ("oz",)),
        Unit("pound", 453.59237, _names("pound"), ("lb", "lbs")),
    ),
    "time": (  # second; months are left out, their length is a matter of convention
        Unit("second", 1.0, _names("second"), ("s", "sec")),
        Unit("minute", 60.0, _names("minute"), ("min",)),
        Unit("hour", 3600.0, _names("hour"), ("h", "hr")),
        Unit("day", _DAY, _names("day")),
        Unit("week", 7 * _DAY, _names("week")),
        Unit("year", _YEAR, _names("year"), ("yr",)),
        Unit("decade", 10 * _YEAR, _names("decade")),
        Unit("century", 100 * _YEAR, _names("century/centuries")),
    ),
    "volume": (  # millilitre; US customary
        Unit("milliliter", 1.0, _names("milliliter", "millilitre"), ("mL", "ml")),
        Unit("liter", 1000.0, _names("liter", "litre"), ("L",)),
        Unit("cubic centimeter", 1.0, _names("cubic centimeter"), ("cc", "cm^3")),
        Unit("fluid ounce", 29.5735295625, _names("fluid ounce"), ("fl oz",)),
        Unit("cup", 236.5882365, _names("cup")),
        Unit("pint", 473.176473, _names("pint"), ("pt",)),
        Unit("quart", 946.352946, _names("quart"), ("qt",)),
        Unit("gallon", 3785.411784, _names("gallon"), ("gal",)),
    ),
    "speed": (  # metre per second
        Unit("meter per second", 1.0, _names("meter per second/meters per second"), ("m/s",)),
        Unit(
            "kilometer per hour", 1000 / 3600,
            _names("kilometer per hour/kilometers per hour"), ("km/h", "kph"),
        ),
        Unit("mile per hour", 0.44704, _names("mile per hour/miles per hour"), ("mph",)),
        Unit("foot per second", 0.3048, _names("foot per second/feet per second"), ("ft/s",)),
    ),
    "data": (  # bit; decimal prefixes (1 kB = 1000 bytes)
        Unit("bit", 1.0, _names("bit")),
        Unit("byte", 8.0, _names("byte"), ("B",)),
        Unit("kilobyte", 8e3, _names("kilobyte"), ("kB",)),
        Unit("megabyte", 8e6, _names("megabyte"), ("MB",)),
        Unit("gigabyte", 8e9, _names("gigabyte"), ("GB",)),
    ),
}

# {v}: the value, {a}: the unit converted from (agrees with the value), {b}: the unit asked for.
TEMPLATES = (
    "How many {b} are there per {v} {a}?",
    "What does {v} {a} equal in {b} terms?",
    "Convert {v} {a} to {b}.",
    "How many {b} are in {v} {a}?",
    "What is {v} {a} in {b}?",
    "Express {v} {a} in {b}.",
    "{v} {a} is how many {b}?",
    "How many {b} make up {v} {a}?",
    "If a quantity is {v} {a}, how many {b} is that?",
    "Change {v} {a} into {b}.",
    "What is the equivalent of {v} {a} in {b}?",
    "Please convert {v} {a} into {b}.",
    "{v} {a} equals how many {b}?",
    "How much is {v} {a} when expressed in {b}?",
    "Give the value of {v} {a} in {b}.",
    "Turn {v} {a} into {b}.",
    "How many {b} correspond to {v} {a}?",
    "Rewrite {v} {a} using {b}.",
)

# Values outside the generator's range (12, 20, 90), so these questions are in neither split.
# The reasoning is exactly what `reference_reasoning` writes: short enough for a 135M model.
WORKED_EXAMPLES = (
    ("How many grams are in 12 kg?", "1 kg = 1000 g. 12 * 1000 = 12000. <answer>12000</answer>"),
    (
        "Convert 20 inches to centimeters.",
        "1 inch = 2.54 cm. 20 * 2.54 = 50.8. <answer>50.8</answer>",
    ),
    ("What is 90 seconds in minutes?", "1 min = 60 s. 90 / 60 = 1.5. <answer>1.5</answer>"),
)
INSTRUCTIONS = (
    "You convert units. Be concise: give the conversion factor, do one calculation, "
    "then put the final number in <answer></answer>."
)

_DECIMAL_VALUES = (0.25, 0.5, 0.75, 1.5, 2.5, 3.5, 4.5, 7.5)
_FAMILY_OF = {unit.key: family for family, units in FAMILIES.items() for unit in units}
_UNIT_BY_SPELLING = {
    spelling: unit for units in FAMILIES.values() for unit in units for spelling in unit.spellings()
}


def format_number(x: float) -> str:
    """Up to 6 significant digits (all integer digits are kept), no exponent, no trailing zeros:
    6000.0 -> '6000', 0.0254 -> '0.0254', 2.2046226 -> '2.20462'."""
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    decimals = max(0, 5 - math.floor(math.log10(abs(x))))
    text = f"{x:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _value(rng: random.Random) -> float:
    """Mostly small integers, sometimes a common decimal."""
    return rng.randint(1, 10) if rng.random() < 0.75 else rng.choice(_DECIMAL_VALUES)


def _spell(unit: Unit, rng: random.Random, plural: bool) -> str:
    """An abbreviation about a third of the time, otherwise a name; the plural is mostly used
    when it agrees, but sometimes the bare singular ("5 mile"), as in the course's data."""
    roll = rng.random()
    if unit.abbrevs and roll < 0.35:
        return rng.choice(unit.abbrevs)
    singular, plural_name = rng.choice(unit.names)
    return plural_name if plural and roll < 0.85 else singular


def _pick(rng: random.Random, units: tuple[Unit, ...]) -> tuple[Unit, Unit, float, float]:
    """A conversion within one family whose answer lies in [MIN_ANSWER, MAX_ANSWER]."""
    while True:
        source, target = rng.sample(units, 2)
        value = _value(rng)
        answer = float(f"{value * source.size / target.size:.12g}")  # drop float-noise digits
        if MIN_ANSWER <= abs(answer) <= MAX_ANSWER:
            return source, target, value, answer


def generate_questions(n: int, seed: int) -> list[Example]:
    """`n` distinct questions, the same ones for the same seed, families equally likely."""
    rng = random.Random(seed)
    families = list(FAMILIES.values())
    seen: set[str] = set()
    examples: list[Example] = []
    attempts = 0
    while len(examples) < n:
        attempts += 1
        if attempts > 100 * n + 1000:
            raise ValueError(f"could not generate {n} distinct questions; ask for fewer")
        source, target, value, answer = _pick(rng, families[rng.randrange(len(families))])
        question = rng.choice(TEMPLATES).format(
            v=format_number(value), a=_spell(source, rng, value != 1), b=_spell(target, rng, True)
        )
        if question not in seen:
            seen.add(question)
            examples.append(Example(question, answer))
    return examples


def write_data(directory: str | os.PathLike, seed: int = 0) -> tuple[Path, Path]:
    """Write train.json and valid.json, which share no question text. Byte-for-byte
    reproducible for a given seed."""
    directory = Path(directory)
    examples = generate_questions(TRAIN_SIZE + VALID_SIZE, seed)
    valid_end = VALID_START + VALID_SIZE
    train, valid = directory / "train.json", directory / "valid.json"
    datasets.save_examples(train, examples[:VALID_START] + examples[valid_end:])
    datasets.save_examples(valid, examples[VALID_START:valid_end])
    return train, valid


class Conversion(NamedTuple):
    template: int  # index into TEMPLATES
    value: float
    source: Unit
    target: Unit


def _template_pattern(template: str) -> re.Pattern[str]:
    units = "|".join(re.escape(s) for s in sorted(_UNIT_BY_SPELLING, key=len, reverse=True))
    groups = {"{v}": r"(?P<v>\d+(?:\.\d+)?)", "{a}": f"(?P<a>{units})", "{b}": f"(?P<b>{units})"}
    parts = re.split(r"(\{[vab]\})", template)
    return re.compile("".join(groups.get(p, re.escape(p)) for p in parts))


_PATTERNS = [_template_pattern(t) for t in TEMPLATES]


def parse_question(question: str) -> Conversion | None:
    """The conversion a generated question asks for; None for any other phrasing."""
    for index, pattern in enumerate(_PATTERNS):
        match = pattern.fullmatch(question)
        if match:
            source, target = _UNIT_BY_SPELLING[match["a"]], _UNIT_BY_SPELLING[match["b"]]
            if _FAMILY_OF[source.key] == _FAMILY_OF[target.key]:
                return Conversion(index, float(match["v"]), source, target)
    return None


def reference_reasoning(example: Example) -> str:
    """The formulaic reasoning the worked examples show, e.g. for "How many grams are in
    12 kg?": '1 kg = 1000 g. 12 * 1000 = 12000. <answer>12000</answer>'. Converting to a
    bigger unit by a round factor divides instead: '1 min = 60 s. 90 / 60 = 1.5. ...'."""
    conversion = parse_question(example.question)
    if conversion is None:
        raise DataError(
            f"No reference reasoning for {example.question!r}: not a generated phrasing; "
            "give the row a reasoning column or use direct mode."
        )
    value, source, target = conversion.value, conversion.source, conversion.target
    ratio = source.size / target.size
    if not math.isclose(value * ratio, example.answer, rel_tol=1e-3):
        raise DataError(
            f"Question {example.question!r} has answer {example.answer}, but the conversion "
            f"gives {format_number(value * ratio)}; fix the row."
        )
    v, answer = format_number(value), format_number(example.answer)
    if ratio < 1 and _is_round(1 / ratio):
        factor = format_number(1 / ratio)
        step = f"1 {target.label(False)} = {factor} {source.label(True)}. {v} / {factor}"
    else:
        factor = format_number(ratio)
        step = f"1 {source.label(False)} = {factor} {target.label(ratio != 1)}. {v} * {factor}"
    return f"{step} = {answer}. <answer>{answer}</answer>"


def _is_round(x: float) -> bool:
    """Whether `x` is exact in 4 significant digits (60, 3.6, 5280): dividing by such a
    factor reads naturally, while dividing by 2.20462 is harder than multiplying by 0.453592."""
    return math.isclose(float(f"{x:.4g}"), x, rel_tol=1e-9)


def data_dir() -> Path:
    """Where 'train' and 'valid' live: $REASONLAB_DATA_DIR, else the repository's data folder."""
    override = os.environ.get(DATA_DIR_ENV)
    return Path(override) if override else Path(engine.__file__).resolve().parent.parent / "data"


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise SpecError("mode", f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")


class UnitConversionTask:
    name = "unit_conversion"
    write_data = staticmethod(write_data)

    def dataset_path(self, dataset: str) -> Path:
        return data_dir() / f"{dataset}.json" if dataset in ("train", "valid") else Path(dataset)

    def load(self, dataset: str) -> list[Example]:
        return datasets.load_examples(self.dataset_path(dataset))

    def prompt(self, question: str, mode: str, tokenizer: ChatTokenizer) -> str:
        _check_mode(mode)
        if mode == "direct":
            return f"{question} <answer>"
        messages = [{"role": "system", "content": INSTRUCTIONS}]
        for worked_question, reasoning in WORKED_EXAMPLES:
            messages.append({"role": "user", "content": worked_question})
            messages.append({"role": "assistant", "content": reasoning})
        messages.append({"role": "user", "content": question})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def completion(self, example: Example, mode: str) -> str:
        _check_mode(mode)
        if mode == "direct":
            return f"{format_number(example.answer)}</answer>"
        if example.reasoning is None:
            return reference_reasoning(example)
        if "<answer>" in example.reasoning:
            return example.reasoning
        return f"{example.reasoning} <answer>{format_number(example.answer)}</answer>"

    def parse(self, output: str, mode: str) -> float:
        _check_mode(mode)
        # A direct prompt ends with the opening tag, so the continuation starts inside it.
        return scoring.parse_answer("<answer>" + output if mode == "direct" else output)

    def is_correct(self, answer: float, target: float) -> bool:
        return scoring.is_correct(answer, target)
