"""The wire contract: every payload form parses, every bad input becomes a dead letter."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.parsing import ParseLimits, Parser
from twin.records import Attributes, DeadLetter, DeviceEvent, RawMessage, Reading, Reason

NOW = 1_763_683_200_000
TOPIC = "devices/car-1/telemetry"


def parse(payload: bytes | str, topic: str = TOPIC, parser: Parser | None = None) -> list:
    if isinstance(payload, str):
        payload = payload.encode()
    return (parser or Parser()).parse(RawMessage(topic=topic, payload=payload, received_ms=NOW))


def one(payload: bytes | str, topic: str = TOPIC):
    out = parse(payload, topic)
    assert len(out) == 1
    return out[0]


def test_single_reading_with_ts_and_seq():
    r = one('{"ts": 1763683199000, "seq": 42, "values": {"speed_kmh": 62.5, "rpm": 2100}}')
    assert r == Reading("car-1", 1763683199000, {"speed_kmh": 62.5, "rpm": 2100}, NOW, 42)


def test_batch_array_keeps_order_and_good_neighbours_of_a_bad_reading():
    out = parse(
        '[{"ts": 1763683198000, "values": {"rpm": 1}},'
        ' {"ts": 1763683199000, "values": {"rpm": "fast"}},'
        ' {"ts": 1763683199500, "values": {"rpm": 3}}]'
    )
    assert [type(x) for x in out] == [Reading, DeadLetter, Reading]
    assert [out[0].values["rpm"], out[2].values["rpm"]] == [1, 3]
    dl = out[1]
    assert dl.reason is Reason.BAD_TYPE
    assert dl.detail.startswith("reading 2 of 3")
    assert json.loads(dl.payload) == {"ts": 1763683199000, "values": {"rpm": "fast"}}


def test_flat_key_values_take_arrival_time():
    r = one('{"speed_kmh": 50}')
    assert r.ts_ms == NOW and r.values == {"speed_kmh": 50} and r.seq is None


def test_flat_form_may_carry_ts_and_seq():
    r = one('{"ts": 1763683100000, "seq": 7, "speed_kmh": 50}')
    assert (r.ts_ms, r.seq, r.values) == (1763683100000, 7, {"speed_kmh": 50})


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ('"2025-11-21T00:00:00Z"', 1763683200000),
        ('"2025-11-21T05:30:00.250+05:30"', 1763683200250),
        ("1763683200000", 1763683200000),
        ("1763683200000.0", 1763683200000),
    ],
)
def test_timestamp_forms(ts: str, expected: int):
    assert one(f'{{"ts": {ts}, "values": {{"rpm": 1}}}}').ts_ms == expected


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("{not json", Reason.BAD_JSON),
        (b'{"rpm": "\xff"}', Reason.BAD_ENCODING),
        ('{"rpm": 1e999}', Reason.NON_FINITE),
        ('{"rpm": NaN}', Reason.NON_FINITE),
        ('{"rpm": -Infinity}', Reason.NON_FINITE),
        ('{"rpm": NaN', Reason.BAD_JSON),
        ('"just a string"', Reason.BAD_SHAPE),
        ("[]", Reason.BAD_SHAPE),
        ("{}", Reason.BAD_SHAPE),
        ('{"values": [1, 2]}', Reason.BAD_SHAPE),
        ('{"values": {"rpm": true}}', Reason.BAD_TYPE),
        ('{"values": {"rpm": null}}', Reason.BAD_TYPE),
        ('{"values": {"rpm": 123456789012345678901234567890}}', Reason.NON_FINITE),
        ('{"values": {"bad name!": 1}}', Reason.BAD_METRIC_NAME),
        ('{"values": {"status": 1}}', Reason.BAD_METRIC_NAME),
        ('{"ts": "yesterday", "values": {"rpm": 1}}', Reason.BAD_TS),
        ('{"ts": "2025-11-21T00:00:00", "values": {"rpm": 1}}', Reason.BAD_TS),
        ('{"ts": true, "values": {"rpm": 1}}', Reason.BAD_TS),
        ('{"ts": 1763683200, "values": {"rpm": 1}}', Reason.TS_TOO_OLD),
        ('{"ts": "1999-12-31T23:59:59Z", "values": {"rpm": 1}}', Reason.TS_TOO_OLD),
        ('{"ts": 1763690000000, "values": {"rpm": 1}}', Reason.TS_IN_FUTURE),
        ('{"seq": -1, "values": {"rpm": 1}}', Reason.BAD_SEQ),
        ('{"seq": "7", "values": {"rpm": 1}}', Reason.BAD_SEQ),
    ],
)
def test_bad_telemetry_becomes_a_dead_letter(payload, reason):
    dl = one(payload)
    assert isinstance(dl, DeadLetter)
    assert dl.reason is reason, dl.detail
    assert dl.device_id == "car-1"
    raw = payload if isinstance(payload, bytes) else payload.encode()
    assert dl.payload == raw


@pytest.mark.parametrize(
    "topic",
    [
        "devices/car-1",
        "devices/car 1/telemetry",
        "devices/car-1/telemetry/x",
        "other/car-1/telemetry",
        "devices/car-1/status",
        "devices//telemetry",
        "devices/" + "a" * 65 + "/telemetry",
    ],
)
def test_bad_topic(topic):
    dl = one('{"rpm": 1}', topic)
    assert isinstance(dl, DeadLetter) and dl.reason is Reason.BAD_TOPIC and dl.device_id is None


def test_topic_prefix():
    parser = Parser(prefix="site-a/")
    ok = parse('{"rpm": 1}', "site-a/devices/m1/telemetry", parser)[0]
    assert isinstance(ok, Reading) and ok.device_id == "m1"
    assert parse('{"rpm": 1}', "devices/m1/telemetry", parser)[0].reason is Reason.BAD_TOPIC


def test_oversize_payload_is_refused_and_truncated_in_the_dead_letter():
    parser = Parser(ParseLimits(max_payload_bytes=1000))
    big = b'{"rpm": 1, "x": "' + b"a" * 100_000 + b'"}'
    dl = parse(big, parser=parser)[0]
    assert dl.reason is Reason.OVERSIZE
    assert len(dl.payload) == 64 * 1024 and "truncated" in dl.detail


def test_too_many_readings_or_metrics():
    parser = Parser(ParseLimits(max_readings_per_message=2, max_metrics_per_reading=2))
    assert parse('[{"a":1},{"a":2},{"a":3}]', parser=parser)[0].reason is Reason.TOO_MANY
    assert parse('{"a":1,"b":2,"c":3}', parser=parser)[0].reason is Reason.TOO_MANY


def test_attributes():
    a = one('{"kind": "vehicle", "profile": "truck", "vin": "X1"}', "devices/t1/attributes")
    assert isinstance(a, Attributes)
    assert (a.kind, a.profile, a.attributes["vin"]) == ("vehicle", "truck", "X1")
    bad = one('{"kind": "spaceship"}', "devices/t1/attributes")
    assert bad.reason is Reason.BAD_TYPE
    assert one("[1]", "devices/t1/attributes").reason is Reason.BAD_SHAPE


def test_events_single_and_batch():
    e = one('{"ts": 1763683100000, "type": "dtc", "code": "P0217"}', "devices/t1/events")
    assert isinstance(e, DeviceEvent)
    assert (e.ts_ms, e.type, e.body) == (1763683100000, "dtc", {"code": "P0217"})
    out = parse(
        '[{"type": "service", "parts_replaced": ["BRK-PAD-F"]}, {"code": 1}]', "devices/t1/events"
    )
    assert isinstance(out[0], DeviceEvent) and out[0].ts_ms == NOW
    assert out[1].reason is Reason.BAD_TYPE


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
topics = st.sampled_from(
    ["devices/d1/telemetry", "devices/d1/attributes", "devices/d1/events", "devices/x"]
) | st.text(max_size=30)


@settings(max_examples=400, deadline=None)
@given(payload=st.binary(max_size=300), topic=topics)
def test_any_bytes_give_records_or_dead_letters_never_an_exception(payload, topic):
    out = Parser().parse(RawMessage(topic=topic, payload=payload, received_ms=NOW))
    assert out
    for item in out:
        assert isinstance(item, Reading | Attributes | DeviceEvent | DeadLetter)


@settings(max_examples=400, deadline=None)
@given(doc=json_values, topic=topics)
def test_any_json_gives_records_or_dead_letters(doc, topic):
    payload = json.dumps(doc).encode()
    out = Parser().parse(RawMessage(topic=topic, payload=payload, received_ms=NOW))
    assert out
    for item in out:
        if isinstance(item, Reading):
            assert item.values
            for value in item.values.values():
                assert type(value) in (int, float) and value == value
        else:
            assert isinstance(item, Attributes | DeviceEvent | DeadLetter)


@settings(max_examples=200, deadline=None)
@given(
    values=st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True).filter(
            lambda s: (
                s
                not in {
                    "ts",
                    "seq",
                    "status",
                    "kind",
                    "profile",
                    "readings",
                    "messages",
                    "rejected",
                }
            )
        ),
        st.floats(allow_nan=False, allow_infinity=False, width=64),
        min_size=1,
        max_size=10,
    ),
    ts=st.integers(min_value=946_684_800_000, max_value=NOW),
    seq=st.none() | st.integers(min_value=0, max_value=2**62),
)
def test_valid_readings_round_trip(values, ts, seq):
    body = {"ts": ts, "values": values} | ({} if seq is None else {"seq": seq})
    r = one(json.dumps(body))
    assert isinstance(r, Reading), r
    assert (r.ts_ms, r.seq, r.values) == (ts, seq, values)


# -- poison input: nothing escapes the parser -------------------------------------------------

ALL_TOPICS = ["devices/d1/telemetry", "devices/d1/attributes", "devices/d1/events"]


def nested(depth: int, opener: str = "[", closer: str = "]", inner: str = "") -> bytes:
    return (opener * depth + inner + closer * depth).encode()


@pytest.mark.parametrize("topic", ALL_TOPICS)
@pytest.mark.parametrize("depth", [33, 1000, 100_000])
def test_deep_nesting_is_refused_before_decoding(topic, depth):
    for payload in (nested(depth), b'{"a":' * depth + b"1" + b"}" * depth):
        if len(payload) > ParseLimits().max_payload_bytes:
            assert parse(payload, topic)[0].reason is Reason.OVERSIZE
            continue
        dl = one(payload, topic)
        assert dl.reason is Reason.TOO_DEEP and str(depth) in dl.detail


def test_brackets_inside_strings_do_not_count_as_nesting():
    text = "[{" * 40 + '\\"' + "]}" * 3
    out = parse(json.dumps([{"ts": NOW, "values": {"rpm": 1}}, {"note": text, "rpm": 2}]))
    assert [type(o) for o in out] == [Reading, DeadLetter]  # the second: a string is no number
    assert out[1].reason is Reason.BAD_TYPE
    attrs = one(json.dumps({"model": "[" * 100, "kind": "vehicle"}), "devices/d1/attributes")
    assert isinstance(attrs, Attributes) and attrs.attributes["model"] == "[" * 100


def test_huge_numbers_are_refused_and_long_digit_strings_are_not():
    assert one('{"rpm": 1' + "0" * 5000 + "}").reason is Reason.NON_FINITE
    assert one('{"rpm": 1e400}').reason is Reason.NON_FINITE
    vin = "1" * 200
    attrs = one(json.dumps({"vin": vin}), "devices/d1/attributes")
    assert isinstance(attrs, Attributes) and attrs.attributes["vin"] == vin


def test_nul_in_attributes_or_events_is_a_store_rejected_dead_letter():
    for topic, doc in (
        ("devices/d1/attributes", {"model": "X\u0000"}),
        ("devices/d1/attributes", {"nested": [{"k\u0000": 1}]}),
        ("devices/d1/events", {"type": "dtc", "code": "P\u00000"}),
    ):
        dl = one(json.dumps(doc), topic)
        assert dl.reason is Reason.STORE_REJECTED and "NUL" in dl.detail, doc
    # an escaped backslash before "u0000" is text, not NUL
    ok = one(json.dumps({"model": "\\u0000"}), "devices/d1/attributes")
    assert isinstance(ok, Attributes)


def test_invalid_utf8_is_bad_encoding():
    assert one(b'{"rpm": 1, "x": "\xff"}').reason is Reason.BAD_ENCODING


def test_too_many_event_keys():
    doc = {"type": "dtc"} | {f"k{i}": i for i in range(300)}
    assert one(json.dumps(doc), "devices/d1/events").reason is Reason.TOO_MANY


def test_readings_older_than_the_raw_retention_are_expired():
    parser = Parser(ParseLimits(retention_days=30))
    day = 86_400_000
    kept = parse(json.dumps({"ts": NOW - 30 * day, "values": {"rpm": 1}}), parser=parser)[0]
    assert isinstance(kept, Reading)  # its day is still inside the retention
    old = parse(json.dumps({"ts": NOW - 31 * day, "values": {"rpm": 1}}), parser=parser)[0]
    assert old.reason is Reason.EXPIRED and "30 days" in old.detail
    assert isinstance(parse(json.dumps({"ts": NOW - 400 * day, "values": {"rpm": 1}}))[0], Reading)


class _Broken(Parser):
    def _telemetry(self, msg, device_id, doc):  # a parser bug
        raise KeyError("boom")


def test_a_parser_failure_is_a_dead_letter_not_an_exception():
    dl = parse('{"rpm": 1}', parser=_Broken())
    assert len(dl) == 1 and dl[0].reason is Reason.PARSE_FAILED
    assert "KeyError" in dl[0].detail and dl[0].device_id == "car-1"
    assert dl[0].payload == b'{"rpm": 1}'


_tokens = st.sampled_from(
    [b"[", b"]", b"{", b"}", b'"', b":", b",", b"1", b"-", b"e999", b"NaN", b"Infinity",
     b"\\", b"\\u0000", b"\xff", b"\x00", b'"values"', b'"ts"', b"9" * 50, b"null", b" "]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    depth=st.integers(min_value=0, max_value=3000),
    kind=st.sampled_from(["[]", "{}", "mixed"]),
    tail=st.lists(_tokens, max_size=60),
    topic=st.sampled_from(ALL_TOPICS),
)
def test_adversarial_documents_never_raise(depth, kind, tail, topic):
    if kind == "[]":
        payload = b"[" * depth + b"".join(tail) + b"]" * depth
    elif kind == "{}":
        payload = b'{"a":' * depth + b"".join(tail) + b"}" * depth
    else:
        payload = b'[{"values":' * depth + b"".join(tail) + b"}]" * depth
    out = Parser().parse(RawMessage(topic=topic, payload=payload, received_ms=NOW))
    assert out
    for item in out:
        assert isinstance(item, Reading | Attributes | DeviceEvent | DeadLetter)
        if isinstance(item, DeadLetter):
            assert item.reason is not Reason.PARSE_FAILED, item.detail  # refused on purpose


@settings(max_examples=40, deadline=None)
@given(
    keys=st.integers(min_value=257, max_value=100_000),
    topic=st.sampled_from(ALL_TOPICS),
    big=st.booleans(),
)
def test_huge_documents_are_refused_with_a_reason(keys, topic, big):
    doc = {f"k{i}": i for i in range(keys)} | ({"type": "x"} if topic.endswith("events") else {})
    payload = json.dumps(doc).encode() + (b" " * 1_100_000 if big else b"")
    out = Parser().parse(RawMessage(topic=topic, payload=payload, received_ms=NOW))
    assert len(out) == 1 and isinstance(out[0], DeadLetter)
    assert out[0].reason in (Reason.OVERSIZE, Reason.TOO_MANY)


# ---- the typed fast path gives what the general path gives ---------------------------------

_names = st.sampled_from(["rpm", "speed_kmh", "temp", "a.b", "ts", "status", "9bad", "x" * 70, ""])
_numbers = st.one_of(
    st.integers(min_value=-(2**60), max_value=2**60),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([2**53, 2**53 + 1, -(2**53) - 1, 1e308, -0.0, True, False, None, "1", [1]]),
)
_ts = st.one_of(
    st.none(),
    st.integers(min_value=0, max_value=2**63),
    st.sampled_from([1_790_000_000_000, 1_790_000_000_000.5, "2026-09-21T10:00:00+00:00",
                     "2026-09-21T10:00:00", 946_684_799_999, 1_790_000_400_000]),
)  # fmt: skip
_seq = st.one_of(st.none(), st.integers(min_value=-5, max_value=2**64), st.just("3"))


@st.composite
def _telemetry_docs(draw: st.DrawFn) -> bytes:
    doc: dict[str, object] = {}
    if draw(st.booleans()):
        doc["values"] = draw(st.dictionaries(_names, _numbers, max_size=6))
    else:  # the flat form, or values that are not an object
        doc.update(draw(st.dictionaries(_names, _numbers, max_size=4)))
        if draw(st.booleans()):
            doc["values"] = draw(_numbers)
    if draw(st.booleans()):
        doc["ts"] = draw(_ts)
    if draw(st.booleans()):
        doc["seq"] = draw(_seq)
    if draw(st.booleans()):
        doc["extra"] = 1
    text = json.dumps(doc, allow_nan=True)
    return text.encode()


@settings(max_examples=600, deadline=None)
@given(payload=_telemetry_docs(), retention=st.sampled_from([0, 30]), warm=st.booleans())
def test_the_fast_path_gives_what_the_general_path_gives(payload, retention, warm) -> None:
    limits = ParseLimits(retention_days=retention)
    fast, general = Parser(limits), Parser(limits, fast=False)
    if warm:  # names already checked once, as in a running engine
        for p in (fast, general):
            p.parse(RawMessage("devices/d1/telemetry", b'{"rpm": 1, "speed_kmh": 2, "temp": 3, '
                               b'"a.b": 4}', 1_790_000_000_000))  # fmt: skip
    msg = RawMessage("devices/d1/telemetry", payload, 1_790_000_000_000, 7)
    assert fast.parse(msg) == general.parse(msg)


def test_the_fast_path_takes_the_common_form() -> None:
    parser = Parser()
    msg = RawMessage("devices/d1/telemetry", b'{"ts": 1790000000000, "seq": 3, "values": '
                     b'{"rpm": 800, "temp": 61.5}}', 1_790_000_000_100)  # fmt: skip
    general = Parser(fast=False).parse(msg)
    assert parser.parse(msg) == general  # first sight: names learnt the general way
    assert parser._common_reading(msg, "d1") == general[0]
    assert type(general[0].values["rpm"]) is int  # integers stay integers
