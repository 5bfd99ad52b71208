"""The providers file: channel tables checked by name, type and range; adapters built with secrets from the environment."""

from __future__ import annotations

import asyncio

import pytest

from adapters.http import Secret
from adapters.webhook import WebhookAdapter
from engine.errors import ConfigError
from engine.sending.protocol import Adapter
from engine.sending.providers import build_adapter, load_providers

SECRET = "s3cr3t-value-never-shown"


def test_the_example_providers_files_load():
    local = load_providers("examples/providers.local.toml")
    assert {c.adapter for c in local.values()} == {"sendgrid", "twilio", "webhook", "file"}
    assert set(load_providers("examples/providers.example.toml")) == {"email", "sms", "push", "ads"}


@pytest.mark.parametrize("doc, words", [
    ({"channels": {"fax": {"adapter": "webhook"}}}, ["fax"]),
    ({"channels": {"push": {"adapter": "pigeon"}}}, ["adapter", "pigeon"]),
    ({"channels": {"push": {"adapter": "webhook", "url": "http://x"}}}, ["secret_env", "missing"]),
    ({"channels": {"push": {"adapter": "webhook", "url": "http://x", "secret_env": "S", "rate": 5}}}, ["'rate'"]),
    ({"channels": {"email": {"adapter": "sendgrid", "api_key_env": "K", "rate_per_second": -1}}},
     ["rate_per_second"]),
    ({"channels": {"email": {"adapter": "sendgrid", "api_key_env": "K", "batch_size": 5000}}}, ["1000"]),
    ({"channels": {"ads": {"adapter": "file", "path": "out.xlsx"}}}, ["path", ".csv"]),
])
def test_bad_providers_name_the_key(doc, words):
    with pytest.raises(ConfigError) as err:
        load_providers(doc)
    for word in words:
        assert word in str(err.value)


def test_a_missing_providers_file_and_bad_toml_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_providers(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[channels.push\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_providers(bad)


def test_build_adapter_reads_the_secret_from_the_environment_and_never_shows_it(monkeypatch):
    cfg = load_providers({"channels": {"push": {"adapter": "webhook", "url": "http://127.0.0.1:1/h",
                                                "secret_env": "WINBACK_TEST_SECRET"}}})["push"]
    monkeypatch.delenv("WINBACK_TEST_SECRET", raising=False)
    with pytest.raises(ConfigError, match="WINBACK_TEST_SECRET"):
        build_adapter(cfg)
    monkeypatch.setenv("WINBACK_TEST_SECRET", SECRET)
    adapter = build_adapter(cfg)
    assert isinstance(adapter, WebhookAdapter) and isinstance(adapter, Adapter)
    assert SECRET not in repr(adapter) and SECRET not in repr(cfg)
    assert repr(Secret(SECRET, "X")) == "Secret(X=***)"


def test_every_adapter_builds_from_config(monkeypatch, tmp_path):
    for var in ("K", "SID", "TOK"):
        monkeypatch.setenv(var, SECRET)
    cfgs = load_providers({"channels": {
        "email": {"adapter": "sendgrid", "api_key_env": "K", "batch_size": 200},
        "sms": {"adapter": "twilio", "account_sid_env": "SID", "auth_token_env": "TOK"},
        "push": {"adapter": "fcm", "project_id": "p", "api_key_env": "K"},
        "ads": {"adapter": "file", "path": str(tmp_path / "a.jsonl")}}})
    built = {ch: build_adapter(c) for ch, c in cfgs.items()}
    assert {ch: a.name for ch, a in built.items()} == {"email": "sendgrid", "sms": "twilio", "push": "fcm",
                                                       "ads": "file"}
    assert built["email"].max_batch == 200
    for a in built.values():
        asyncio.run(a.aclose())


@pytest.mark.parametrize("line, words", [
    ("concurrency = 5000", ["'concurrency' is 5000; at most 1000"]),  # 100000000 was that many tasks, until OOM
    ("max_attempts = 1000000", ["'max_attempts' is 1000000; at most 100"]),
    ("timeout_seconds = 1e9", ["'timeout_seconds' is 1000000000.0; at most 3600"]),
    ('base_url = "http://127.0.0.1:99999"', ["'base_url' is 'http://127.0.0.1:99999'", "port from 1 to 65535"]),
    ('base_url = "http://127.0.0.1:0"', ["port from 1 to 65535"]),
    ('base_url = "http://"', ["with a host"]),
    ('base_url = "http://mail.example.com /v3"', ["with a host"]),
])
def test_a_typo_that_would_exhaust_memory_or_kill_every_message_is_refused(tmp_path, capsys, monkeypatch, line, words):
    # given a providers file with one value no send can use (a bad port made every message dead, exit 0)
    import pyarrow.feather as feather

    from engine.cli import main
    from tests.helpers import make_plan

    monkeypatch.setenv("WINBACK_TEST_EMAIL_KEY", "k")
    providers = tmp_path / "providers.toml"
    providers.write_text('[channels.email]\nadapter = "sendgrid"\napi_key_env = "WINBACK_TEST_EMAIL_KEY"\n'
                         + ("" if line.startswith("base_url") else 'base_url = "http://127.0.0.1:9"\n') + line + "\n")
    plan = tmp_path / "plan.arrow"
    feather.write_feather(make_plan(3, channel="email"), plan)
    # when sent, then one line names the file, channel and key; exit 2; no ledger, nothing sent
    code = main(["send", str(plan), "--providers", str(providers), "--ledger", str(tmp_path / "l.db"),
                 "--now", "--no-progress", "--max-seconds", "5"])  # bounded even if the check ever went
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"ConfigError: {providers} [channels.email] key ")
    for word in words:
        assert word in err
    assert not (tmp_path / "l.db").exists()
