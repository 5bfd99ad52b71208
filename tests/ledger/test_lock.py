"""engine.ledger.lock: one sender per ledger."""

from __future__ import annotations

import pytest

from engine.errors import DispatchError
from engine.ledger.lock import LedgerLock


def test_a_second_sender_is_refused_until_the_first_lets_go(tmp_path):
    ledger = tmp_path / "ledger.db"
    with LedgerLock(ledger):
        with pytest.raises(DispatchError, match="another 'winback send' is using the ledger"):
            with LedgerLock(ledger):
                pass
    with LedgerLock(ledger):  # free again
        pass
