"""vm.compact_unevictable_allowed's value kept across owners (scx_pyland.compaction):
a fake sysctl file and a run directory of the test's own; the SIGKILLed supervisor
itself is in tests/test_supervisor.py."""

from __future__ import annotations

from scx_pyland import compaction
from scx_pyland.worker import compaction_off_locked_pages


def sysctl_at(tmp_path, value: str):
    path = tmp_path / "compact_unevictable_allowed"
    path.write_text(f"{value}\n")
    return path


def test_a_worker_alone_keeps_the_system_s_value_while_attached_and_removes_it_after(tmp_path):
    sysctl, original = sysctl_at(tmp_path, "1"), tmp_path / "run" / "compact_unevictable_allowed.original"
    with compaction_off_locked_pages(sysctl, restore=True, original=original):
        assert sysctl.read_text() == "0" and original.read_text() == "1\n"
        assert (original.parent.stat().st_mode & 0o777, original.stat().st_mode & 0o777) == (0o700, 0o600)
    assert sysctl.read_text() == "1" and not original.exists()


def test_a_value_an_owner_killed_before_restoring_kept_is_the_system_s(tmp_path):
    sysctl, original = sysctl_at(tmp_path, "0"), tmp_path / "original"
    original.write_text("1\n")                      # its owner is gone: nobody holds the lock
    warnings = []
    with compaction.restored(sysctl, warn=warnings.append, original=original):
        assert original.read_text() == "1\n"
    assert sysctl.read_text() == "1" and not original.exists()
    assert warnings == [f"{sysctl} is 0, but a scx_pyland that ended without restoring it kept 1 as the "
                        f"system's value ({original}): 1 comes back at the end"]


def test_what_is_not_a_value_in_the_file_is_ignored(tmp_path):
    sysctl, original = sysctl_at(tmp_path, "1"), tmp_path / "original"
    original.write_text("garbage\n")
    with compaction.restored(sysctl, warn=print, original=original):
        assert original.read_text() == "1\n"
        sysctl.write_text("0")
    assert sysctl.read_text() == "1"


def test_where_the_value_cannot_be_kept_it_is_still_restored_with_a_warning(tmp_path):
    sysctl = sysctl_at(tmp_path, "1")
    (tmp_path / "not-a-directory").write_text("")
    original = tmp_path / "not-a-directory" / "original"
    warnings = []
    with compaction.restored(sysctl, warn=warnings.append, original=original):
        sysctl.write_text("0")
    assert sysctl.read_text() == "1"
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: cannot keep the value of {sysctl} in {original}")
