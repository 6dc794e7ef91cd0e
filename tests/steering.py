"""Make a model write given text: its output head is made to prefer the text's tokens, one per
forward pass, so a test can force what a trained model would write (a stop string, a
calculator call) on the tiny model."""

from __future__ import annotations


def steer(loaded, monkeypatch, text: str) -> dict[str, int]:
    """From now on the model's first forward passes pick `text`'s tokens, then it runs free.
    Returns counts that move as it runs: 'n', forward passes so far; 'tokens', the text's."""
    ids = loaded.tokenizer(text, add_special_tokens=False)["input_ids"]
    calls = {"n": 0, "tokens": len(ids)}
    original = loaded.model.forward

    def steered(*args, **kwargs):
        out = original(*args, **kwargs)
        if calls["n"] < len(ids):
            out.logits[:, -1, ids[calls["n"]]] = 1e4
        calls["n"] += 1
        return out

    monkeypatch.setattr(loaded.model, "forward", steered)
    return calls
