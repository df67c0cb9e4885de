import json

import pyarrow as pa

from bqtui.models.json_text import might_need_repair, repair_json_column, repair_json_text


def test_lone_surrogate_escape_becomes_replacement_character():
    repaired = repair_json_text('{"name": "broken \\ud83d emoji", "ok": "\\ud83d\\ude00"}')
    assert json.loads(repaired) == {"name": "broken \ufffd emoji", "ok": "😀"}
    repaired.encode("utf-8")  # valid UTF-8 now


def test_raw_control_characters_are_escaped_not_lost():
    repaired = repair_json_text('{"a": "tab\there\x01"}')
    assert json.loads(repaired) == {"a": "tab\there\x01"}
    assert "\x01" not in repaired


def test_text_that_is_not_json_is_kept():
    assert repair_json_text("not json {") == "not json {"


def test_column_repair_touches_only_suspicious_values():
    column = pa.array(['{"a": 1}', None, '{"b": "\\udc00"}', '{\n  "pretty": true\n}'])
    repaired = repair_json_column(column).to_pylist()
    assert repaired[0] == '{"a": 1}'
    assert repaired[1] is None
    assert json.loads(repaired[2]) == {"b": "\ufffd"}
    assert json.loads(repaired[3]) == {"pretty": True}


def test_the_byte_scan_finds_what_the_regex_would():
    clean = pa.array(['{"a": "b"}', '{"emoji": "😀", "path": "C:/x"}', None])
    assert not might_need_repair(clean)
    assert might_need_repair(pa.array(['{"a": "tab\there"}']))
    assert might_need_repair(pa.array(['{"a": "\\ud83d"}']))
    assert not might_need_repair(pa.array(['{"a": "\\u00e9 and \\n"}']))  # harmless escapes
    sliced = pa.array(['{"a": "\x01"}', '{"ok": 1}']).slice(1)
    assert not might_need_repair(sliced)  # only the slice's own bytes count
