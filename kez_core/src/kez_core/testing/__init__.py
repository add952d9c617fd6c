"""Contract test suites that plugin authors reuse (pytest classes).

A plugin proves it fits an extension point by subclassing one contract and
providing one fixture; every generic check then runs against it::

    import pytest
    from kez_core.testing import EncodingContract
    from my_plugin import MyEncoding

    class TestMyEncoding(EncodingContract):
        @pytest.fixture
        def encoding(self):
            return MyEncoding()

The contracts import pytest (this package is only imported by test suites).
A few checks use hypothesis when it is installed and are skipped when it is
not. Nothing here touches the network or the installed entry points: each
contract builds its own `Registry(plugins=[...], entry_points=False)` holding
the object under test and the built-in key algorithms it needs.

The suites live one per module (`keys`, `encodings`, `channels`,
`transports`); this package re-exports them so that
`from kez_core.testing import ChannelContract` keeps working. The pytest
plugin in `pytest_plugin` (entry point `pytest11: kez`) adds the `kez`,
`free_port` and `closed_port` fixtures to any suite once the `testing` extra
is installed.
"""

from __future__ import annotations

from ._support import provider
from .channels import ChannelContract
from .encodings import EncodingContract
from .keys import KeyAlgorithmContract
from .transports import TransportContract

__all__ = [
    "ChannelContract",
    "EncodingContract",
    "KeyAlgorithmContract",
    "TransportContract",
    "provider",
]
