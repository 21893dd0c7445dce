"""Deliberately broken guest tests: scripts/vm-test --selftest runs them and must
report the run as failed (one fails, one is skipped)."""

import pytest


def test_this_fails_on_purpose():
    assert 1 + 1 == 3


@pytest.mark.skip(reason="skipped on purpose: a skip must fail the run")
def test_this_is_skipped_on_purpose():
    pass
