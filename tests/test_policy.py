"""Role policy (DESIGN §5): pure rules, the sender's refusal, and the receiver's own check."""

from __future__ import annotations

import pytest

from node import submit
from node.compose import build_node
from node.config import ConfigError, parse_config
from node.policy import Policy, PolicyError, PolicyRefused, parse_rule
from tests.runtime_helpers import case_update, create_nodes, eventually, node_env


def test_defaults_deny_what_no_rule_names():
    policy = Policy.from_config()
    assert policy.allows("alert", ["law-enforcement"], ["immigration"])
    assert not policy.allows("alert", ["law-enforcement"], ["shelter"])  # suspects' data
    assert not policy.allows("mla", ["shelter"], ["law-enforcement"])
    assert policy.allows("referral", ["shelter"], ["secretariat"])
    assert policy.allows("receipt", ["ngo"], ["prosecution"])  # answering is always allowed


def test_config_rules_replace_the_defaults_for_their_kind_only():
    policy = Policy.from_config(["alert: * -> shelter, ngo"])
    assert policy.allows("alert", ["ngo"], ["shelter"])
    assert not policy.allows("alert", ["law-enforcement"], ["immigration"])
    assert policy.allows("mla", ["prosecution"], ["central-authority"])  # default kept


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ("alert law-enforcement -> *", "expected '<kind>: <roles> -> <roles>'"),
        ("gossip: * -> *", "unknown kind 'gossip'"),
        ("alert: police -> *", "unknown role(s) police"),
        ("alert:  -> *", "unknown role(s) (none)"),
    ],
)
def test_bad_rules_are_named(rule, problem):
    with pytest.raises(PolicyError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        parse_rule(rule)


def test_bad_rule_in_config_names_the_setting():
    text = '[node]\nid = "zm-police"\nname = "x"\nroles = ["law-enforcement"]\n'
    with pytest.raises(ConfigError, match="unknown kind 'gossip'"):
        parse_config(text, {"XNODE_POLICY_RULES": "alert: * -> *; gossip: * -> *"})
    config = parse_config(text, {"XNODE_POLICY_RULES": "alert: * -> *; mla: * -> prosecution"})
    assert len(config.policy.rules) == 2


def test_check_send_names_the_recipient():
    with pytest.raises(PolicyRefused, match="to za-shelter-johannesburg") as info:
        Policy.from_config().check_send(
            "alert", ["law-enforcement"],
            {"zw-police": ["law-enforcement"], "za-shelter-johannesburg": ["shelter"]},
        )  # fmt: skip
    assert info.value.recipient == "za-shelter-johannesburg"


async def test_receiver_enforces_its_own_policy(tmp_path, broker):
    dirs = create_nodes(tmp_path, {"zm-police": "law-enforcement", "zw-shelter": "shelter"})
    # The sender's configuration allows anything; the shelter keeps the defaults.
    a = build_node(dirs["zm-police"], env=node_env(broker.bootstrap_servers,
                                             XNODE_POLICY_RULES="alert: * -> *"))  # fmt: skip
    b = build_node(dirs["zw-shelter"], env=node_env(broker.bootstrap_servers))
    await a.start()
    await b.start()
    try:
        message_id = await a.submit(submit.Request(
            kind="alert", to=["zw-shelter"], payload=case_update(), schema="CaseUpdate"))  # fmt: skip

        async def rejected() -> bool:
            status = await a._run(a.store.message_status, message_id)
            return bool(status) and status[0].state == "rejected"

        await eventually(rejected, 20, "negative receipt")
        status = (await a._run(a.store.message_status, message_id))[0]
        assert status.reason == "policy-denied"
        assert "does not accept alert from role(s) law-enforcement" in (status.detail or "")
        assert await b._run(b.store.inbox, 0, None, 10) == []
        assert [q.reason for q in await b._run(b.store.quarantined, 10)] == ["policy-denied"]
    finally:
        await a.stop()
        await b.stop()
