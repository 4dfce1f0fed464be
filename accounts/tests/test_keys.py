import math

from accounts import keys


def test_it_generates_keys_that_parse_back():
    raw, parts = keys.generate()
    assert raw.startswith("drk_")
    assert keys.parse(raw) == parts


def test_the_secret_has_at_least_32_bytes_of_entropy():
    _, parts = keys.generate()
    assert len(parts.secret) * math.log2(62) >= 256


def test_it_refuses_a_mistyped_key_by_checksum():
    raw, _ = keys.generate()
    index = len("drk_") + 15
    flipped = "A" if raw[index] != "A" else "B"
    assert keys.parse(raw[:index] + flipped + raw[index + 1 :]) is None


def test_it_refuses_malformed_keys():
    for raw in ["", "drk_", "sk_live_abc", "drk_short_secret", "x" * 64]:
        assert keys.parse(raw) is None


def test_the_checksum_is_checkable_offline():
    raw, _ = keys.generate()
    assert keys.checksum(raw[:-6]) == raw[-6:]
