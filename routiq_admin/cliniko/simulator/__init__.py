"""A fake Cliniko API over real HTTP, faithful to shared/spec/cliniko-api.md; re-exports its public names.

Standalone: imports only the standard library and Werkzeug. Data is generated per API key,
deterministically from (seed, key), and kept as compact columns so large clinics stay cheap.
"""

from .account import Account
from .app import Simulator
from .faults import FAULT_KINDS
from .server import SimulatorServer, serve
from .spec import ApiError, shard_of

__all__ = ["FAULT_KINDS", "Account", "ApiError", "Simulator", "SimulatorServer", "serve", "shard_of"]
