"""The JSON log line: one object per line, fields in the caller's order, never lost."""

from __future__ import annotations

import json
import logging

import pytest
import urllib3

from webhook.logs import JsonFormatter, configure


def record(
    created: float, message: str = "injected 1 secret", **fields: object
) -> logging.LogRecord:
    made = logging.makeLogRecord({"msg": message, "name": "webhook.admission", **fields})
    made.levelname = "INFO"
    made.created = created
    made.msecs = (created - int(created)) * 1000
    return made


def test_a_decision_line_carries_its_fields_in_order() -> None:
    line = JsonFormatter().format(
        record(
            1764640000.25, event="admission.decided", uid="u-1", injected=["a<-r"], dry_run=False
        )
    )
    assert "\n" not in line
    assert list(json.loads(line).items()) == [
        ("ts", "2025-12-02T01:46:40.250Z"),
        ("level", "info"),
        ("logger", "webhook.admission"),
        ("msg", "injected 1 secret"),
        ("event", "admission.decided"),
        ("uid", "u-1"),
        ("injected", ["a<-r"]),
        ("dry_run", False),
    ]


def test_each_line_has_its_own_second() -> None:
    formatter = JsonFormatter()
    stamps = [json.loads(formatter.format(record(t)))["ts"] for t in (10.5, 10.9, 11.0, 9.999)]
    assert stamps == [
        "1970-01-01T00:00:10.500Z",
        "1970-01-01T00:00:10.900Z",
        "1970-01-01T00:00:11.000Z",
        "1970-01-01T00:00:09.999Z",
    ]


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("lone \ud800 surrogate", id="a string orjson refuses"),
        pytest.param(object(), id="an object that only has a str()"),
        pytest.param({1: "non-string key"}, id="a mapping with non-string keys"),
    ],
)
def test_a_field_that_is_hard_to_encode_still_gives_a_json_line(value: object) -> None:
    line = JsonFormatter().format(record(0.0, event="odd", detail=value))
    assert json.loads(line)["event"] == "odd"


@pytest.mark.parametrize("separator", ["\x85", "\u2028", "\u2029", "\n", "\r", "\x1e"])
def test_a_line_break_inside_a_field_never_splits_the_record(separator: str) -> None:
    line = JsonFormatter().format(record(0.0, event="odd", image=f"a{separator}b"))
    assert line.splitlines() == [line]
    assert json.loads(line)["image"] == f"a{separator}b"


def test_a_full_connection_pool_is_not_logged_and_other_urllib3_warnings_are(
    caplog: pytest.LogCaptureFixture,
) -> None:
    configure()
    pool = urllib3.HTTPConnectionPool("127.0.0.1", 9, maxsize=1, block=False)
    with caplog.at_level(logging.WARNING, logger="urllib3"):
        pool._put_conn(pool._new_conn())  # the one slot is taken: discarded, as at a shutdown
        logging.getLogger("urllib3.connectionpool").warning("Retrying (Retry(total=1))")
    assert [r.getMessage() for r in caplog.records] == ["Retrying (Retry(total=1))"]
