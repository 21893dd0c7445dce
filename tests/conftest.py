import sys
from pathlib import Path

# The helpers beside the tests (records.py).
sys.path.insert(0, str(Path(__file__).parent))
