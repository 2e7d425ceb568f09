"""A participating state's witness node (C2SP tlog-witness, tlog-cosignature).

It follows the logs named in its configuration, cosigns each checkpoint that
is consistent with the last one it cosigned, and keeps conflicting
log-signed checkpoints as fork evidence. It imports nothing from ``app``.

- :class:`Witness`: the add-checkpoint rules; :func:`create_app`: its HTTP face;
- :class:`WitnessStore`: the state file; :class:`WitnessConfig`: the config file;
- errors: see :mod:`client.witness.errors`.
"""

from client.witness.config import WitnessConfig, WitnessConfigError, load_config
from client.witness.errors import WitnessError
from client.witness.server import create_app
from client.witness.store import Cosigned, Evidence, WitnessStore, WitnessStoreError
from client.witness.submission import AddCheckpoint, parse_add_checkpoint
from client.witness.witness import Witness

__all__ = [
    "AddCheckpoint",
    "Cosigned",
    "Evidence",
    "Witness",
    "WitnessConfig",
    "WitnessConfigError",
    "WitnessError",
    "WitnessStore",
    "WitnessStoreError",
    "create_app",
    "load_config",
    "parse_add_checkpoint",
]
