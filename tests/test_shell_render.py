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
from glmtui.plan.shell import RenderedScript, check_value, interpreter_problem, render_script

SHELLS = [["sh", "-e", "-c"], ["bash", "-e", "-c"]]
BASH = ["bash", "-e", "-c"]
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
    # brackets and expansions apart: ordinary text, markdown, prices
    "see [the docs](https://example.com) and run `make test`",
    "[`render_script`][1] costs $5 `now`",
    "items[0] is `x` and $HOME",
    "a[1] $(date) [$HOME] x[]",
]

# bash, zsh and mksh run what stands in an array subscript of a value they read as a number or a name
SUBSCRIPT_PAYLOADS = [f"a[$(touch {PWNED})]", f"x[$(touch {PWNED})]+1", f"a[`touch {PWNED}`]"]

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
# Where bash reads a value written into the script as arithmetic: (template, what it prints for 7)
ARITHMETIC_CONTEXTS = {
    "[[ -eq ]]": ("[[ ${inputs.msg} -eq 7 ]] && echo yes", "yes\n"),
    "[[ -eq ]], quoted": ('[[ "${inputs.msg}" -eq 7 ]] && echo yes', "yes\n"),
    "[[ -lt ]], right side": ("[[ 6 -lt ${inputs.msg} && -n x ]] && echo yes", "yes\n"),
    "let": ('let "x=${inputs.msg}"; echo "$x"', "7\n"),
    "array index": ('a=(0 1 2 3 4 5 6 seven); echo "${a[${inputs.msg}]}"', "seven\n"),
    "array element assignment": ("a[${inputs.msg}]=x; echo ${#a[@]} ${a[7]}", "1 x\n"),
    "declare -i": ("declare -i n; n=${inputs.msg}; echo $n", "7\n"),
    "declare -i with a value": ("declare -i n=${inputs.msg}; echo $n", "7\n"),
    "local -i in a function": ("f() { local -i n; n=${inputs.msg}; echo $n; }; f", "7\n"),
    "(( ))": ("(( ${inputs.msg} == 7 )) && echo yes", "yes\n"),
    "$(( ))": ("echo $(( ${inputs.msg} + 1 ))", "8\n"),
    "$[ ]": ("echo $[ ${inputs.msg} * 2 ]", "14\n"),
    "for (( ))": ("for (( i = 0; i < ${inputs.msg}; i++ )); do :; done; echo $i", "7\n"),
    "${x:offset}": ("x=abcdefghij; echo ${x:${inputs.msg}}", "hij\n"),
    "${x:offset:length}": ('x=abcdefghij; echo "${x:1:${inputs.msg}}"', "bcdefgh\n"),
    "[ -eq ]": ("[ ${inputs.msg} -eq 7 ] && echo yes", "yes\n"),
    "test -ge": ('test "${inputs.msg}" -ge 7 && echo yes', "yes\n"),
}
# Where the script keeps the value, and bash reads it as a number or a name later
LATER_CONTEXTS = {
    "a variable in (( ))": ("n=${inputs.msg}; (( n == 7 )) && echo yes", "yes\n"),
    "a variable in [[ -eq ]]": ('n="${inputs.msg}"; [[ $n -eq 7 ]] && echo yes', "yes\n"),
    "a variable named by a variable": ("n=${inputs.msg}; m=n; echo $(( m ))", "7\n"),
    "a variable of declare -i": ("n=${inputs.msg}; declare -i m; m=$n; echo $m", "7\n"),
    "a variable in an index": ('n=${inputs.msg}; a=(0 1 2 3 4 5 6 seven); echo "${a[n]}"', "seven\n"),
    "indirect expansion": ("v7=seven; n=v${inputs.msg}; echo ${!n}", "seven\n"),
    "printf -v": ('printf -v "v${inputs.msg}" %s seven; echo $v7', "seven\n"),
    "read into a name": ('read "v${inputs.msg}" <<< seven; echo $v7', "seven\n"),
    "unset an element": ('a=(0 1 2 3 4 5 6 7); unset "a[${inputs.msg}]"; echo ${#a[@]}', "7\n"),
    "test -v": ('a=(0 1 2 3 4 5 6 7); test -v "a[${inputs.msg}]" && echo yes', "yes\n"),
    "associative array key": ('declare -A m; m[${inputs.msg}]=x; echo "${!m[@]}"', "7\n"),
    "a here-document read as a number": ("read n <<EOF\n${inputs.msg}\nEOF\necho $(( n ))", "7\n"),
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


@pytest.mark.parametrize("value", SUBSCRIPT_PAYLOADS)
@pytest.mark.parametrize("where", sorted({**CONTEXTS, **QUOTED_HEREDOCS, **ARITHMETIC_CONTEXTS, **LATER_CONTEXTS}))
def test_a_value_with_an_expansion_in_a_subscript_is_refused_in_every_context(where: str, value: str) -> None:
    every = {**CONTEXTS, **QUOTED_HEREDOCS, **ARITHMETIC_CONTEXTS, **LATER_CONTEXTS}
    template = every[where] if isinstance(every[where], str) else every[where][0]
    reason = "inside an array subscript" if where not in ARITHMETIC_CONTEXTS else "subscript|only a whole number is safe"
    with pytest.raises(ExpressionError, match=reason) as info:
        render_script(parse(template), {"inputs": {"msg": value}})
    assert template[info.value.offset :].startswith("${inputs.msg}")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("where", sorted(ARITHMETIC_CONTEXTS) + sorted(LATER_CONTEXTS))
def test_whole_numbers_work_where_bash_reads_arithmetic(where: str) -> None:
    template, expected = {**ARITHMETIC_CONTEXTS, **LATER_CONTEXTS}[where]
    for value in ("7", 7):
        rendered = render_script(parse(template), {"inputs": {"msg": value}})
        result = run(rendered, BASH)
        assert (result.returncode, result.stdout) == (0, expected), (rendered.script, result.stderr)


@pytest.mark.parametrize("value", ["seven", "3+4", "x=7", "PATH=0", " 7", "7\n", "0x7", f"$(touch {PWNED})"])
@pytest.mark.parametrize("where", sorted(ARITHMETIC_CONTEXTS))
def test_arithmetic_the_script_writes_takes_only_whole_numbers(where: str, value: str) -> None:
    template = ARITHMETIC_CONTEXTS[where][0]
    with pytest.raises(ExpressionError, match="only a whole number is safe") as info:
        render_script(parse(template), {"inputs": {"msg": value}})
    assert template[info.value.offset :].startswith("${inputs.msg}")


def test_arithmetic_messages_say_where_and_hide_secrets() -> None:
    def message(template: str, value: str, ref: str = "inputs.msg") -> str:
        context = {"inputs": {"msg": value}, "secrets": {"KEY": value}}
        with pytest.raises(ExpressionError) as info:
            render_script(parse(template.replace("inputs.msg", ref)), context)
        return str(info.value)

    assert "is an operand of -eq," in message("[[ ${inputs.msg} -eq 1 ]]", "x")
    assert "is an argument of let," in message("let x=${inputs.msg}", "x")
    assert "is an index of array 'a'," in message("echo ${a[${inputs.msg}]}", "x")
    assert "declare -A" in message("echo ${a[${inputs.msg}]}", "x")
    assert "is assigned to integer variable 'n'," in message("typeset -i n; n=${inputs.msg}", "x")
    assert "is an offset or length" in message("echo ${x:${inputs.msg}}", "x")
    assert "its value 'x' is not one" in message("(( ${inputs.msg} ))", "x")
    assert "tok-12345" not in message("(( ${inputs.msg} ))", "tok-12345", "secrets.KEY")
    assert "tok[$1]" not in message("echo ${inputs.msg}", "tok[$1]", "secrets.KEY")


def test_an_associative_array_takes_text_keys_without_expansions() -> None:
    template = 'declare -A m; m[${inputs.msg}]=1; m["${inputs.msg}"]=2; echo "${!m[@]}" "${m[${inputs.msg}]}"'
    for declared in (template, template.replace("declare -A", "typeset -A")):
        rendered = render_script(parse(declared), {"inputs": {"msg": "a key"}})
        assert run(rendered, BASH).stdout == "a key 2\n"
    for value in ("$HOME", "`x`", f"$(touch {PWNED})"):
        with pytest.raises(ExpressionError, match="inside an array subscript"):
            render_script(parse(template), {"inputs": {"msg": value}})


@pytest.mark.parametrize(
    ("template", "values"),
    [
        # two values in one word: the first opens a subscript, the second runs in it
        ('x="${inputs.a}${inputs.b}"; echo $(( x ))', {"a": "c[", "b": f"$(touch {PWNED})]"}),
        ("x=${inputs.a}' '${inputs.b}; echo $(( x ))", {"a": "c[", "b": f"$(touch {PWNED})]"}),
        ('x="${inputs.a}${inputs.b}"; echo $(( x ))', {"a": "c", "b": f"[$(touch {PWNED})]"}),
        # the script writes the subscript, the value runs in it
        ('k="arr[${inputs.a}]"; echo $(( k ))', {"a": f"$(touch {PWNED})"}),
        ("k=arr[${inputs.a}]; echo $(( k ))", {"a": f"`touch {PWNED}`"}),
        # one value reaches another by name: through prompt expansion, or by joining two
        ('echo "${inputs.b}" >/dev/null; n=${inputs.a}; echo $(( n ))', {"a": "a[${GLMTUI_EXPR_0@P}]", "b": f"\\044(touch {PWNED})"}),
        ('echo "${inputs.b}${inputs.c}"; n=${inputs.a}; echo $(( n ))', {"a": "a[$GLMTUI_EXPR_0$GLMTUI_EXPR_1]", "b": "b[", "c": f"$(touch {PWNED})]"}),
    ],
)
def test_values_that_make_a_subscript_together_are_refused(template: str, values: dict[str, str]) -> None:
    with pytest.raises(ExpressionError, match="inside an array subscript"):
        render_script(parse(template), {"inputs": values})


def test_subscripts_without_expansions_and_expansions_outside_them_pass() -> None:
    assert_prints('k="arr[${inputs.msg}]"; printf \'%s\\n\' "$k"', "1 + x", "arr[1 + x]\n")
    assert_prints("printf '%s\\n' x${inputs.msg}", "[0] $(date) `date`", "x[0] $(date) `date`\n")
    assert_prints("printf '%s\\n' \"${inputs.msg}\"", "x [$(date)] [`date`]", "x [$(date)] [`date`]\n")


def expansion_in_a_subscript(value: str) -> bool:
    """The rule of docs/plan-format.md, character by character: a `$` or backtick after a `[`
    that follows a name (or inside one), before its `]`; after a quote or backslash, to the end."""
    depth, to_end, after_name = 0, False, False
    for c in value:
        if c in "$`" and (depth or to_end):
            return True
        if not to_end:
            if c == "[" and (depth or after_name):
                depth += 1
            elif c == "]" and depth:
                depth -= 1
            elif c in "'\"\\" and depth:
                to_end = True
        after_name = c.isalnum() or c == "_"
    return False


@settings(max_examples=500, deadline=None)
@given(st.text(st.sampled_from("ab_1é [[]]]'\"\\$`.-"), max_size=16))
def test_the_subscript_rule_is_the_documented_one(value: str) -> None:
    try:
        check_value("MSG", value)
    except ExpressionError:
        assert expansion_in_a_subscript(value), value
    else:
        assert not expansion_in_a_subscript(value), value


def test_an_environment_variable_from_an_expression_is_held_to_the_same_rule() -> None:
    check_value("MSG", "see [the docs](x) and `make`, $HOME")
    for value in SUBSCRIPT_PAYLOADS:
        with pytest.raises(ExpressionError, match="environment variable MSG has a value with an expansion inside"):
            check_value("MSG", value)


def test_a_script_for_another_interpreter_cannot_take_expressions() -> None:
    problem = interpreter_problem(("python3", "-c"), 'print("${inputs.msg}")')
    assert problem is not None
    assert problem.startswith("expression '${inputs.msg}' cannot reach a script for python3:")
    assert "environment:" in problem and "raw" in problem
    assert interpreter_problem(("/usr/bin/node", "-e"), "console.log(${inputs.n})").startswith(
        "expression '${inputs.n}' cannot reach a script for node:"
    )
    assert interpreter_problem(("python3", "-c"), "print(${inputs.msg | json | raw})") is None
    assert interpreter_problem(("python3", "-c"), "import os; print(os.environ['MSG'])") is None
    for shell in (None, "bash", "zsh", "mksh", "bash -eu -c", ("/bin/bash", "-c"), ("sh", "-c")):
        assert interpreter_problem(shell, "echo ${inputs.msg}") is None, shell


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
    try:
        check_value("MSG", value)
    except ExpressionError:  # an expansion inside a subscript: refused wherever it goes
        assert "[" in value and ("$" in value or "`" in value)
        with pytest.raises(ExpressionError, match="inside an array subscript"):
            render_script(parse(CONTEXTS["double quotes"][0]), {"inputs": {"msg": value}})
        return
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
    # every value passed is the input's, or a literal the script itself wrote (${'text'})
    assert all(passed == value or passed in script for passed in rendered.env.values())
