"""Runs the supervisor over tests/fake_worker.py, for the supervisor's tests.

usage: python supervised.py PLAN_DIR OPTIONS_JSON
"""

import json
import sys
from pathlib import Path

from scx_pyland.supervisor import Supervisor, SupervisorOptions

plan_dir = Path(sys.argv[1])
options = SupervisorOptions(**json.loads(sys.argv[2]), sched_ext_dir=plan_dir / "sched_ext",
                            status_file=plan_dir / "run" / "status.json",
                            policy_state=plan_dir / "run" / "policy.json",
                            compaction_sysctl=plan_dir / "compact_unevictable_allowed",
                            compaction_original=plan_dir / "run" / "compact_unevictable_allowed.original")
fake_worker = str(Path(__file__).with_name("fake_worker.py"))
sys.exit(Supervisor([sys.executable, fake_worker, str(plan_dir)], options).run())
