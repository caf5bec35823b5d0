"""Policy rules as an operator writes them (docs/mutation-testing.md found these untested).

test_policy.py covers the defaults and overrides; this file pins how a rule is read (commas with
or without spaces, ``*``), the exact refusal for every way a rule can be wrong, and that a kind
no rule names is denied rather than crashing the check.
"""

from __future__ import annotations

import pytest

from node.policy import Policy, PolicyError, PolicyRefused, Rule, parse_rule


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("alert: law-enforcement,immigration -> prosecution",
         Rule("alert", frozenset({"law-enforcement", "immigration"}), frozenset({"prosecution"}))),
        ("  mla :prosecution , central-authority->  *  ",
         Rule("mla", frozenset({"prosecution", "central-authority"}), frozenset())),
        ("referral: * -> shelter,ngo,",  # a trailing comma is forgiven
         Rule("referral", frozenset(), frozenset({"shelter", "ngo"}))),
    ],
)  # fmt: skip
def test_a_rule_is_read_as_written(text, rule):
    assert parse_rule(text) == rule


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("alert: law-enforcement", "expected '<kind>: <roles> -> <roles>'"),
        ("alert law-enforcement -> *", "expected '<kind>: <roles> -> <roles>'"),
        ("receipt: * -> *", "unknown kind 'receipt'"),  # receipts are always allowed
        ("alert: police, spy -> *", "unknown role(s) police, spy"),
        ("alert: * -> ", "unknown role(s) (none)"),
        ("alert: law-enforcement -> prosecution -> shelter",
         "unknown role(s) prosecution -> shelter"),
        ("alert: law-enforcement -> prosecution: shelter", "unknown role(s) prosecution: shelter"),
    ],
)  # fmt: skip
def test_a_wrong_rule_is_quoted_with_its_problem(text, problem):
    with pytest.raises(PolicyError) as err:
        parse_rule(text)
    assert str(err.value) == f"policy rule {text!r}: {problem}"


def test_a_kind_no_rule_names_is_denied():
    policy = Policy.from_config()
    assert not policy.allows("gossip", ["law-enforcement"], ["law-enforcement"])
    assert not Policy({}).allows("alert", ["law-enforcement"], ["law-enforcement"])


def test_the_refusal_names_every_role_on_both_sides():
    with pytest.raises(PolicyRefused) as err:
        Policy.from_config().check_send(
            "alert", ["law-enforcement", "immigration"],
            {"zw-police": ["law-enforcement"], "za-shelter-johannesburg": ["shelter", "ngo"]},
        )  # fmt: skip
    assert str(err.value) == (
        "policy does not allow alert from role(s) law-enforcement, immigration to "
        "za-shelter-johannesburg (role(s) shelter, ngo); see [policy] rules"
    )
    assert err.value.recipient == "za-shelter-johannesburg"
