"""repro.tracking.store: a store that cannot take writes is found before the work."""
import sqlite3

import pytest

from repro import tracking
from tests.unit.tracking.helpers import make_read_only


def test_check_store_finds_a_read_only_database(tmp_path):
    db = tmp_path / "mlflow.db"
    con = sqlite3.connect(db)
    con.execute("create table t (x)")
    con.commit()
    con.close()
    tracking.check_store(f"sqlite:///{db}")          # writable: passes, and changes nothing
    assert sqlite3.connect(db).execute("pragma user_version").fetchone() == (0,)
    undo = make_read_only(db)
    try:
        with pytest.raises(tracking.TrackingError, match=f"cannot write {db}.*readonly"):
            tracking.check_store(f"sqlite:///{db}")
    finally:
        undo()
