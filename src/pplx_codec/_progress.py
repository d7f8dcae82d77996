"""The progress report of an embedding call or corpus run: nothing, a
caller's callback, or a tqdm bar counting texts."""

from __future__ import annotations

from collections.abc import Callable

from .results import Usage

#: ``progress(rows_done, rows_total, usage_so_far)``
Progress = Callable[[int, int, Usage], None]


def _nothing(*_) -> None:
    pass


def reporter(progress: bool | Progress, total: int, model: str, usage: Usage | None = None,
             initial: int = 0) -> tuple[Callable[[int], None], Callable[[], None]]:
    """``(update(rows_done), close())`` for ``progress`` False, True (a bar
    "embed MODEL" from ``initial`` of ``total`` texts, with the tokens of
    ``usage`` when given) or a callable (called with the rows done so far,
    ``total`` and ``usage``, or an empty Usage without one)."""
    if not progress:
        return _nothing, _nothing
    if callable(progress):
        state = {"done": initial}
        so_far = Usage() if usage is None else usage

        def call(n: int) -> None:
            state["done"] += n
            progress(state["done"], total, so_far)

        return call, _nothing
    from tqdm.auto import tqdm  # only when a bar is asked for

    bar = tqdm(total=total, initial=initial, unit="text", desc=f"embed {model}", dynamic_ncols=True)
    if usage is None:
        return bar.update, bar.close

    def advance(n: int) -> None:
        bar.update(n)
        bar.set_postfix(tokens=usage.total_tokens, refresh=False)

    return advance, bar.close
