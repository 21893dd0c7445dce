from scx_pyland.exits import ExitKind, SupervisorStatus, WorkerStatus, is_error, kind_name


def test_known_kinds_have_their_kernel_names():
    assert kind_name(0x40) == "UNREG"
    assert kind_name(0x43) == "SYSRQ"
    assert kind_name(0x402) == "ERROR_STALL"


def test_unknown_kinds_are_classified_by_range():
    assert kind_name(0x45) == "UNREG_0x45"
    assert kind_name(0x404) == "ERROR_0x404"
    assert not is_error(0x45)
    assert is_error(0x404)


def test_errors_start_at_0x400():
    assert not is_error(ExitKind.SYSRQ)
    assert is_error(ExitKind.ERROR)


def test_worker_statuses_are_distinct():
    # __members__, not iteration: iterating an enum skips aliases (two names, one value).
    members = WorkerStatus.__members__
    assert len({s.value for s in members.values()}) == len(members)


def test_supervisor_statuses_are_distinct():
    members = SupervisorStatus.__members__
    assert len({s.value for s in members.values()}) == len(members)
