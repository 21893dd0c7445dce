"""Statistics as the worker publishes them and a monitor reads them."""

from __future__ import annotations

import os
import stat

import pytest

from scx_pyland import stats


def values(**overrides) -> tuple[int, ...]:
    return tuple(overrides.get(name, 0) for name in stats.FIELD_NAMES)


def test_what_is_published_is_read_back(tmp_path):
    writer = stats.StatsWriter(tmp_path / "run" / "stats")
    writer.publish(values(nr_user_dispatches=10, nr_pending=3, nr_online_cpus=2))
    snap = stats.read_snapshot(tmp_path / "run" / "stats")
    assert snap.pid == os.getpid()
    assert snap.values["nr_user_dispatches"] == 10
    assert snap.values["nr_pending"] == 3
    writer.close()


def test_the_file_and_its_directory_are_root_only(tmp_path):
    writer = stats.StatsWriter(tmp_path / "run" / "stats")
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "run" / "stats").stat().st_mode) == 0o600
    writer.close()


def test_an_existing_directory_keeps_its_mode(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o755)
    os.chmod(run_dir, 0o755)
    writer = stats.StatsWriter(run_dir / "stats")
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o755
    writer.close()


def test_a_read_that_overlaps_a_publish_is_retried(tmp_path, monkeypatch):
    """The reader copies the data while the writer publishes: the copy mixes the old
    values with the new ones, but its sequence number (copied first) is even. The
    reader must notice the sequence moved on and read again."""
    path = tmp_path / "stats"
    writer = stats.StatsWriter(path)
    writer.publish(tuple([1] * len(stats.FIELDS)))
    real_pread = os.pread
    torn = []

    def pread_during_a_publish(fd, size, offset):
        if size != stats.LAYOUT.size or torn:
            return real_pread(fd, size, offset)
        old = real_pread(fd, size, offset)
        writer.publish(tuple([2] * len(stats.FIELDS)))
        new = real_pread(fd, size, offset)
        half = stats.VALUES_OFFSET + 8 * (len(stats.FIELDS) // 2)
        torn.append(old[:stats.VALUES_OFFSET] + new[stats.VALUES_OFFSET:half] + old[half:])
        return torn[0]

    monkeypatch.setattr(stats.os, "pread", pread_during_a_publish)
    snap = stats.read_snapshot(path)
    monkeypatch.undo()
    writer.close()
    assert torn, "the reader never read the data"
    assert set(snap.values.values()) == {2}, snap.values


def test_a_missing_file_means_no_scheduler(tmp_path):
    with pytest.raises(stats.NoScheduler, match="no scx_pyland is running"):
        stats.read_snapshot(tmp_path / "stats")


def test_closing_removes_the_file(tmp_path):
    writer = stats.StatsWriter(tmp_path / "stats")
    writer.close()
    assert not (tmp_path / "stats").exists()


def test_counters_print_as_deltas_and_gauges_as_they_are():
    before = stats.Snapshot(1, 0, dict(zip(stats.FIELD_NAMES, values(nr_user_dispatches=100, nr_pending=9))))
    after = stats.Snapshot(1, 2_000_000_000, dict(zip(stats.FIELD_NAMES, values(
        nr_user_dispatches=300, nr_pending=4, nr_running=2, nr_online_cpus=2, nr_page_faults=0))))
    line = stats.format_line(before, after)
    assert "user 200 (100/s)" in line
    assert "pending 4" in line
    assert "running 2/2" in line
    assert "page faults +0" in line


def test_every_field_is_described():
    text = stats.help_text()
    for field in stats.FIELDS:
        assert field.name in text and field.help in text
