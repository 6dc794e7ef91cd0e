"""Unit conversion: "Convert 5 mile to meter." -> 8046.72.

Questions come from a deterministic generator over six families of units. Each family has one
table of unit sizes in a base unit, so every answer is value * size(from) / size(to). The
generator's templates double as parsers: that is how `reference_reasoning` recovers a
question's conversion without storing anything beside [question, answer] in the data files.

Four splits: `train`, `valid` (same generator, held out) and `shifted`, built to differ from
train so that it measures conversion rather than recall of the generator: phrasings no train
question uses (SHIFTED_TEMPLATES), values train never has (integers 11-9999 and beyond,
decimals with 1-3 digits, values below 0.1) and unit spellings train never uses. The fourth,
`broad`, is training data that cannot be memorised: values spread log-uniformly over
0.001-1e6 and phrasings composed from frames, yet nothing of shifted's (its phrasings,
spellings or conversions).

Five reasoning formats for cot: 'reference', one multiplication by the full factor ("1 qt =
946.353 mL. 9 * 946.353 = 8517.18."), 'units', the same with each number's unit
written beside it ("9 qt = 9 * 946.353 mL = 8517.18 mL."), 'partials' (the default), the units
chain with its product worked digit by digit and the decimal point placed by an estimate,
'scratchpad', the product in digit-sized steps with powers of ten (both
engine.tasks.scratchpad), and 'calculator', the same product handed to a calculator
(engine.tasks.calculator), whose accuracy is reported apart from the pure reasoning formats'.
"""

from __future__ import annotations

import math
import os
from decimal import Decimal
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

from engine import datasets, scoring
from engine.core.dataset_files import HELD_OUT_SPLITS, SELECTION_SPLIT, dataset_parts, dataset_path
from engine.core.errors import DataError, SpecError
from engine.core.spec import DEFAULT_REASONING, STEP_CHECKED_REASONING
from engine.tasks.base import ChatTokenizer, Example
from engine.tasks.calculator import CALL_END, CALL_START, result_text
from engine.tasks.numbers import format_number
from engine.tasks.scratchpad import leading_digits, partial_products, plain, scratchpad, steps_exact

MODES = ("direct", "cot")
# 5000 train questions: a 135M model answering directly (SFT) needs that many to learn the
# factors; with 1000 it scored 0.10-0.36 on valid for 3 to 20 epochs (see README).
TRAIN_SIZE, VALID_SIZE = 5000, 200
SHIFTED_SIZE = 200
BROAD_SIZE = 8000
# The selection split: half of valid's kind, half of broad's, none trained on, for choosing
# between models (the pipeline's stages) without looking at the reported splits.
SELECTION_SIZE = 200
# Valid is questions 1000-1199 of the generated stream and train all the others, so the
# valid split stayed the same when the train split grew from 1000 questions.
VALID_START = 1000
# Answers outside this range are skipped: the checker rounds to 3 decimals, so a target near 0
# could never be matched, and huge numbers only test digit copying.
MIN_ANSWER, MAX_ANSWER = 0.01, 1e9
# Shifted and broad answers start at 0.1: below it the checker's rounding to 3 decimals moves a
# correct answer by up to 5%, so a right answer (or the scratchpad's rounded one) could be
# scored wrong.
SHIFTED_MIN_ANSWER = 0.1
# Broad values: log-uniform over 10**-3 .. 10**6, at most 3 decimals.
BROAD_EXPONENTS = (-3, 6)


@dataclass(frozen=True)
class Unit:
    key: str
    size: float  # in the family's base unit
    names: tuple[tuple[str, str], ...]  # (singular, plural) spellings, the first one canonical
    abbrevs: tuple[str, ...] = ()  # the first one is used in reasoning
    held_out: tuple[str, ...] = ()  # spellings only the shifted split uses

    def label(self, plural: bool) -> str:
        """The short form used in reasoning: the main abbreviation, else the canonical name."""
        return self.abbrevs[0] if self.abbrevs else self.names[0][plural]

    def spellings(self) -> tuple[str, ...]:
        """The spellings the train and valid generator uses."""
        return tuple(s for pair in self.names for s in pair) + self.abbrevs

    def all_spellings(self) -> tuple[str, ...]:
        return self.spellings() + self.held_out


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
        Unit("kilometer", 1000.0, _names("kilometer", "kilometre"), ("km",), ("kms",)),
        # No 'in' abbreviation: "What is 5 in in cm?" reads badly and parses ambiguously.
        Unit("inch", 0.0254, _names("inch/inches")),
        Unit("foot", 0.3048, _names("foot/feet"), ("ft",)),
        Unit("yard", 0.9144, _names("yard"), ("yd",), ("yds",)),
        Unit("mile", 1609.344, _names("mile"), ("mi",)),
    ),
    "mass": (  # gram
        Unit("milligram", 0.001, _names("milligram"), ("mg",)),
        Unit("gram", 1.0, _names("gram"), ("g",), ("gms",)),
        Unit("kilogram", 1000.0, _names("kilogram"), ("kg",), ("kgs", "kilo", "kilos")),
        Unit("metric ton", 1e6, _names("metric ton", "tonne")),
        Unit("ounce", 28.349523125, _names("ounce"), ("oz",)),
        Unit("pound", 453.59237, _names("pound"), ("lb", "lbs")),
    ),
    "time": (  # second; months are left out, their length is a matter of convention
        Unit("second", 1.0, _names("second"), ("s", "sec"), ("secs",)),
        Unit("minute", 60.0, _names("minute"), ("min",), ("mins",)),
        Unit("hour", 3600.0, _names("hour"), ("h", "hr"), ("hrs",)),
        Unit("day", _DAY, _names("day")),
        Unit("week", 7 * _DAY, _names("week"), (), ("wk", "wks")),
        Unit("year", _YEAR, _names("year"), ("yr",), ("yrs",)),
        Unit("decade", 10 * _YEAR, _names("decade")),
        Unit("century", 100 * _YEAR, _names("century/centuries")),
    ),
    "volume": (  # millilitre; US customary
        Unit("milliliter", 1.0, _names("milliliter", "millilitre"), ("mL", "ml")),
        Unit("liter", 1000.0, _names("liter", "litre"), ("L",), ("l",)),
        Unit(
            "cubic centimeter", 1.0, _names("cubic centimeter"), ("cc", "cm^3"),
            ("cubic centimetre", "cubic centimetres"),
        ),
        Unit("fluid ounce", 29.5735295625, _names("fluid ounce"), ("fl oz",), ("fluid oz",)),
        Unit("cup", 236.5882365, _names("cup")),
        Unit("pint", 473.176473, _names("pint"), ("pt",), ("pts",)),
        Unit("quart", 946.352946, _names("quart"), ("qt",), ("qts",)),
        Unit("gallon", 3785.411784, _names("gallon"), ("gal",), ("gals",)),
    ),
    "speed": (  # metre per second
        Unit(
            "meter per second", 1.0, _names("meter per second/meters per second"), ("m/s",),
            ("metre per second", "metres per second"),
        ),
        Unit(
            "kilometer per hour", 1000 / 3600,
            _names("kilometer per hour/kilometers per hour"), ("km/h", "kph"), ("km/hr",),
        ),
        Unit("mile per hour", 0.44704, _names("mile per hour/miles per hour"), ("mph",), ("mi/h",)),
        Unit("foot per second", 0.3048, _names("foot per second/feet per second"), ("ft/s",), ("fps",)),
    ),
    "data": (  # bit; decimal prefixes (1 kB = 1000 bytes)
        Unit("bit", 1.0, _names("bit")),
        Unit("byte", 8.0, _names("byte"), ("B",)),
        Unit("kilobyte", 8e3, _names("kilobyte"), ("kB",), ("KB",)),
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
# Phrasings only the shifted split uses, so it shows whether a model reads questions it was
# never shown. None of them matches a train question (a test checks).
SHIFTED_TEMPLATES = (
    "How many {b} is {v} {a}?",
    "What's {v} {a} in {b}?",
    "{v} {a} = how many {b}?",
    "I have {v} {a}. How many {b} is that?",
    "{v} {a} to {b}?",
    "Find the number of {b} in {v} {a}.",
    "How many {b} would {v} {a} be?",
    "Tell me {v} {a} in {b}.",
    "Convert {v} {a} into {b}, please.",
    "What do you get when you convert {v} {a} to {b}?",
    "{v} {a} in {b}?",
    "Calculate {v} {a} in {b}.",
    "A quantity of {v} {a} is how many {b}?",
    "Work out how many {b} there are in {v} {a}.",
)

# Broad questions are a prefix, a core phrasing and a suffix, each drawn on its own: with the
# cores below plus TEMPLATES that is 4 x 8 x 38 = 1216 phrasings. No core is a shifted one,
# and no broad question parses as one (a test checks).
BROAD_PREFIXES = ("", "Quick question: ", "Hi! ", "Homework: ", "Q: ", "Unit conversion: ", "Hey! ", "Help me: ")
BROAD_SUFFIXES = ("", " Thanks!", " Show your steps.", " Thank you.")
BROAD_CORES = (
    "How many {b} are there in {v} {a}?",
    "What is {v} {a} expressed in {b}?",
    "{v} {a} converts to how many {b}?",
    "Please express {v} {a} in {b}.",
    "I need {v} {a} in {b}.",
    "What number of {b} equals {v} {a}?",
    "Translate {v} {a} into {b}.",
    "{v} {a} makes how many {b}?",
    "How much is {v} {a} in {b}?",
    "Could you convert {v} {a} to {b}?",
    "What would {v} {a} be in {b}?",
    "Find {v} {a} in {b}.",
    "In {b}, how much is {v} {a}?",
    "Compute {v} {a} in {b}.",
    "Determine how many {b} are in {v} {a}.",
    "What is the {b} equivalent of {v} {a}?",
    "How many {b} do {v} {a} make?",
    "Can you turn {v} {a} into {b}?",
    "Show {v} {a} in {b}.",
    "{v} {a}: how many {b}?",
)

# Values outside the generator's range (12, 20, 90), so these questions are in neither split.
WORKED_QUESTIONS = (
    ("How many grams are in 12 kg?", 12000.0),
    ("Convert 20 inches to centimeters.", 50.8),
    ("What is 90 seconds in minutes?", 1.5),
)
# Each reasoning format's instructions for the cot prompt.
INSTRUCTIONS = {
    "reference": (
        "You convert units. Be concise: give the conversion factor, do one calculation, "
        "then put the final number in <answer></answer>."
    ),
    "units": (
        "You convert units. Be concise: give the conversion factor, write the value with its unit, "
        "do one calculation, then put the final number in <answer></answer>."
    ),
    "scratchpad": (
        "You convert units. Write the factor and the value as 3 digits times a power of ten, "
        "multiply digit by digit, add the partial products, shift by the powers of ten, "
        "then put the final number in <answer></answer>."
    ),
    "partials": (
        "You convert units. Give the conversion factor, write the value with its unit and the "
        "calculation, multiply digit by digit, add the partial products, place the decimal point "
        "by an estimate, then put the final number in <answer></answer>."
    ),
    "calculator": (
        "You convert units. Be concise: give the conversion factor, write the calculation "
        "between << and >> for the calculator, then put its result in <answer></answer>."
    ),
}

_DECIMAL_VALUES = (0.25, 0.5, 0.75, 1.5, 2.5, 3.5, 4.5, 7.5)
_FAMILY_OF = {unit.key: family for family, units in FAMILIES.items() for unit in units}
_UNIT_BY_SPELLING = {
    spelling: unit for units in FAMILIES.values() for unit in units for spelling in unit.all_spellings()
}


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


def _pick(
    rng: random.Random, units: tuple[Unit, ...], draw=_value, min_answer: float = MIN_ANSWER
) -> tuple[Unit, Unit, float, float]:
    """A conversion within one family, its value from `draw`, whose answer lies in
    [min_answer, MAX_ANSWER]."""
    while True:
        source, target = rng.sample(units, 2)
        value = draw(rng)
        answer = float(f"{value * source.size / target.size:.12g}")  # drop float-noise digits
        if min_answer <= abs(answer) <= MAX_ANSWER:
            return source, target, value, answer


def _distinct_examples(
    n: int, draw: Callable[[], tuple[str, float] | None], seen: Iterable[str] = ()
) -> list[Example]:
    """`n` examples with distinct questions, none of them in `seen`, each from `draw` (which
    returns None for a draw it rejects). Every generator shares this loop, so a split is the
    same for the same seed and a draw that keeps failing ends in an error, not a hang."""
    seen = set(seen)
    examples: list[Example] = []
    attempts = 0
    while len(examples) < n:
        attempts += 1
        if attempts > 100 * n + 1000:
            raise ValueError(f"could not generate {n} distinct questions; ask for fewer")
        drawn = draw()
        if drawn is not None and drawn[0] not in seen:
            seen.add(drawn[0])
            examples.append(Example(*drawn))
    return examples


def generate_questions(n: int, seed: int) -> list[Example]:
    """`n` distinct questions, the same ones for the same seed, families equally likely."""
    rng = random.Random(seed)
    families = list(FAMILIES.values())

    def draw() -> tuple[str, float]:
        source, target, value, answer = _pick(rng, families[rng.randrange(len(families))])
        question = rng.choice(TEMPLATES).format(
            v=format_number(value), a=_spell(source, rng, value != 1), b=_spell(target, rng, True)
        )
        return question, answer

    return _distinct_examples(n, draw)


def _shifted_value(rng: random.Random) -> float:
    """Values train never has: integers 11-9999, decimals with 1-3 digits, values below 0.1 and
    from 10000 up. A decimal ends in a non-zero digit, so it is never an integer; one that
    equals a train decimal (2.5) is drawn again."""
    while True:
        roll = rng.random()
        if roll < 0.3:
            value = float(rng.randint(11, 99))
        elif roll < 0.5:
            value = float(rng.randint(100, 9999))
        elif roll < 0.8:
            digits = rng.randint(1, 3)
            whole = rng.choice((rng.randint(0, 9), rng.randint(10, 99), rng.randint(100, 999)))
            value = whole + (rng.randint(0, 10 ** (digits - 1) - 1) * 10 + rng.randint(1, 9)) / 10**digits
        elif roll < 0.9:
            digits = rng.randint(2, 3)
            value = rng.randint(1, 10 ** (digits - 1) - 1) / 10**digits
        else:
            value = float(rng.choice((rng.randint(10, 999) * 1000, rng.randint(10_000, 999_999))))
        value = float(f"{value:.12g}")
        if value not in _DECIMAL_VALUES:
            return value


def _value_text(value: float, rng: random.Random) -> str:
    """The value as written in a shifted question: thousands are grouped with commas half the
    time ('12,500'), a format train never shows."""
    text = format_number(value)
    if value >= 1000 and rng.random() < 0.5:
        whole, _, fraction = text.partition(".")
        text = f"{int(whole):,}" + (f".{fraction}" if fraction else "")
    return text


def _spell_shifted(unit: Unit, rng: random.Random, plural: bool) -> str:
    """A held-out spelling half the time where the unit has one; otherwise an abbreviation or
    the bare singular name ("56 gram"), which train uses least."""
    roll = rng.random()
    if unit.held_out and roll < 0.5:
        return rng.choice(unit.held_out)
    if unit.abbrevs and roll < 0.75:
        return rng.choice(unit.abbrevs)
    singular, plural_name = rng.choice(unit.names)
    return plural_name if plural and roll < 0.85 else singular


def _combo(question: str) -> tuple[str, str, float]:
    """(source, target, value) of a generated question."""
    c = parse_question(question)
    return c.source.key, c.target.key, c.value


def _worked_combos() -> set[tuple[str, str, float]]:
    """(source, target, value) of the worked examples: a model sees them in every cot prompt."""
    return {_combo(question) for question, _ in WORKED_QUESTIONS}


def generate_shifted(n: int, seed: int) -> list[Example]:
    """`n` distinct shifted questions, the same ones for the same seed, families equally likely:
    held-out phrasings, values and spellings, never a worked example's conversion."""
    rng = random.Random(f"shifted:{seed}")
    families = list(FAMILIES.values())
    excluded = _worked_combos()

    def draw() -> tuple[str, float] | None:
        source, target, value, answer = _pick(
            rng, families[rng.randrange(len(families))], _shifted_value, SHIFTED_MIN_ANSWER
        )
        if (source.key, target.key, value) in excluded:
            return None
        question = rng.choice(SHIFTED_TEMPLATES).format(
            v=_value_text(value, rng), a=_spell_shifted(source, rng, value != 1), b=_spell_shifted(target, rng, True)
        )
        return question, answer

    return _distinct_examples(n, draw)


def _broad_value(rng: random.Random) -> float:
    """Log-uniform over 10**-3 .. 10**6 with 1-4 significant digits and at most 3 decimals;
    from 1 up, an integer 40% of the time."""
    while True:
        x = 10 ** rng.uniform(*BROAD_EXPONENTS)
        value = float(f"{x:.{rng.randint(1, 4)}g}")
        if value >= 1 and rng.random() < 0.4:
            value = float(round(value))
        value = float(f"{round(value, 3):.12g}")
        if value > 0:
            return value


def generate_broad(
    n: int, seed: int, excluded_questions: set[str] = frozenset(), *,
    stream: str = "broad", excluded_combos: set[tuple[str, str, float]] = frozenset(),
) -> list[Example]:
    """`n` distinct broad questions, the same ones for the same seed and `stream`, families
    equally likely: composed phrasings, train spellings, log-uniform values; never a shifted or
    worked example's conversion, nor one in `excluded_combos` ((source, target, value)), nor a
    question in `excluded_questions` (valid's). The selection split is another stream of the
    same kind."""
    rng = random.Random(f"{stream}:{seed}")
    families = list(FAMILIES.values())
    excluded = _worked_combos() | {_combo(e.question) for e in generate_shifted(SHIFTED_SIZE, seed)} | set(excluded_combos)
    cores = TEMPLATES + BROAD_CORES

    def draw() -> tuple[str, float] | None:
        source, target, value, answer = _pick(
            rng, families[rng.randrange(len(families))], _broad_value, SHIFTED_MIN_ANSWER
        )
        if (source.key, target.key, value) in excluded:
            return None
        core = rng.choice(cores).format(
            v=_value_text(value, rng), a=_spell(source, rng, value != 1), b=_spell(target, rng, True)
        )
        return rng.choice(BROAD_PREFIXES) + core + rng.choice(BROAD_SUFFIXES), answer

    return _distinct_examples(n, draw, excluded_questions)


def write_data(directory: str | os.PathLike, seed: int = 0) -> tuple[Path, ...]:
    """Write train.json, valid.json, shifted.json, broad.json and selection.json, which share no
    question text. Byte-for-byte reproducible for a given seed.

    Selection interleaves questions of valid's kind (the generator's, from its stream after
    valid's) with questions of broad's kind whose conversions no other split has: a model chosen
    on it is chosen for both what valid measures and what shifted measures, without either."""
    directory = Path(directory)
    generated = generate_questions(TRAIN_SIZE + VALID_SIZE + SELECTION_SIZE, seed)
    valid_end = VALID_START + VALID_SIZE
    paths = train, valid, shifted, broad, selection = tuple(
        directory / f"{split}.json" for split in ("train", "valid", "shifted", "broad", "selection")
    )
    train_examples = generated[:VALID_START] + generated[valid_end : TRAIN_SIZE + VALID_SIZE]
    valid_examples = generated[VALID_START:valid_end]
    broad_examples = generate_broad(BROAD_SIZE, seed, {e.question for e in valid_examples})
    datasets.save_examples(train, train_examples)
    datasets.save_examples(valid, valid_examples)
    datasets.save_examples(shifted, generate_shifted(SHIFTED_SIZE, seed))
    datasets.save_examples(broad, broad_examples)
    seen = train_examples + valid_examples + broad_examples
    taken = {e.question for e in broad_examples} | {q for q, _ in WORKED_QUESTIONS}
    like_valid = [e for e in generated[TRAIN_SIZE + VALID_SIZE :] if e.question not in taken]
    like_broad = generate_broad(
        SELECTION_SIZE // 2, seed, {e.question for e in seen}, stream="selection",
        excluded_combos={_combo(e.question) for e in seen},
    )
    datasets.save_examples(selection, datasets.interleave([like_valid[: SELECTION_SIZE // 2], like_broad]))
    return paths


class Conversion(NamedTuple):
    template: int  # index into ALL_TEMPLATES: TEMPLATES, SHIFTED_TEMPLATES, then BROAD_CORES
    value: float
    source: Unit
    target: Unit

    @property
    def phrasing(self) -> str:
        """'train', 'held-out' (a shifted phrasing) or 'broad' (a broad core)."""
        if self.template < len(TEMPLATES):
            return "train"
        return "held-out" if self.template < len(TEMPLATES) + len(SHIFTED_TEMPLATES) else "broad"

    @property
    def held_out_phrasing(self) -> bool:
        return self.phrasing == "held-out"


ALL_TEMPLATES = TEMPLATES + SHIFTED_TEMPLATES + BROAD_CORES


def _template_pattern(template: str) -> re.Pattern[str]:
    units = "|".join(re.escape(s) for s in sorted(_UNIT_BY_SPELLING, key=len, reverse=True))
    value = r"(?P<v>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
    groups = {"{v}": value, "{a}": f"(?P<a>{units})", "{b}": f"(?P<b>{units})"}
    parts = re.split(r"(\{[vab]\})", template)
    return re.compile("".join(groups.get(p, re.escape(p)) for p in parts))


_PATTERNS = [_template_pattern(t) for t in ALL_TEMPLATES]


def parse_question(question: str) -> Conversion | None:
    """The conversion a generated (train, valid, shifted or broad) question asks for; None for
    any other phrasing. A broad question's prefix and suffix are set aside first."""
    for prefix in BROAD_PREFIXES:
        for suffix in BROAD_SUFFIXES:
            if question.startswith(prefix) and question.endswith(suffix) and len(question) > len(prefix + suffix):
                found = _parse_core(question[len(prefix) : len(question) - len(suffix)])
                if found:
                    return found
    return None


def _parse_core(text: str) -> Conversion | None:
    for index, pattern in enumerate(_PATTERNS):
        match = pattern.fullmatch(text)
        if match:
            source, target = _UNIT_BY_SPELLING[match["a"]], _UNIT_BY_SPELLING[match["b"]]
            if _FAMILY_OF[source.key] == _FAMILY_OF[target.key]:
                return Conversion(index, float(match["v"].replace(",", "")), source, target)
    return None


def value_range(value: float) -> str:
    """The value bucket a question falls in; train has only '1-10' and 'decimal'."""
    if value >= 10_000:
        return "10000+"
    if value < 0.1:
        return "below-0.1"
    if not value.is_integer():
        return "decimal"
    return "1-10" if value <= 10 else "11-99" if value <= 99 else "100-9999"


def category(example: Example) -> dict[str, str]:
    """Unit family, value range and phrasing ('train', 'held-out' or 'broad') of a generated
    question; nothing for a question the templates do not parse."""
    conversion = parse_question(example.question)
    if conversion is None:
        return {}
    return {
        "family": _FAMILY_OF[conversion.source.key],
        "values": value_range(conversion.value),
        "phrasing": conversion.phrasing,
    }


def _checked_conversion(example: Example) -> Conversion:
    """The conversion `example` asks for, its answer checked; a DataError when either fails."""
    conversion = parse_question(example.question)
    if conversion is None:
        raise DataError(
            f"No reference reasoning for {example.question!r}: not a generated phrasing; "
            "give the row a reasoning column or use direct mode."
        )
    ratio = conversion.source.size / conversion.target.size
    if not math.isclose(conversion.value * ratio, example.answer, rel_tol=1e-3):
        raise DataError(
            f"Question {example.question!r} has answer {example.answer}, but the conversion "
            f"gives {format_number(conversion.value * ratio)}; fix the row."
        )
    return conversion


def reference_reasoning(example: Example) -> str:
    """The one-step chain, e.g. for "How many grams are in 12 kg?": '1 kg = 1000 g. 12 * 1000 =
    12000. <answer>12000</answer>'. Converting to a bigger unit by a round factor divides
    instead: '1 min = 60 s. 90 / 60 = 1.5. ...'."""
    factor, expression = _one_calculation(_checked_conversion(example))
    answer = format_number(example.answer)
    return f"{factor} {expression} = {answer}. <answer>{answer}</answer>"


def units_reasoning(example: Example) -> str:
    """The default chain: the reference chain with each number's unit beside it, e.g. '1 min =
    60 s. 90 s = 90 / 60 min = 1.5 min. <answer>1.5</answer>'. Why: a fifth of the reference
    chains that state the right factor on shifted then multiply where they should divide or the
    reverse; here the value's unit is written just before the operator is chosen, and the factor
    line holds the same unit on one side. Trained alike, it scored as the reference chain on
    valid and 0.335 against 0.235 on shifted (README)."""
    conversion = _checked_conversion(example)
    factor, expression = _one_calculation(conversion)
    answer = format_number(example.answer)
    source, target = conversion.source.label(conversion.value != 1), conversion.target.label(example.answer != 1)
    value = format_number(conversion.value)
    return f"{factor} {value} {source} = {expression} {target} = {answer} {target}. <answer>{answer}</answer>"


def calculator_reasoning(example: Example) -> str:
    """The reference chain with its calculation handed to the calculator
    (engine.tasks.calculator), e.g. '1 kg = 1000 g. <<12 * 1000>> = 12000. <answer>12000</answer>';
    the result and the answer are the calculator's."""
    factor, expression = _one_calculation(_checked_conversion(example))
    result = result_text(expression)
    return f"{factor} {CALL_START}{expression}{CALL_END} = {result}. <answer>{result}</answer>"


def _one_calculation(conversion: Conversion) -> tuple[str, str]:
    """The reference chain's two steps for a checked conversion, the factor ('1 kg = 1000 g.')
    and the calculation ('12 * 1000')."""
    value, source, target = conversion.value, conversion.source, conversion.target
    ratio = source.size / target.size
    v = format_number(value)
    if ratio < 1 and _is_round(1 / ratio):
        factor = format_number(1 / ratio)
        return f"1 {target.label(False)} = {factor} {source.label(True)}.", f"{v} / {factor}"
    factor = format_number(ratio)
    return f"1 {source.label(False)} = {factor} {target.label(ratio != 1)}.", f"{v} * {factor}"


def scratchpad_reasoning(example: Example) -> str:
    """The product in digit-sized steps (engine.tasks.scratchpad), e.g. for "What is 90 seconds
    in minutes?": '1 s ~ 167e-4 min. 90 = 9e1. 9*1=9. 9*6=54. 9*7=63. 90+54=144.
    1440+63=1503. 1503e(-4+1) = 1.503. <answer>1.503</answer>'. Its answer is the rounded
    factor's, within about 1% of the exact one."""
    conversion = _checked_conversion(example)
    if conversion.value == 0:
        raise DataError(
            f"No scratchpad for {example.question!r}: it converts 0; give the row a reasoning "
            "column or use --reasoning reference."
        )
    source, target = conversion.source, conversion.target
    ratio = source.size / target.size
    chain, answer = scratchpad(
        Decimal(f"{conversion.value:.12g}"), Decimal(f"{ratio:.12g}"), source.label(False), target.label(ratio != 1)
    )
    return f"{chain} <answer>{plain(answer)}</answer>"


def partials_reasoning(example: Example) -> str:
    """The units chain with its product worked by hand (engine.tasks.scratchpad.partial_products),
    e.g. for "Convert 38.1 yd to mm.": '1 yd = 914.4 mm. 38.1 yd = 38.1 * 914.4 mm. 381*9=3429.
    381*1=381. 381*4=1524. 34290+381=34671. 346710+1524=348234. About 40 * 900 = 36000, so
    34823.4 mm. <answer>34823.4</answer>'. A division by a round factor becomes a product by its
    inverse's first 3 digits ('90 s = 90 / 60 min = 90 * 0.0166 min.'). Why: with the right
    conversion on 0.84 of shifted questions, the units chain's one-step products (right 0.6 of
    the time) were the cap; the scratchpad did its digit products right but lost the factor and
    the power of ten, so this one keeps the units chain's factor line and places the decimal
    point by an estimate. Its answer is within 2% of the exact one."""
    conversion = _checked_conversion(example)
    if conversion.value == 0:
        raise DataError(
            f"No partial products for {example.question!r}: it converts 0; give the row a reasoning "
            "column or use --reasoning units."
        )
    factor_line, expression = _one_calculation(conversion)
    ratio = conversion.source.size / conversion.target.size
    value = Decimal(format_number(conversion.value))
    dividing = "/" in expression
    if dividing:
        digits, exponent = leading_digits(Decimal(f"{ratio:.12g}"))
        multiplier = Decimal(digits).scaleb(exponent)
    else:
        multiplier = Decimal(format_number(ratio))
    steps, product = partial_products(value, multiplier)
    source = conversion.source.label(conversion.value != 1)
    target = conversion.target.label(product != 1)
    calculation = f"{expression} {target}"
    if dividing:
        calculation += f" = {plain(value)} * {plain(multiplier)} {target}"
    answer = plain(product)
    return f"{factor_line} {plain(value)} {source} = {calculation}. {steps} {target}. <answer>{answer}</answer>"


def _is_round(x: float) -> bool:
    """Whether `x` is exact in 4 significant digits (60, 3.6, 5280): dividing by such a
    factor reads naturally, while dividing by 2.20462 is harder than multiplying by 0.453592."""
    return math.isclose(float(f"{x:.4g}"), x, rel_tol=1e-9)


# The task's reasoning formats by the name the `reasoning` setting gives (engine.core.spec).
REASONING = {
    "reference": reference_reasoning, "units": units_reasoning, "scratchpad": scratchpad_reasoning,
    "calculator": calculator_reasoning, "partials": partials_reasoning,
}


def worked_examples(reasoning: str) -> tuple[tuple[str, str], ...]:
    """The cot prompt's worked examples, (question, reasoning), in the format `reasoning`."""
    return tuple((q, REASONING[reasoning](Example(q, answer))) for q, answer in WORKED_QUESTIONS)


WORKED_EXAMPLES = worked_examples(DEFAULT_REASONING)


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise SpecError("mode", f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")


class UnitConversionTask:
    name = "unit_conversion"
    held_out_splits = HELD_OUT_SPLITS
    selection_split = SELECTION_SPLIT
    write_data = staticmethod(write_data)
    category = staticmethod(category)

    def __init__(self, reasoning: str = DEFAULT_REASONING) -> None:
        if reasoning not in REASONING:
            raise SpecError("reasoning", f"unknown reasoning {reasoning!r}; choose one of {', '.join(REASONING)}")
        self.reasoning = reasoning
        self.worked_examples = worked_examples(reasoning)
        self.calculator = reasoning == "calculator"
        self.steps_exact = steps_exact if reasoning in STEP_CHECKED_REASONING else None

    def dataset_path(self, dataset: str) -> Path:
        return dataset_path(dataset)

    def load(self, dataset: str) -> list[Example]:
        if len(parts := dataset_parts(dataset)) > 1:
            return datasets.interleave([self.load(part) for part in parts])
        return datasets.load_examples(self.dataset_path(dataset))

    def prompt(self, question: str, mode: str, tokenizer: ChatTokenizer) -> str:
        _check_mode(mode)
        if mode == "direct":
            return f"{question} <answer>"
        messages = [{"role": "system", "content": INSTRUCTIONS[self.reasoning]}]
        for worked_question, reasoning in self.worked_examples:
            messages.append({"role": "user", "content": worked_question})
            messages.append({"role": "assistant", "content": reasoning})
        messages.append({"role": "user", "content": question})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def completion(self, example: Example, mode: str) -> str:
        _check_mode(mode)
        if mode == "direct":
            return f"{format_number(example.answer)}</answer>"
        if example.reasoning is None:
            return REASONING[self.reasoning](example)
        if "<answer>" in example.reasoning:
            return example.reasoning
        return f"{example.reasoning} <answer>{format_number(example.answer)}</answer>"

    def parse(self, output: str, mode: str) -> float:
        _check_mode(mode)
        # A direct prompt ends with the opening tag, so the continuation starts inside it.
        return scoring.parse_answer("<answer>" + output if mode == "direct" else output)

    def is_correct(self, answer: float, target: float) -> bool:
        return scoring.is_correct(answer, target)
