import pytest

from app.sizes import format_size, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [("10MiB", 10 * 2**20), ("10 mib", 10 * 2**20), ("1MB", 10**6), ("1.5KiB", 1536), ("4096", 4096), (7, 7)],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "ten", "10XB", "-1", "0.3B", True])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError):
        parse_size(text)


@pytest.mark.parametrize(("n", "text"), [(10 * 2**20, "10MiB"), (1536, "1536B"), (2048, "2KiB"), (2**30, "1GiB")])
def test_format_size(n, text):
    assert format_size(n) == text
    assert parse_size(text) == n


def test_absurdly_long_sizes_are_refused_not_crashed():
    with pytest.raises(ValueError, match="too large"):
        parse_size("9" * 400)
