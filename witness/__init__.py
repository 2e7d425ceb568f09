"""A participating state's witness node (C2SP tlog-witness, tlog-cosignature).

It follows the logs named in its configuration, cosigns each checkpoint that
is consistent with the last one it cosigned, and keeps conflicting
log-signed checkpoints as fork evidence. A deployable of its own, beside the
service and the client: it imports nothing from ``app`` or ``client``, only the
pure ``crypto`` and ``ledger`` cores. Its command is ``cadena-witness``
(also mounted as ``cadena witness``).

- :class:`Witness`: the add-checkpoint rules; :func:`create_app`: its HTTP face;
- :class:`WitnessStore`: the state file; :class:`WitnessConfig`: the config file;
- errors: see :mod:`witness.errors`.
"""

from witness.config import WitnessConfig, WitnessConfigError, load_config
from witness.errors import WitnessError
from witness.server import create_app
from witness.store import Cosigned, Evidence, WitnessStore, WitnessStoreError
from witness.submission import AddCheckpoint, parse_add_checkpoint
from witness.witness import Witness

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
