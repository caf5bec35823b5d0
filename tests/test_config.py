"""Configuration: TOML, environment overrides, clear errors."""

from __future__ import annotations

import pytest

from node.config import Config, ConfigError, NodeSettings, parse_config, render_config

BASE = """
[node]
id = "zm-secretariat"
name = "Zambia Anti-Trafficking Secretariat"
roles = ["secretariat"]
"""


def test_defaults_and_render_round_trip():
    config = parse_config(BASE, {})
    assert config.envelope.max_bytes == 1024 * 1024
    assert parse_config(render_config(config), {}) == config


def test_environment_overrides():
    config = parse_config(
        BASE,
        {"XNODE_ENVELOPE_MAX_BYTES": "2048", "XNODE_NODE_ROLES": "secretariat, ngo", "HOME": "/"},
    )
    assert config.envelope.max_bytes == 2048
    assert config.node.roles == ("secretariat", "ngo")


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[node\n", {}, "not valid TOML"),
        (BASE + "[kafak]\nx = 1\n", {}, r"unknown section \[kafak\]"),
        (BASE + "[envelope]\nmax_byte = 1\n", {}, "unknown setting envelope.max_byte"),
        (BASE + '[envelope]\nmax_bytes = "big"\n', {}, "envelope.max_bytes: expected an integer"),
        (
            BASE,
            {"XNODE_ENVELOPE_MAX_BYTES": "lots"},
            "XNODE_ENVELOPE_MAX_BYTES: expected an integer",
        ),
        (BASE + "[envelope]\nmax_bytes = 10\n", {}, "envelope.max_bytes must be at least 1024"),
        ('[node]\nid = "zm-x"\nname = "n"\nroles = ["ngo"]\n', {}, "invalid node id"),
        ('[node]\nid = "zm-ngo"\nname = "n"\nroles = ["pirate"]\n', {}, "unknown role"),
        ('[node]\nid = "zm-ngo"\nroles = ["ngo"]\n', {}, "missing setting node.name"),
    ],
)
def test_errors_name_the_setting(text, env, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(text, env)


def test_rendered_strings_are_escaped():
    config = Config(
        node=NodeSettings(id="mw-ngo", name='Centre "Tiyeni" \\ Lilongwe', roles=("ngo",))
    )
    assert parse_config(render_config(config), {}).node.name == 'Centre "Tiyeni" \\ Lilongwe'
