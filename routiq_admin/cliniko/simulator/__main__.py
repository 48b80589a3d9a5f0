"""`python -m routiq_admin.cliniko.simulator [port]`: serve in the foreground."""

import sys

from .server import serve

serve(port=int(sys.argv[1]) if len(sys.argv) > 1 else 8900)
