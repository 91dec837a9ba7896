"""The byte-bounded memo: what hostile input can make a worker keep."""

from __future__ import annotations

from webhook.core.memo import Memo


def sized(entries: int = 100, max_bytes: int = 6400) -> Memo[str, str]:
    return Memo(lambda key, value: len(key) + len(value), entries=entries, max_bytes=max_bytes)


def test_an_answer_is_remembered_and_a_none_answer_too() -> None:
    memo: Memo[str, str | None] = Memo(lambda k, v: len(k), entries=10, max_bytes=640)
    calls: list[str] = []

    def compute(key: str) -> str | None:
        calls.append(key)
        return None

    assert memo.get("a", compute) is None
    assert memo.get("a", compute) is None
    assert calls == ["a"]


def test_an_entry_over_a_64th_of_the_memo_is_answered_but_never_kept() -> None:
    memo = sized(max_bytes=6400)  # entries up to 100 bytes are kept
    memo.get("small", lambda key: "x" * 10)
    assert memo.get("huge", lambda key: "x" * 200) == "x" * 200
    assert memo.size == (1, 15)


def test_the_memo_forgets_everything_at_either_bound() -> None:
    by_entries = sized(entries=3)
    for key in ("a", "b", "c", "d"):
        by_entries.get(key, lambda k: "v")
    assert by_entries.size == (1, 2)
    by_bytes = sized(entries=100, max_bytes=640)  # 10 bytes per entry at most
    for key in range(70):
        by_bytes.get(f"{key:04d}", lambda k: "vvvvv")
    assert by_bytes.size[1] <= 640
