"""The shared file helpers: the kernel's sched_ext state, read from a fake directory,
and JSON written atomically."""

from __future__ import annotations

import json
import stat

import pytest

from scx_pyland import files


def test_the_state_and_the_ops_are_read_stripped(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "state").write_text("enabled\n")
    (tmp_path / "root" / "ops").write_text("pyland_0.1.0\n")
    (tmp_path / "enable_seq").write_text("3\n")
    assert files.sched_ext_state(tmp_path) == "enabled"
    assert files.sched_ext_ops(tmp_path) == "pyland_0.1.0"
    assert files.enable_seq(tmp_path) == 3


def test_a_kernel_without_sched_ext_has_no_state(tmp_path):
    assert files.sched_ext_state(tmp_path / "missing") is None
    assert files.sched_ext_ops(tmp_path / "missing") == ""
    assert files.enable_seq(tmp_path / "missing") is None


def test_json_is_replaced_whole_and_root_only(tmp_path):
    path = tmp_path / "status.json"
    files.write_json_atomic(path, {"state": "starting"})
    files.write_json_atomic(path, {"state": "running"}, indent=1, durable=True)
    assert json.loads(path.read_text()) == {"state": "running"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    path = tmp_path / "status.json"
    files.write_json_atomic(path, {"state": "running"})
    with pytest.raises(TypeError):
        files.write_json_atomic(path, {"state": object()})
    assert json.loads(path.read_text()) == {"state": "running"}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]
