"""The expression language: parsing, references, rendering, conditions, robustness."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glmtui.errors import BadInput
from glmtui.plan.expressions import (
    MAX_DEPTH,
    ROOTS,
    STATUS_FUNCTIONS,
    ExpressionError,
    Reference,
    Template,
    evaluate_condition,
    parse,
    parse_condition,
    to_text,
    walk_strings,
)

CONTEXT = {
    "inputs": {"path": "tests/", "n": "5", "count": 3, "flag": True, "items": [1, 2, 3], "empty": ""},
    "secrets": {"TOKEN": "s3cret"},
    "steps": {
        "test": {"status": "failure", "exit_code": 1, "stdout": "a\nb\nc\n", "outputs": {"json": '{"k": [4, 5]}'}},
        "my-step": {"outputs": {"result": "done"}},
    },
    "env": {"HOME": "/root"},
    "plan": {"name": "fix-tests", "dir": "/plans", "run_id": "r1"},
}


def render(text: str, context: dict | None = None) -> object:
    return parse(text).render(CONTEXT if context is None else context)


def error(text: str, context: dict | None = None) -> ExpressionError:
    with pytest.raises(ExpressionError) as info:
        render(text, context)
    return info.value


# --- recognition ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "${HOME}", "${HOME:-x}", "${#name}", "${!prefix*}", "${-}", "${1}", "${10}", "${}", "${ }", "${foo.bar}",
        "${nothing}", "${foo()}", "${[1]}",
    ],
)
def test_shell_text_is_left_as_written(text: str) -> None:
    template = parse(text)
    assert template.is_literal()
    assert template.render(CONTEXT) == text


def test_dollar_dollar_brace_is_a_literal() -> None:
    assert render("echo $${inputs.path} $$ $x") == "echo ${inputs.path} $$ $x"
    assert parse("$${inputs.path}").is_literal()


@pytest.mark.parametrize("root", sorted(ROOTS))
def test_every_root_starts_an_expression(root: str) -> None:
    assert not parse(f"${{{root}.x}}").is_literal()


@pytest.mark.parametrize(
    "text", ["${ 'a' }", '${"a"}', "${1 == 1}", "${true}", "${null}", "${ not inputs.flag }", "${(inputs.n)}"]
)
def test_literals_not_and_parens_start_an_expression(text: str) -> None:
    assert not parse(text).is_literal()


def test_shell_expansion_around_an_expression() -> None:
    assert render("${HOME:-${inputs.path}}") == "${HOME:-tests/}"


# --- values ---------------------------------------------------------------------------------


def test_whole_value_keeps_its_type() -> None:
    assert render("${inputs.count}") == 3
    assert render("${inputs.flag}") is True
    assert render("${inputs.items}") == [1, 2, 3]
    assert render("${inputs.missing}") is None


def test_surrounding_text_makes_a_string() -> None:
    assert render(" ${inputs.count}") == " 3"
    assert render("${inputs.count} ") == "3 "
    assert render("${inputs.count}${inputs.count}") == "33"


def test_to_text_conversions() -> None:
    assert render("[${inputs.missing}|${inputs.flag}|${false}|${inputs.items}|${1.5}]") == "[|true|false|[1,2,3]|1.5]"
    assert to_text({"a": [1, "é"]}) == '{"a":[1,"é"]}'
    assert to_text(None) == ""
    assert to_text(7) == "7"


def test_paths_and_indexes() -> None:
    assert render("${steps.test.exit_code}") == 1
    assert render("${steps['my-step'].outputs.result}") == "done"
    assert render("${steps.my-step.outputs.result}") == "done"
    assert render('${inputs.items[0]}') == 1
    assert render("${inputs.items[-1]}") == 3
    assert render("${inputs.items[9]}") is None
    assert render("${steps.nope.outputs.x}") is None
    assert render("${inputs.path.deeper}") is None
    assert render("${inputs.items.name}") is None


def test_literals_and_escapes() -> None:
    assert render(r"${'it\'s'}") == "it's"
    assert render(r'${"a\nb\t\\"}') == "a\nb\t\\"
    assert render("${'}'}") == "}"
    assert render("${ inputs.x | default('}') }") == "}"
    assert render("${inputs.missing | default(-2)}") == -2
    assert render("${inputs.count > -2}") is True
    assert render("${1e3}") == 1000.0
    assert render("${inputs.x | default([1, 'a', null])}") == [1, "a", None]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${inputs.count == 3}", True),
        ("${inputs.count != 3}", False),
        ("${inputs.count < 4}", True),
        ("${inputs.count <= 3}", True),
        ("${inputs.count > 3}", False),
        ("${inputs.count >= 3.0}", True),
        ("${'abc' < 'abd'}", True),
        ("${inputs.flag == 1}", False),
        ("${inputs.n == 5}", False),
        ("${'tests' in inputs.path}", True),
        ("${2 in inputs.items}", True),
        ("${'path' in inputs}", True),
        ("${4 not in inputs.items}", True),
        ("${'x' in inputs.missing}", False),
        ("${inputs.count == 3 and inputs.flag}", True),
        ("${inputs.missing or 'fallback'}", "fallback"),
        ("${inputs.empty || 'fallback'}", "fallback"),
        ("${inputs.path && inputs.count}", 3),
        ("${not inputs.flag}", False),
        ("${inputs.flag && !inputs.empty}", True),
        ("${not inputs.count == 4}", True),
        ("${(inputs.count == 3) == true}", True),
        ("${inputs.missing == null}", True),
    ],
)
def test_operators(text: str, expected: object) -> None:
    assert render(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${steps.test.stdout | tail(2)}", "b\nc"),
        ("${steps.test.stdout | head(1)}", "a"),
        ("${steps.test.stdout | tail(0)}", ""),
        ("${steps.test.stdout | lines}", ["a", "b", "c"]),
        ("${inputs.items | head(2)}", [1, 2]),
        ("${inputs.items | tail(2)}", [2, 3]),
        ("${inputs.items | tail(0)}", []),
        ("${'' | lines}", []),
        ("${inputs.missing | default('not run')}", "not run"),
        ("${inputs.empty | default('x')}", ""),
        ("${inputs.n | int}", 5),
        ("${' 7 ' | int}", 7),
        ("${'2.9' | int}", 2),
        ("${inputs.n | float}", 5.0),
        ("${'  x ' | trim}", "x"),
        ("${'Ab' | lower}", "ab"),
        ("${'Ab' | upper}", "AB"),
        ("${inputs.items | json}", "[1,2,3]"),
        ("${inputs.missing | json}", "null"),
        ("${steps.test.outputs.json | fromjson}", {"k": [4, 5]}),
        ("${(steps.test.outputs.json | fromjson).k[1]}", 5),
        ("${inputs.missing | trim | upper}", None),
        ("${inputs.missing | int | default(0)}", 0),
        ("${inputs.path | raw}", "tests/"),
        ("${inputs.n | int > 3}", True),
    ],
)
def test_filters(text: str, expected: object) -> None:
    assert render(text) == expected


# --- references ----------------------------------------------------------------------------


def test_references_in_order_with_offsets() -> None:
    text = "x ${steps.test.stdout | tail(inputs.count)} ${steps['my-step'].outputs.result == secrets.TOKEN}"
    refs = parse(text).references()
    assert [r.path for r in refs] == [
        ("steps", "test", "stdout"),
        ("inputs", "count"),
        ("steps", "my-step", "outputs", "result"),
        ("secrets", "TOKEN"),
    ]
    assert all(isinstance(r, Reference) for r in refs)
    assert text[refs[0].offset :].startswith("steps.test")
    assert text[refs[1].offset :].startswith("inputs.count")
    assert text[refs[3].offset :].startswith("secrets.TOKEN")


def test_references_of_index_and_whole_roots() -> None:
    assert [r.path for r in parse("${inputs.items[0]} ${plan}").references()] == [("inputs", "items", 0), ("plan",)]
    assert parse("${HOME} plain").references() == []


def test_is_literal() -> None:
    assert parse("plain text").is_literal()
    assert not parse("a ${inputs.x}").is_literal()


# --- conditions ------------------------------------------------------------------------------


def ok(name: str) -> bool:
    return name in {"always", "success"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("steps.test.exit_code != 0", True),
        ("${steps.test.exit_code != 0}", True),
        ("  ${ steps.test.exit_code == 0 }  ", False),
        ("always()", True),
        ("failure()", False),
        ("failure() || steps.test.exit_code == 1", True),
        ("success() and inputs.flag", True),
        ("not cancelled()", True),
        ("${inputs.empty}", False),
        ("${inputs.missing}", False),
        ("inputs.count", True),
        ("0", False),
        ("'false'", True),
    ],
)
def test_conditions(text: str, expected: bool) -> None:
    assert evaluate_condition(text, CONTEXT, status=ok) is expected
    assert evaluate_condition(parse_condition(text), CONTEXT, status=ok) is expected


def test_condition_status_functions_and_value() -> None:
    template = parse_condition("failure() or always()")
    assert template.status_functions() == {"failure", "always"}
    assert parse_condition("${ always() }").status_functions() == {"always"}
    assert parse_condition("steps.test.status").render(CONTEXT) == "failure"


def test_condition_offsets_point_into_the_original_text() -> None:
    text = "   ${steps.test.exit_code}"
    (ref,) = parse_condition(text).references()
    assert text[ref.offset :].startswith("steps.test")
    with pytest.raises(ExpressionError) as info:
        parse_condition("steps.test.exit_code ==")
    assert info.value.offset == len("steps.test.exit_code ")


def test_status_functions_outside_conditions_are_errors() -> None:
    assert "only be used in an if: condition" in str(error("${always()}"))
    with pytest.raises(ExpressionError, match="only answered in an if: condition"):
        parse_condition("always()").render(CONTEXT)
    assert STATUS_FUNCTIONS == {"always", "success", "failure", "cancelled"}


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message", "offset"),
    [
        (
            "${steps.a.exit_code ==}",
            "expression '${steps.a.exit_code ==}' does not parse: expected a value after '=='",
            20,
        ),
        ("echo ${inputs.x", "expression '${inputs.x' is not closed: expected '}'", 5),
        ("${inputs.x | defualt(1)}", "unknown filter 'defualt' (did you mean 'default'?)", 13),
        ("${inputs.x | nope}", "unknown filter 'nope'", 13),
        ("${inputs.x:-y}", "unexpected character ':'", 10),
        ("${inputs.x | default}", "filter 'default' takes 1 argument, got 0", 13),
        ("${inputs.x | trim(1)}", "filter 'trim' takes 0 arguments, got 1", 13),
        ("${inputs == stpes.x}", "unknown name 'stpes' (did you mean 'steps'?)", 12),
        ("${inputs.x | default('a'}", "expected ',' or ')'", 24),
        ("${(inputs.x}", "expected ')' to close '('", 11),
        ("${inputs.a == 1 == 2}", "comparisons cannot be chained", 16),
        ("${inputs.l[inputs.k]}", "an index in [...] must be a whole number or a quoted string", 11),
        ("${inputs.x | default('a}", "a string literal is not closed", 21),
        ("${always}", "always is a function: write always()", 2),
        ("${inputs.}", "expected a name after '.'", 8),
        ("${inputs.x |}", "expected a filter name after '|'", 11),
        ("${" + "9" * 5000 + " == 1}", "a number is too long", 2),
    ],
)
def test_parse_errors(text: str, message: str, offset: int) -> None:
    with pytest.raises(ExpressionError) as info:
        parse(text)
    assert message in str(info.value)
    assert info.value.offset == offset
    assert isinstance(info.value, BadInput)


def test_unknown_function_is_named() -> None:
    with pytest.raises(ExpressionError, match="unknown function 'alwys\\(\\)' \\(did you mean 'always'\\?\\)"):
        parse_condition("alwys()")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${inputs.path | int}", "int cannot convert 'tests/'"),
        ("${'1e999' | int}", "int cannot convert"),
        ("${'x' | float}", "float cannot convert 'x'"),
        ("${inputs.count | trim}", "trim expects a string, got a number"),
        ("${inputs.path | fromjson}", "fromjson: not valid JSON"),
        ("${inputs.count | head(2)}", "head expects a string or a list, got a number"),
        ("${inputs.items | head(-1)}", "head() needs a whole number of 0 or more, got '-1'"),
        ("${inputs.items | tail('x')}", "tail() needs a whole number"),
        ("${inputs.path < 3}", "cannot compare a string and a number with '<'"),
        ("${inputs.missing >= 0}", "cannot compare null and a number with '>='"),
        ("${inputs.flag > false}", "cannot compare a boolean and a boolean"),
        ("${1 in inputs.path}", "cannot look for a number in a string"),
        ("${1 in inputs.count}", "cannot look into a number"),
        ("${response.status}", "'response' is not available here"),
    ],
)
def test_evaluation_errors(text: str, message: str) -> None:
    err = error(text)
    assert message in str(err)
    assert str(err).startswith(f"expression '{text}' failed: ")


def test_evaluation_error_inside_text_names_the_expression() -> None:
    err = error("run ${inputs.path | int} now")
    assert str(err).startswith("expression '${inputs.path | int}' failed")
    assert err.offset == len("run ${inputs.path | ")


def test_nesting_is_limited() -> None:
    fine = "${" + "(" * (MAX_DEPTH - 1) + "inputs.count" + ")" * (MAX_DEPTH - 1) + "}"
    assert render(fine) == 3
    with pytest.raises(ExpressionError, match="nested more than"):
        parse("${" + "(" * 10_000 + "inputs.count" + ")" * 10_000 + "}")
    with pytest.raises(ExpressionError, match="nested more than"):
        parse("${" + "not " * 10_000 + "inputs.flag}")
    with pytest.raises(ExpressionError, match="nested more than"):
        parse("${inputs.x in " + "[" * 10_000 + "}")


def test_long_filter_chains_do_not_recurse() -> None:
    assert render("${'x'" + " | trim" * 5_000 + "}") == "x"
    assert render("${inputs.flag" + " and inputs.flag" * 5_000 + "}") is True


def test_values_that_cannot_be_written() -> None:
    loop: list = []
    loop.append(loop)
    assert "cannot be written as JSON" in str(error("a ${inputs.loop}", {"inputs": {"loop": loop}}))
    deep: list = []
    for _ in range(5_000):
        deep = [deep]
    assert "failed" in str(error("${inputs.deep == inputs.deep2}", {"inputs": {"deep": deep, "deep2": [deep]}}))


def test_nan_and_huge_numbers() -> None:
    assert render("${inputs.x | int}", {"inputs": {"x": 1e300}}) == int(1e300)
    assert "int cannot convert" in str(error("${inputs.x | int}", {"inputs": {"x": math.nan}}))
    assert evaluate_condition("inputs.x", {"inputs": {"x": math.nan}}, status=ok) is False


def test_walk_strings() -> None:
    value = {"a": "x", "b": [1, "y", {"c": "z", "d": None}], "e": ("w",)}
    assert list(walk_strings(value)) == ["x", "y", "z", "w"]
    assert list(walk_strings("s")) == ["s"]
    assert list(walk_strings(5)) == []


def test_template_keeps_its_text() -> None:
    template = parse("a ${inputs.x}")
    assert isinstance(template, Template)
    assert template.text == "a ${inputs.x}"


# --- robustness --------------------------------------------------------------------------------

_TOKENS = [
    "${", "$${", "}", "{", "${HOME}", " ", "\n", "inputs", "steps", "step", "secrets", "with", "response", "env",
    "plan", ".", "[", "]", "(", ")", "0", "-1", "1.5", "9" * 30, "'a'", '"b"', "'", '"', "\\", "==", "!=", "<", "<=",
    ">", ">=", "and", "or", "not", "in", "&&", "||", "!", "|", ",", "true", "false", "null", "always()", "failure",
    "default(", "json", "fromjson", "trim", "lower", "upper", "lines", "head(2)", "tail(", "int", "float", "raw",
    "x", "path", "items", "-", ":", "#", "é",
]

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4),
    max_leaves=12,
)
_contexts = st.dictionaries(st.sampled_from(sorted(ROOTS)), _json_values, max_size=8)
_expression_text = st.lists(st.sampled_from(_TOKENS), max_size=30).map("".join)


def _check_robust(text: str, context: dict) -> None:
    for parser in (parse, parse_condition):
        try:
            template = parser(text)
        except ExpressionError:
            continue
        template.references()
        template.status_functions()
        try:
            template.render(context, status=lambda name: name == "always")
        except ExpressionError:
            pass


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=60), _contexts)
def test_any_text_parses_or_raises_expression_error(text: str, context: dict) -> None:
    _check_robust(text, context)


@settings(max_examples=500, deadline=None)
@given(_expression_text, _contexts)
def test_expression_like_text_parses_or_raises_expression_error(text: str, context: dict) -> None:
    _check_robust("${" + text + "}", context)
    _check_robust(text, context)


@settings(max_examples=300, deadline=None)
@given(_json_values)
def test_to_text_never_fails_on_json_values(value: object) -> None:
    assert isinstance(to_text(value), str)
