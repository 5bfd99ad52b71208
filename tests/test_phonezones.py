"""A phone's timezone is asked of phonenumbers once per prefix, and remembered between runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

_RUN = (
    "import sys, pyarrow as pa\n"
    "from engine.tz import infer_timezones\n"
    "zones, src = infer_timezones(None, pa.array(['+12125550123', '+33612345678', '+34612345678', None, '12']))\n"
    "print(zones.to_pylist(), src.to_pylist(), 'phonenumbers' in sys.modules)\n"
)
_EXPECTED = "['America/New_York', 'Europe/Paris', None, None, None] ['phone', 'phone', 'default', 'default', 'default']"


def _run(cache_dir) -> str:
    out = subprocess.run([sys.executable, "-c", _RUN], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "WINBACK_CACHE_DIR": str(cache_dir)})
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_a_second_run_answers_known_prefixes_without_the_library(tmp_path):
    assert _run(tmp_path) == _EXPECTED + " True"
    (path,) = tmp_path.glob("phone-zones-*.json")
    data = json.loads(path.read_text())
    assert data["zones"]["+12125550"] == ["America/New_York"] and data["zones"]["+33612345"] == ["Europe/Paris"]
    assert len(data["zones"]["+34612345"]) == 2  # Spanish mobiles: Madrid or the Canaries
    assert _run(tmp_path) == _EXPECTED + " False"  # every prefix known: phonenumbers never imported


def test_a_stale_or_broken_file_is_rebuilt_and_a_wrong_answer_not_trusted(tmp_path):
    from engine import phonezones

    path = tmp_path / phonezones.cache_path().name  # the name this install uses (stamped by its library)
    path.write_text("{not json")
    assert _run(tmp_path) == _EXPECTED + " True"
    data = json.loads(path.read_text())
    data["library"] = "another version"
    data["zones"]["+12125550"] = ["Europe/Paris"]  # from another version of the library: not used
    path.write_text(json.dumps(data))
    assert _run(tmp_path) == _EXPECTED + " True"
    assert json.loads(path.read_text())["zones"]["+12125550"] == ["America/New_York"]


def test_a_remembered_answer_that_is_no_list_of_zone_names_is_asked_again(tmp_path):
    assert _run(tmp_path) == _EXPECTED + " True"
    (path,) = tmp_path.glob("phone-zones-*.json")
    data = json.loads(path.read_text())
    data["zones"]["+12125550"] = "America/New_York"  # a name, not a list of names
    data["zones"]["+33612345"] = [1]
    path.write_text(json.dumps(data))
    assert _run(tmp_path) == _EXPECTED + " True"  # both asked of the library again, and kept right
    zones = json.loads(path.read_text())["zones"]
    assert zones["+12125550"] == ["America/New_York"] and zones["+33612345"] == ["Europe/Paris"]


def test_an_empty_cache_dir_setting_keeps_no_file(tmp_path, monkeypatch):
    from engine import phonezones

    monkeypatch.setenv("WINBACK_CACHE_DIR", "")
    assert phonezones.cache_path() is None
    out = subprocess.run([sys.executable, "-c", _RUN], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "WINBACK_CACHE_DIR": ""}, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == _EXPECTED + " True"
    assert not list(tmp_path.iterdir())


def test_in_process_answers_match_the_library():
    import phonenumbers
    from phonenumbers import timezone as pn_tz

    from engine import phonezones

    for number in ["+12125550123", "+14155550100", "+447700900123", "+81312345678", "+5511987654321"]:
        zones = pn_tz.time_zones_for_number(phonenumbers.parse(number, None))
        assert phonezones.zones_for(number) == [z for z in zones if z != "Etc/Unknown"], number
        assert phonezones.zones_for(number) == [z for z in zones if z != "Etc/Unknown"], number  # remembered
    assert phonezones.zones_for("x") == [] and phonezones.zones_for("+1") == []
