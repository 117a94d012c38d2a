"""opsctl.core.sweep: `opsctl exp run -S` values expanded into experiments (Hydra's sweep syntax).

Every value is also read back through opsctl.core.run.parse_overrides, the parser `opsctl run -S`
uses, so the YAML text a sweep produces is checked to mean the typed value intended.
"""

from __future__ import annotations

import pytest

from opsctl.core.run import parse_overrides
from opsctl.core.sweep import MAX_EXPERIMENTS, SweepParam, expand, parse_sweep, varying
from opsctl.errors import UsageError


def typed(item: str) -> list[object]:
    """The values of one -S item as `opsctl run -S KEY=VALUE` would set them."""
    param = parse_sweep(item)
    return [parse_overrides([f"{param.key}={value}"])[0][2] for value in param.values]


def refused(item: str) -> UsageError:
    with pytest.raises(UsageError) as caught:
        parse_sweep(item)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"-S {item[:30]}")
    return caught.value


# -- comma lists, quotes, containers ---------------------------------------------------------------


def test_comma_list_keeps_each_item_as_written():
    assert parse_sweep("a=1,2.5,abc,true") == SweepParam("a", ("1", "2.5", "abc", "true"))
    assert typed("a=1,2.5,abc,true") == [1, 2.5, "abc", True]


def test_items_are_trimmed_and_inner_spaces_kept():
    assert parse_sweep("a= 1 ,  hello world ,x ").values == ("1", "hello world", "x")


def test_key_with_file_is_kept_as_written():
    param = parse_sweep("conf/p.yaml:train.C=0.1,1")
    assert param == SweepParam("conf/p.yaml:train.C", ("0.1", "1"))
    assert parse_overrides([f"{param.key}={param.values[0]}"]) == [("conf/p.yaml", "train.C", 0.1)]


def test_single_and_empty_values():
    assert parse_sweep("a=5").values == ("5",)
    assert parse_sweep("a=").values == ("",)
    assert typed("a=") == [""]
    assert typed("a=''") == [""]


@pytest.mark.parametrize(
    ("item", "values"),
    [
        ("a='x,y',z", ["x,y", "z"]),
        ('a="x,y", z', ["x,y", "z"]),
        ("a='it''s'", ["it's"]),
        ("a='it\\'s',b", ["it's", "b"]),
        ('a="say \\"hi\\", ok"', ['say "hi", ok']),
        ("a='back\\\\'", ["back\\"]),  # Hydra: a backslash before the closing quote is escaped
        ("a='C:\\dir'", ["C:\\dir"]),  # elsewhere a backslash is itself
        ("a='tab\there'", ["tab\there"]),
        ("a=x\\,y,z", ["x,y", "z"]),  # Hydra's escaped comma outside quotes
        ("a=\\[1\\]", ["[1]"]),  # an escaped bracket is text, not a list
        ("a=it's,fine", ["it's", "fine"]),  # a quote inside a word is a character
        ("a='range(1,3)'", ["range(1,3)"]),  # a quoted call is text
        ("a=(1,2)", ["(1,2)"]),  # parentheses group like brackets
    ],
)
def test_quotes_and_escapes(item, values):
    assert typed(item) == values


@pytest.mark.parametrize(
    ("item", "values"),
    [
        ("a=[1,2]", [[1, 2]]),
        ("a=[1, 2], [3]", [[1, 2], [3]]),
        ("a={k: 1, j: 2}", [{"k": 1, "j": 2}]),
        ("a={k: 1},{k: 2}", [{"k": 1}, {"k": 2}]),
        ("a=[1,'x,y',[2,3]],[\"p,q\"]", [[1, "x,y", [2, 3]], ["p,q"]]),
        ("a={k: 'v,w', l: [1,2]}", [{"k": "v,w", "l": [1, 2]}]),
    ],
)
def test_lists_and_dicts_are_one_value(item, values):
    assert typed(item) == values


# -- range and choice ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "values"),
    [
        ("a=range(4)", [0, 1, 2, 3]),
        ("a=range(2, 5)", [2, 3, 4]),
        ("a=range(0, 10, 3)", [0, 3, 6, 9]),
        ("a=range(10, 0, -3)", [10, 7, 4, 1]),
        ("a=range(-2, 1)", [-2, -1, 0]),
        ("a=range(start=1, stop=7, step=2)", [1, 3, 5]),
        ("a=range(1, stop=3)", [1, 2]),
        ("a=range(1_000, 3_000, 1_000)", [1000, 2000]),
    ],
)
def test_int_ranges(item, values):
    assert typed(item) == values
    assert all(type(value) is int for value in typed(item))


def test_float_ranges_are_exact():
    assert parse_sweep("a=range(0, 1, 0.25)").values == ("0.0", "0.25", "0.5", "0.75")
    tenths = typed("a=range(0, 1, 0.1)")
    assert tenths == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]  # not 0.30000000000000004
    assert all(type(value) is float for value in tenths)
    assert typed("a=range(0.1, 0.7, 0.1)") == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]  # 0.7 itself excluded
    assert typed("a=range(1, -1, -0.5)") == [1.0, 0.5, 0.0, -0.5]
    assert typed("a=range(0.3)") == [0.0]


def test_small_and_large_floats_stay_floats_in_yaml():
    # PyYAML reads 1e-05 as a string; the sweep writes 1.0e-05
    assert typed("a=range(0, 4e-5, 1e-5)") == [0.0, 1e-05, 2e-05, 3e-05]
    assert typed("a=range(1e16, 3e16, 1e16)") == [1e16, 2e16]


def test_choice_is_a_comma_list():
    assert typed("a=choice(1, 'p,q', [1,2], x)") == [1, "p,q", [1, 2], "x"]
    assert parse_sweep("a=choice(7)").values == ("7",)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("a=range(1, 5, 0)", "step is 0"),
        ("a=range(5, 1)", "counting up from 5 never reaches 1"),
        ("a=range(1, 5, -1)", "counting down from 1 never reaches 5"),
        ("a=range(3, 3)", "is empty"),
        ("a=range()", "needs a stop"),
        ("a=range(1, 2, 3, 4)", "at most 3 arguments"),
        ("a=range(x)", "stop must be a number, not 'x'"),
        ("a=range(inf)", "stop must be a number"),
        ("a=range(1e400)", "too large"),
        ("a=range(step=2, 5)", "by position come before those by name"),
        ("a=range(1, start=0)", "start, stop and step once each"),
        ("a=range(stop=3, size=2)", "start, stop and step once each"),
        ("a=choice()", "at least one value"),
    ],
)
def test_bad_ranges_and_choices(item, message):
    assert message in str(refused(item))


def test_range_negative_sign_hint():
    assert refused("a=range(5, 1)").hint == "give a negative step, e.g. range(5, 1, -1)"


@pytest.mark.parametrize("function", ["interval", "glob", "sort", "shuffle", "tag"])
def test_unsupported_hydra_functions_are_named(function):
    message = str(refused(f"a={function}(1, 2)"))
    assert f"{function}() is not supported" in message
    assert "range(start, stop[, step])" in message and "choice(" in message


def test_unknown_function_suggests_quoting():
    error = refused("a=relu(x)")
    assert "relu() is not a sweep function" in str(error)
    assert error.hint is not None and "quote it" in error.hint


def test_function_inside_a_list_is_refused():
    assert "range(...) can't be one item of the comma list" in str(refused("a=1,range(3)"))
    assert "can't be one item of choice()" in str(refused("a=choice(range(3))"))


# -- malformed items -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("novalue", "expected KEY=VALUES or FILE:KEY=VALUES"),
        ("=1,2", "expected KEY=VALUES"),
        ("a..b=1,2", "expected KEY=VALUES"),
        (".a=1", "expected KEY=VALUES"),
        ("f.yaml:=1", "expected KEY=VALUES"),
        ("a=1,,2", "an empty item in the comma list"),
        ("a=1,2,", "an empty item in the comma list"),
        ("a=[1,2", "']' missing"),
        ("a=1]", "']' closes nothing"),
        ("a=[1,2)", "')' closes nothing"),
        ("a='x,y", "quote is never closed"),
        ("a='x'y", "text after a closing quote"),
        ("a=" + "[" * 101 + "]" * 101, "nested more than 100 deep"),
    ],
)
def test_malformed_items(item, message):
    assert message in str(refused(item))


def test_long_item_is_refused_and_quoted_short():
    item = "a=" + "1," * 40_000 + "1"
    message = str(refused(item))
    assert "longer than 64 KiB" in message
    assert len(message) < 200


# -- expand: grid, zip, limits ---------------------------------------------------------------------


def test_no_items_is_one_experiment_with_the_workspace_params():
    assert expand([]) == [[]]
    assert expand([], zip_mode=True) == [[]]


def test_grid_is_the_product_first_item_slowest():
    assert expand(["a=1,2", "b=x,y,z"]) == [
        ["a=1", "b=x"],
        ["a=1", "b=y"],
        ["a=1", "b=z"],
        ["a=2", "b=x"],
        ["a=2", "b=y"],
        ["a=2", "b=z"],
    ]


def test_grid_overrides_parse_back_to_typed_values():
    experiments = expand(["train.C=range(0.1, 0.4, 0.1)", "p.yaml:model.layers=[8,8],[16]"])
    assert len(experiments) == 6
    assert parse_overrides(experiments[4]) == [("params.yaml", "train.C", 0.3), ("p.yaml", "model.layers", [8, 8])]


def test_zip_pairs_values_and_repeats_single_ones():
    assert expand(["a=1,2,3", "b=x", "c=range(3)"], zip_mode=True) == [
        ["a=1", "b=x", "c=0"],
        ["a=2", "b=x", "c=1"],
        ["a=3", "b=x", "c=2"],
    ]


def test_zip_refuses_different_counts_naming_them():
    with pytest.raises(UsageError) as caught:
        expand(["a=1,2", "b=x", "c=1,2,3"], zip_mode=True)
    assert "a has 2, c has 3" in str(caught.value)
    assert "b has" not in str(caught.value)


@pytest.mark.parametrize(
    "items",
    [["a=1,2", "a=3"], ["train.C=1", "params.yaml:train.C=2"], ["p.yaml:x=1", "./p.yaml:x=2"], ["a=1", ":a=2"]],
)
def test_the_same_key_twice_is_refused(items):
    with pytest.raises(UsageError, match="is given twice"):
        expand(items)


def test_same_name_in_different_files_is_two_keys():
    assert expand(["a=1", "p.yaml:a=2"]) == [["a=1", "p.yaml:a=2"]]


def test_grid_over_the_limit_says_how_many():
    with pytest.raises(UsageError) as caught:
        expand(["a=range(40)", "b=range(30)"])
    assert (
        str(caught.value) == f"the -S values make 1200 experiments (40 x 30), more than the limit of {MAX_EXPERIMENTS}"
    )
    assert len(expand(["a=range(40)", "b=range(25)"])) == 1000
    assert len(expand(["a=1,2,3", "b=1,2"], limit=6)) == 6
    with pytest.raises(UsageError, match="7 values, more than the limit of 6 experiments"):
        expand(["a=1,2,3,4,5,6,7"], limit=6)


def test_huge_ranges_are_counted_not_built():
    # Were these materialised, the first would need gigabytes and the second could never end.
    with pytest.raises(UsageError, match=r"range\(100000000\): 100000000 values, more than the limit of 1000"):
        expand(["a=range(100000000)"])
    with pytest.raises(UsageError, match=r"1\.00e\+600 values"):
        expand(["a=range(0, 1e300, 1e-300)"])
    with pytest.raises(UsageError, match="100000000 values"):
        expand(["a=1,2", "b=range(0, 100000000, 1)"], zip_mode=True)


def test_limit_applies_to_a_long_comma_list():
    with pytest.raises(UsageError, match="1001 values, more than the limit of 1000"):
        parse_sweep("a=" + ",".join(str(i) for i in range(1001)))


# -- varying ---------------------------------------------------------------------------------------


def test_varying_lists_the_keys_that_change():
    assert varying(expand(["a=1,2", "b=x", "c=3,4"])) == ["a", "c"]
    assert varying(expand(["a=1", "b=x"])) == []
    assert varying([[]]) == []
    assert varying([]) == []
    assert varying([["a=1", "b=2"], ["a=1"]]) == ["b"]  # missing from one counts as differing
