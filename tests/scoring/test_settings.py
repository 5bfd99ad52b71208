"""engine.scoring.settings: one home for the scoring defaults, checked options."""

from __future__ import annotations

import argparse
import re

import pytest

from engine.cli import score as score_cli
from engine.errors import ConfigError
from engine.scoring.settings import DEFAULTS, settings


def test_unknown_option_names_the_nearest_valid_one():
    with pytest.raises(ConfigError, match="unknown scoring option 'policy_capp'; did you mean 'policy_cap'"):
        settings(as_of="2026-11-01", policy_capp=3)


def test_settings_apply_the_defaults_and_the_given_values():
    cfg = settings(as_of="2026-11-01", policy_cap=5)
    assert cfg.policy_cap == 5 and cfg.half_life_days == DEFAULTS.half_life_days
    assert cfg.activity == DEFAULTS.activity


@pytest.mark.parametrize("bad, match", [({"policy_window_days": 14}, "7 or 30"),
                                        ({"default_timezone": "Mars/Base"}, "IANA"),
                                        ({"affinity_half_life_days": 0}, "> 0"),
                                        ({"activity": "session,pageview"}, "pageview"),
                                        ({"model_window_days": 0}, "model_window_days"),
                                        ({"policy_cap": 0}, "--cap must be a whole number of messages from 1 to 1000"),
                                        ({"policy_cap": -1}, "got -1"), ({"policy_cap": 1001}, "got 1001"),
                                        ({"policy_cap": 2.5}, "got 2.5"), ({"policy_cap": True}, "got True")])
def test_bad_values_are_config_errors(bad, match):
    with pytest.raises(ConfigError, match=match):
        settings(as_of="2026-11-01", **bad)


def test_the_cli_states_the_library_defaults_and_leaves_them_to_the_library():
    parser = argparse.ArgumentParser()
    score_cli.register(parser.add_subparsers())
    sub = parser._subparsers._group_actions[0].choices["score"]
    by_dest = {a.dest: a for a in sub._actions}
    for dest, value in (("cap", DEFAULTS.policy_cap), ("cap_window", DEFAULTS.policy_window_days),
                        ("affinity_half_life", DEFAULTS.affinity_half_life_days),
                        ("default_timezone", DEFAULTS.default_timezone), ("horizon", DEFAULTS.horizon_days),
                        ("penalizer", DEFAULTS.penalizer)):
        action = by_dest[dest]
        assert action.default is None  # the library applies its own default
        shown = re.search(r"default ([\w/.]+)", action.help).group(1)
        assert shown == (f"{value:g}" if isinstance(value, float) else str(value)), (dest, action.help)
    assert by_dest["activity"].help.endswith(f"(default {','.join(DEFAULTS.activity)})")
