"""A scratchpad for `value * factor` made of steps a small model can carry out.

Today's reference chain asks for a multi-digit product in one step ("9 * 946.353 = 8517.18"),
which a 135M model gets wrong on values it has not memorised. Small transformers learn
multiplication when it is written out digit by digit (Nye et al. 2021, "Show your work"; Lee
et al. 2023, "Teaching arithmetic to small transformers"), so the scratchpad:

    1 yd ~ 914e0 mm. 38.1 = 381e-1. 381*9=3429. 381*1=381. 381*4=1524.
    34290+381=34671. 346710+1524=348234. 348234e(0-1) = 34823.4. <answer>34823.4</answer>

1. the factor rounded to 3 significant digits, its power of ten apart ('~' when rounded);
2. the value the same way;
3. one partial product per digit of the factor: (at most 3 digits) x (1 digit);
4. running sums, each the previous sum shifted one place plus the next partial product;
5. the shift by the sum of the two powers of ten, then the answer.

Each rounding moves the result by at most 0.5%, so the answer is within about 1% of the exact
one, inside the checker's 5% for every answer from 0.1 up (the checker rounds to 3 decimals,
which costs another 0.5% at 0.1). Every step after the two roundings is exact. Operators are
written without spaces: the tokenizer gives each digit a token, and a space costs one more.

Trained, this scratchpad did its digit products right but lost the factor (its rounded '167e-4'
is a number nobody writes) and the power of ten. `partial_products` is the second design, for
the 'partials' format: the factor as people write it, digits cut rather than rounded, and the
decimal point placed by a one-digit estimate instead of a sum of exponents.
"""

from __future__ import annotations

import re
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal

SIGNIFICANT_DIGITS = 3


def mantissa(x: Decimal, rounding: str = ROUND_HALF_EVEN) -> tuple[int, int]:
    """(m, e) with x ~ m * 10**e, m rounded to 3 significant digits, no trailing zeros:
    914.4 -> (914, 0), 0.0166667 -> (167, -4), 1000 -> (1, 3), 9996 -> (1, 4)."""
    if x <= 0:
        raise ValueError(f"3 significant digits are taken of positive numbers only, not {x}")
    exponent = x.adjusted() - (SIGNIFICANT_DIGITS - 1)
    digits = int(x.scaleb(-exponent).quantize(Decimal(1), rounding=rounding))
    while digits % 10 == 0:
        digits //= 10
        exponent += 1
    return digits, exponent


def long_multiplication(multiplicand: int, multiplier: int) -> tuple[list[str], int]:
    """`multiplicand * multiplier` as written by hand, and the product: one partial product per
    digit of the multiplier ('381*9=3429.'), then running sums, each the previous sum shifted one
    place plus the next partial product ('34290+381=34671.')."""
    steps, partials = [], []
    for digit in str(multiplier):
        partials.append(multiplicand * int(digit))
        steps.append(f"{multiplicand}*{digit}={partials[-1]}.")
    total = partials[0]
    for partial in partials[1:]:
        steps.append(f"{total * 10}+{partial}={total * 10 + partial}.")
        total = total * 10 + partial
    return steps, total


def plain(x: Decimal) -> str:
    """A decimal without exponent or trailing zeros: 348234e-1 -> '34823.4', 12e3 -> '12000'."""
    text = format(x, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def scratchpad(value: Decimal, factor: Decimal, source: str, target: str) -> tuple[str, Decimal]:
    """The chain for `value` `source` in `target`, 1 `source` being `factor` `target`, without
    the answer tags, and the answer it reaches."""
    f_digits, f_exp = mantissa(factor)
    v_digits, v_exp = mantissa(value)
    steps = [
        f"1 {source} {'=' if Decimal(f_digits).scaleb(f_exp) == factor else '~'} {f_digits}e{f_exp} {target}.",
        f"{plain(value)} {'=' if Decimal(v_digits).scaleb(v_exp) == value else '~'} {v_digits}e{v_exp}.",
    ]
    products, total = long_multiplication(v_digits, f_digits)
    steps += products
    shift = f"{f_exp}{'+' if v_exp >= 0 else '-'}{abs(v_exp)}"
    answer = Decimal(total).scaleb(f_exp + v_exp)
    steps.append(f"{total}e({shift}) = {plain(answer)}.")
    return " ".join(steps), answer


def leading_digits(x: Decimal) -> tuple[int, int]:
    """(m, e) with m * 10**e the first 3 significant digits of x, cut rather than rounded and
    without trailing zeros: 914.4 -> (914, 0), 0.0166667 -> (166, -4), 1000 -> (1, 3),
    9996 -> (999, 1). Cutting only copies digits, which a small model does reliably; it moves
    the number by under 1%."""
    return mantissa(x, rounding=ROUND_DOWN)


def one_digit(x: Decimal) -> Decimal:
    """x rounded to one significant digit, for the estimate: 38.1 -> 40, 914.4 -> 900,
    0.0166 -> 0.02, 9.6 -> 10."""
    return x.quantize(Decimal(1).scaleb(x.adjusted()), rounding=ROUND_HALF_UP)


def partial_products(value: Decimal, factor: Decimal) -> tuple[str, Decimal]:
    """The steps of `value * factor` written as a person multiplies by hand, and the product
    they reach: one partial product per digit of the factor's first 3 digits (3 digits by
    1), running sums, then an estimate from one digit of each number that places the decimal
    point:

        381*9=3429. 381*1=381. 381*4=1524. 34290+381=34671. 346710+1524=348234.
        About 40 * 900 = 36000, so 34823.4

    Why the estimate: the scratchpad's shift by a sum of powers of ten ('348234e(0-1)') was
    where its chains went wrong; a product of two one-digit numbers is a step a small model
    already knows, and the digits fit the estimate in only one place (each rounding moves it by
    at most 1.5 times, the places are 10 times apart)."""
    v_digits, v_exp = leading_digits(value)
    f_digits, f_exp = leading_digits(factor)
    steps, total = long_multiplication(v_digits, f_digits)
    v_estimate, f_estimate = one_digit(value), one_digit(factor)
    product = Decimal(total).scaleb(v_exp + f_exp)
    steps.append(
        f"About {plain(v_estimate)} * {plain(f_estimate)} = {plain(v_estimate * f_estimate)}, so {plain(product)}"
    )
    return " ".join(steps), product


# -- reading a generated partials chain back, step by step --

_NUMBER = r"\d+(?:\.\d+)?"
# The calculation and its steps, as `partial_products` writes them after the factor line:
# '= 38.1 * 914.4 mm. 381*9=3429. ... About 40 * 900 = 36000, so 34823.4 mm. <answer>34823.4</answer>'
# (a division: '= 90 / 60 min = 90 * 0.0166 min. ...').
_CALCULATION = re.compile(
    rf"= (?P<value>{_NUMBER}) (?P<op>[*/]) (?P<factor>{_NUMBER}) [^=]*?"
    rf"(?:= (?P=value) \* (?P<inverse>{_NUMBER}) [^=]*?)?\. "
    r"(?P<steps>(?:\d+\*\d=\d+\. )+(?:\d+\+\d+=\d+\. )*)"
    rf"About (?P<a>{_NUMBER}) \* (?P<b>{_NUMBER}) = (?P<c>{_NUMBER}), so (?P<product>{_NUMBER}) "
    rf"[^<]*<answer>(?P<answer>{_NUMBER})</answer>"
)
_PARTIAL = re.compile(r"(\d+)\*(\d)=(\d+)\. ")
_RUNNING_SUM = re.compile(r"(\d+)\+(\d+)=(\d+)\. ")


def _significant(number: str) -> str:
    """A number's digits from its first non-zero one to its last: '0.0150' -> '15', '800' -> '8'."""
    return number.replace(".", "").strip("0")


def steps_exact(chain: str) -> bool:
    """Whether every step of a partials chain follows exactly from the numbers it states: the
    inverse of a divisor cut to 3 digits, each partial product of the value's first 3 digits by
    one of the multiplier's, each running sum, the one-digit estimate, and the product's digits
    and decimal point (which also is the answer). The factor line is not checked here: a wrong
    factor gives a wrong answer, which the checker catches. Why: the checker allows 5%, so a
    wrong low digit ('481*4=1884') still passes it; half of a trained model's right answers on
    shifted rested on such a step (README, "Checking every step"), and a rollout or a
    reward that keeps them teaches the wrong step. A chain not in the partials format is not
    exact."""
    match = _CALCULATION.search(chain)
    if match is None:
        return False
    try:
        value, multiplier = Decimal(match["value"]), Decimal(match["inverse"] or match["factor"])
        if (match["op"] == "/") != (match["inverse"] is not None):
            return False
        if match["op"] == "/" and leading_digits(1 / Decimal(match["factor"])) != leading_digits(multiplier):
            return False
        value_digits, multiplier_digits = leading_digits(value)[0], leading_digits(multiplier)[0]
        partials = [(int(a), int(d), int(p)) for a, d, p in _PARTIAL.findall(match["steps"])]
        # The value's and the multiplier's first digits, in order; a trailing zero written out
        # ('21*8=168. 21*0=0. 21*0=0.' for 8000) is one more right step, not a wrong one.
        if len({a for a, _, _ in partials}) != 1 or _significant(str(partials[0][0])) != str(value_digits):
            return False
        if _significant("".join(str(d) for _, d, _ in partials)) != str(multiplier_digits):
            return False
        if any(a * d != p for a, d, p in partials):
            return False
        sums = [tuple(map(int, s)) for s in _RUNNING_SUM.findall(match["steps"])]
        if len(sums) != len(partials) - 1:
            return False
        total = partials[0][2]
        for (shifted, partial, result), (_, _, expected) in zip(sums, partials[1:]):
            if (shifted, partial, result) != (total * 10, expected, total * 10 + expected):
                return False
            total = result
        a, b, c, product = (Decimal(match[name]) for name in ("a", "b", "c", "product"))
        if (a, b) != (one_digit(value), one_digit(multiplier)) or a * b != c:
            return False
        # The digits fit the estimate in one place only (`partial_products`).
        return _significant(match["product"]) == _significant(str(total)) and 10**-0.5 < product / c < 10**0.5 and product == Decimal(match["answer"])
    except (ArithmeticError, ValueError):  # a zero value or divisor
        return False
