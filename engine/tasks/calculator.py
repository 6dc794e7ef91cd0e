"""The calculator of the 'calculator' reasoning format (program-aided reasoning).

The model writes an arithmetic expression between `<<` and `>>`; generation pauses there, the
engine evaluates it and appends ` = <result>`, and the model goes on from that text
(engine.tool_generation). Accuracy with it measures whether the model picks the right
conversion, not whether it can multiply, so its numbers are reported apart from the pure
reasoning formats'.

Expressions are parsed, never `eval`ed: numbers, + - * / and parentheses only, so model output
cannot run code or ask for a huge power.
"""

from __future__ import annotations

import ast
import math
import operator

from engine.tasks.numbers import format_number

CALL_START, CALL_END = "<<", ">>"
MAX_EXPRESSION = 80  # characters; the unit task's expressions are ~15
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


class CalculatorError(ValueError):
    """An expression the calculator does not take."""


def evaluate_expression(expression: str) -> float:
    """The value of `expression`, e.g. '9 * 946.353' -> 8517.177; thousands separators
    ('168,000') are read as digits. CalculatorError for anything else."""
    text = expression.strip().replace(",", "")
    if not text or len(text) > MAX_EXPRESSION:
        raise CalculatorError(f"expression of {len(text)} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as error:
        raise CalculatorError(f"not arithmetic: {text!r}") from error
    return _value(tree.body)


def _value(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        try:
            value = _BINARY[type(node.op)](_value(node.left), _value(node.right))
        except ZeroDivisionError as error:
            raise CalculatorError("division by zero") from error
        if not math.isfinite(value):
            raise CalculatorError("result out of range")
        return value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_value(node.operand))
    raise CalculatorError(f"not arithmetic: {ast.unparse(node)!r}")


def result_text(expression: str) -> str:
    """The calculator's answer to `expression` as the chain shows it: '8517.18', or 'error'
    when the calculator does not take it."""
    try:
        return format_number(evaluate_expression(expression))
    except CalculatorError:
        return "error"


def calculate(text: str) -> str:
    """What the engine appends after a generated `text` that ends with a call: ' = <result>'
    for its last `<<expression>>` (see result_text)."""
    start = text.rfind(CALL_START)
    if start < 0 or not text.endswith(CALL_END):
        return " = error"
    return f" = {result_text(text[start + len(CALL_START): -len(CALL_END)])}"
