"""Values in `run` scripts: printed exactly by a real shell, never run as code."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glmtui.plan.expressions import ExpressionError, parse
from glmtui.plan.shell import RenderedScript, render_script

SHELLS = [["sh", "-e", "-c"], ["bash", "-e", "-c"]]
PWNED = Path(f"/tmp/pwned-{uuid.uuid4().hex}")

VALUES = [
    f"$(touch {PWNED})",
    f"`touch {PWNED}`",
    f"'; touch {PWNED}; '",
    f'"; touch {PWNED}; "',
    f"${{IFS}}$(touch${{IFS}}{PWNED})",
    "'",
    '"',
    "\\",
    "\\\\n",
    "trailing backslash\\",
    "two\nlines",
    "\n\nblank lines around\n\n",
    "*",
    "-n",
    "-e",
    "",
    " leading and  inner   spaces ",
    "tab\there",
    "héllo wörld ✓ 日本",
    "EOF",
    "a\nEOF\nb",
    "${HOME}",
    "$HOME",
    "}",
    "'\"'\"'",
    "#not a comment",
    "a=b; c=d",
]

# (template, what it prints for a value v)
CONTEXTS = {
    "bare": ("printf '%s\\n' ${inputs.msg}", lambda v: v + "\n"),
    "bare in a word": ("printf '%s\\n' --name=${inputs.msg}.txt", lambda v: f"--name={v}.txt\n"),
    "double quotes": ('printf \'%s\\n\' "msg: ${inputs.msg}"', lambda v: f"msg: {v}\n"),
    "single quotes": ("printf '%s\\n' 'msg: ${inputs.msg}'", lambda v: f"msg: {v}\n"),
    "heredoc": ("cat <<EOF\nmsg: ${inputs.msg}\nEOF", lambda v: f"msg: {v}\n"),
    "heredoc, tabs stripped": ("cat <<-EOF\n\tmsg: ${inputs.msg}\n\tEOF", lambda v: f"msg: {v}\n"),
    "command substitution": (
        "out=$(printf '%s.' ${inputs.msg}); printf '%s\\n' \"${out%.}\"",
        lambda v: v + "\n",
    ),
    "command substitution in double quotes": (
        "out=\"$(printf '%s.' \"${inputs.msg}\")\"; printf '%s\\n' \"${out%.}\"",
        lambda v: v + "\n",
    ),
    "backticks": ("out=`printf '%s.' ${inputs.msg}`; printf '%s\\n' \"${out%.}\"", lambda v: v + "\n"),
    "after a backslash": ("printf '%s\\n' \\${inputs.msg}", lambda v: v + "\n"),
    "after a backslash in double quotes": ("printf '%s\\n' \"\\${inputs.msg}\"", lambda v: v + "\n"),
    "shell default": ('printf \'%s\\n\' "${UNSET_VAR_X:-${inputs.msg}}"', lambda v: v + "\n"),
    "shell default unquoted": ("printf '%s\\n' ${UNSET_VAR_X:-${inputs.msg}}", lambda v: v + "\n"),
    "comment": ("# say ${inputs.msg} it's fine\nprintf '%s\\n' 'after'", lambda v: "after\n"),
    "case": (
        "case ${inputs.msg} in\n  ${inputs.msg}) printf '%s\\n' same;;\n  *) printf '%s\\n' other;;\nesac",
        lambda v: "same\n",
    ),
}
QUOTED_HEREDOCS = {
    "single-quoted delimiter": "cat <<'EOF'\nmsg: ${inputs.msg}\nEOF",
    "double-quoted delimiter": 'cat <<"EOF"\nmsg: ${inputs.msg}\nEOF',
    "escaped delimiter": "cat <<\\EOF\nmsg: ${inputs.msg}\nEOF",
    "partly quoted delimiter, tabs": "cat <<-E'O'F\n\tmsg: ${inputs.msg}\n\tEOF",
}


def run(rendered: RenderedScript, shell: list[str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*shell, rendered.script], env=os.environ | rendered.env, capture_output=True, timeout=10, cwd="/tmp"
    )
    # decoded by hand: text mode would turn a printed "\r" into "\n"
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode(errors="replace")
    )


def assert_prints(template: str, value: str, expected: str, context: dict | None = None) -> None:
    rendered = render_script(parse(template), context or {"inputs": {"msg": value}})
    for shell in SHELLS:
        result = run(rendered, shell)
        assert result.returncode == 0, (shell, rendered.script, result.stderr)
        assert result.stdout == expected, (shell, rendered.script)
    assert not PWNED.exists()


@pytest.fixture(autouse=True)
def no_pwned_file():
    yield
    assert not PWNED.exists()


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("where", sorted(CONTEXTS))
def test_values_print_exactly(where: str, value: str) -> None:
    template, expected = CONTEXTS[where]
    if where.startswith(("command substitution", "backticks")) and value.endswith("\n"):
        value = value.rstrip("\n") + "."  # $(...) drops trailing newlines whatever they hold
    assert_prints(template, value, expected(value))


@pytest.mark.parametrize("value", [v for v in VALUES if "\\" not in v and not v.startswith("-")])
def test_echo_bare_and_quoted(value: str) -> None:
    # dash's echo reads backslashes and both take -n/-e, so only plain values here
    assert_prints("echo ${inputs.msg}", value, value + "\n")
    assert_prints('echo "msg: ${inputs.msg}"', value, f"msg: {value}\n")
    assert_prints("echo 'msg: ${inputs.msg}'", value, f"msg: {value}\n")


@pytest.mark.parametrize("value", [v for v in VALUES if "EOF" not in v.split("\n")])
@pytest.mark.parametrize("where", sorted(QUOTED_HEREDOCS))
def test_quoted_heredoc_takes_the_text_as_it_is(where: str, value: str) -> None:
    rendered = render_script(parse(QUOTED_HEREDOCS[where]), {"inputs": {"msg": value}})
    assert rendered.env == {}
    assert_prints(QUOTED_HEREDOCS[where], value, f"msg: {value}\n")


@pytest.mark.parametrize(
    ("template", "value"),
    [
        ("cat <<'EOF'\n${inputs.msg}\nEOF", "EOF"),
        ("cat <<'EOF'\n${inputs.msg}\nEOF", "a\nEOF\nb"),
        ("cat <<'EOF'\nE${inputs.msg}\nEOF", "OF"),
        ("cat <<'EOF'\n${inputs.msg}OF\nEOF", "x\nE"),
        ("cat <<-'EOF'\n${inputs.msg}\nEOF", "\t\tEOF"),
        ("cat <<'EOF'\n${inputs.msg}", "EOF"),
    ],
)
def test_value_that_would_end_a_quoted_heredoc_is_refused(template: str, value: str) -> None:
    with pytest.raises(ExpressionError, match="would end the here-document") as info:
        render_script(parse(template), {"inputs": {"msg": value}})
    assert template[info.value.offset :].startswith("${inputs.msg}")


def test_several_heredocs_on_one_line() -> None:
    template = "cat <<A; cat <<'B'; printf '%s\\n' \"${inputs.msg}\"\n${inputs.msg}\nA\n$HOME ${inputs.msg}\nB"
    value = "$(x) 'y'"
    rendered = render_script(parse(template), {"inputs": {"msg": value}})
    assert "$HOME $(x) 'y'\nB" in rendered.script
    for shell in SHELLS:
        assert run(rendered, shell).stdout == f"{value}\n$HOME {value}\n{value}\n"


def test_ansi_c_quotes_in_bash() -> None:
    rendered = render_script(parse("printf '%s\\n' $'a\\t${inputs.msg}\\tb'"), {"inputs": {"msg": "x'y"}})
    assert run(rendered, ["bash", "-e", "-c"]).stdout == "a\tx'y\tb\n"


def test_references_fit_each_context() -> None:
    context = {"inputs": {"a": 1}}
    assert render_script(parse("echo ${inputs.a}"), context).script == 'echo "$GLMTUI_EXPR_0"'
    assert render_script(parse('echo "${inputs.a}"'), context).script == 'echo "${GLMTUI_EXPR_0}"'
    assert render_script(parse("echo '${inputs.a}'"), context).script == "echo ''\"$GLMTUI_EXPR_0\"''"
    rendered = render_script(parse("echo ${inputs.a} ${inputs.a}"), context)
    assert rendered.env == {"GLMTUI_EXPR_0": "1", "GLMTUI_EXPR_1": "1"}


def test_values_as_text() -> None:
    context = {"inputs": {"n": 3, "flag": True, "items": [1, "a"], "none": None}}
    template = "printf '%s\\n' ${inputs.n} ${inputs.flag} ${inputs.items} \"${inputs.none}\""
    assert_prints(template, "", '3\ntrue\n[1,"a"]\n\n', context)


def test_shell_variables_and_literal_dollar_brace_pass_through() -> None:
    assert_prints('printf \'%s\\n\' "${HOME}"', "", os.environ["HOME"] + "\n")
    rendered = render_script(parse("printf '%s\\n' '$${inputs.x}' ${HOME}"), {"inputs": {}})
    assert rendered.script == "printf '%s\\n' '${inputs.x}' ${HOME}"
    assert rendered.env == {}
    assert run(rendered, SHELLS[0]).stdout == "${inputs.x}\n" + os.environ["HOME"] + "\n"


def test_raw_inserts_the_text() -> None:
    rendered = render_script(parse("${inputs.cmd | raw} ${inputs.cmd}"), {"inputs": {"cmd": "printf '%s\\n' hi"}})
    assert rendered.script == "printf '%s\\n' hi \"$GLMTUI_EXPR_0\""
    assert run(rendered, SHELLS[0]).stdout == "hi\nprintf '%s\\n' hi\n"


def test_arithmetic_takes_only_whole_numbers() -> None:
    assert_prints("echo $((1 + ${inputs.n}))", "", "42\n", {"inputs": {"n": 41}})
    with pytest.raises(ExpressionError, match="only a whole number is safe"):
        render_script(parse("echo $((1 + ${inputs.msg}))"), {"inputs": {"msg": "a[$(touch x)]"}})


def test_values_a_shell_cannot_hold_are_refused() -> None:
    with pytest.raises(ExpressionError, match="NUL"):
        render_script(parse("echo ${inputs.msg}"), {"inputs": {"msg": "a\0b"}})
    with pytest.raises(ExpressionError, match="here-document delimiter"):
        render_script(parse("cat <<${inputs.msg}\nx\n"), {"inputs": {"msg": "EOF"}})
    with pytest.raises(ExpressionError, match="use << to keep them"):  # <<- would strip the value's tabs
        render_script(parse("cat <<-'EOF'\n\t${inputs.msg}\n\tEOF\n"), {"inputs": {"msg": "a\n\tb"}})


def test_expression_errors_come_through() -> None:
    with pytest.raises(ExpressionError, match="int cannot convert"):
        render_script(parse("echo ${inputs.msg | int}"), {"inputs": {"msg": "x"}})


_values = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=40)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=_values)
def test_any_value_prints_exactly_in_every_context(value: str) -> None:
    for where, (template, expected) in CONTEXTS.items():
        shown = value
        if where.startswith(("command substitution", "backticks")):
            shown = value + "."
        assert_prints(template, shown, expected(shown))
    for template in QUOTED_HEREDOCS.values():
        if "EOF" in [line.lstrip("\t") for line in f"msg: {value}".split("\n")]:
            continue
        if "<<-" in template and "\n\t" in value:  # the shell would strip those tabs: refused
            with pytest.raises(ExpressionError, match="use << to keep them"):
                render_script(parse(template), {"inputs": {"msg": value}})
            continue
        assert_prints(template, value, f"msg: {value}\n")


_SCRIPT_PIECES = [
    "${inputs.msg}", "${inputs.msg | raw}", "${HOME}", "$${", "'", '"', "`", "$(", "$((", "((", "(", ")", "\\", "\n",
    " ", "#", "<<", "<<-", "<<'E'", "<<E", "E", "\tE", "$'", "${", "}", "case", "esac", "in", ";;", "$#", "<<<", "x",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_SCRIPT_PIECES), max_size=25).map("".join), _values)
def test_any_script_renders_or_raises_expression_error(script: str, value: str) -> None:
    try:
        rendered = render_script(parse(script), {"inputs": {"msg": value}})
    except ExpressionError:
        return
    assert set(rendered.env.values()) <= {value}
